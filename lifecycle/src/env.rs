//! Typed reading of settings from environment variables, parsed once at start.
//!
//! Services build an [`Env`] from the process environment in `main` and from a plain map in tests
//! (so tests never call `set_var`). Every getter names the variable and the bad value on error.
//! An empty value counts as unset, as in the original.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// A setting that could not be used; the service stops at start with this message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("invalid {name}={value:?}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("{name} is required but not set")]
    Missing { name: String },
    #[error("cannot read the environment: {0}")]
    Source(String),
}

/// Environment variables, by their exact (upper-case) names.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment, read through the `config` crate's environment source.
    pub fn from_process() -> Result<Self, EnvError> {
        let collected = config::Config::builder()
            .add_source(config::Environment::default())
            .build()
            .and_then(|c| c.try_deserialize::<HashMap<String, String>>())
            .map_err(|e| EnvError::Source(e.to_string()))?;
        // The environment source lower-cases names; settings are documented in upper case.
        let vars = collected
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect();
        Ok(Self { vars })
    }

    /// A fixed set of variables (tests, `make up`).
    pub fn from_map<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The raw value, `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    pub fn optional_string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    pub fn required_string(&self, name: &str) -> Result<String, EnvError> {
        self.optional_string(name).ok_or_else(|| EnvError::Missing {
            name: name.to_owned(),
        })
    }

    /// Any `FromStr` value (numbers, addresses).
    pub fn parse<T>(&self, name: &str, default: T) -> Result<T, EnvError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| self.invalid(name, raw, e)),
        }
    }

    /// A TCP port, 1..=65535 (0 is accepted so tests can ask for any free port).
    pub fn port(&self, name: &str, default: u16) -> Result<u16, EnvError> {
        self.parse(name, default)
    }

    /// `true/false`, `1/0`, `yes/no`, `on/off`.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, EnvError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(self.invalid(name, raw, "expected true or false")),
            },
        }
    }

    /// A duration in Go's style as the original used (`10s`, `500ms`, `2m`, `1h30m`); a bare
    /// number is seconds. Must be at least `min`.
    pub fn duration(
        &self,
        name: &str,
        default: Duration,
        min: Duration,
    ) -> Result<Duration, EnvError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let value = parse_duration(raw).map_err(|reason| self.invalid(name, raw, reason))?;
        if value < min {
            return Err(self.invalid(name, raw, format!("must be at least {min:?}")));
        }
        Ok(value)
    }

    /// `host:port` with a numeric or named host, resolved lazily by the caller.
    pub fn address(&self, name: &str, default: &str) -> Result<String, EnvError> {
        let value = self.string(name, default);
        match value.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(value),
            _ => Err(self.invalid(name, &value, "expected host:port")),
        }
    }

    /// A listening address built from a bind host and a port.
    pub fn listen_addr(&self, bind: &str, port: u16, name: &str) -> Result<SocketAddr, EnvError> {
        let host = if bind.contains(':') && !bind.starts_with('[') {
            format!("[{bind}]")
        } else {
            bind.to_owned()
        };
        format!("{host}:{port}")
            .parse()
            .map_err(|e| self.invalid(name, bind, e))
    }

    fn invalid(&self, name: &str, value: &str, reason: impl Display) -> EnvError {
        EnvError::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Why a duration could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("missing unit after {0:?} (use ms, s, m or h)")]
    MissingUnit(String),
    #[error("expected a number at {0:?}")]
    ExpectedNumber(String),
    #[error("bad number {0:?}")]
    BadNumber(String),
    #[error("unknown unit {0:?} (use ms, s, m or h)")]
    UnknownUnit(String),
    #[error("must be a non-negative duration")]
    Negative,
}

/// Parses `1h2m3s`, `500ms`, `1.5s` or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, DurationError> {
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<f64>() {
        return seconds_to_duration(seconds);
    }
    let mut total = 0.0_f64;
    let mut rest = raw;
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| DurationError::MissingUnit(rest.to_owned()))?;
        if number_len == 0 {
            return Err(DurationError::ExpectedNumber(rest.to_owned()));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| DurationError::BadNumber(rest[..number_len].to_owned()))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => return Err(DurationError::UnknownUnit(unit.to_owned())),
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    seconds_to_duration(total)
}

fn seconds_to_duration(seconds: f64) -> Result<Duration, DurationError> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(DurationError::Negative);
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_and_empty_values_take_the_default() {
        let env = Env::from_map([("GRPC_PORT", "")]);
        assert_eq!(env.port("GRPC_PORT", 50053), Ok(50053));
        assert_eq!(env.port("HEALTH_PORT", 8083), Ok(8083));
    }

    #[test]
    fn bad_port_names_the_variable_and_the_value() {
        let env = Env::from_map([("GRPC_PORT", "fifty")]);
        let message = env.port("GRPC_PORT", 50053).unwrap_err().to_string();
        assert!(
            message.starts_with("invalid GRPC_PORT=\"fifty\""),
            "{message}"
        );
        let env = Env::from_map([("HEALTH_PORT", "70000")]);
        assert!(env.port("HEALTH_PORT", 8083).is_err());
    }

    #[test]
    fn go_style_durations_parse_like_the_original() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn duration_below_the_minimum_is_refused() {
        let env = Env::from_map([("COLLECTION_INTERVAL", "500ms")]);
        let error = env
            .duration(
                "COLLECTION_INTERVAL",
                Duration::from_secs(10),
                Duration::from_secs(1),
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("COLLECTION_INTERVAL=\"500ms\""), "{error}");
        assert!(error.contains("at least 1s"), "{error}");
    }

    #[test]
    fn booleans_accept_common_spellings_only() {
        let env = Env::from_map([("A", "yes"), ("B", "0"), ("C", "maybe")]);
        assert_eq!(env.bool("A", false), Ok(true));
        assert_eq!(env.bool("B", true), Ok(false));
        assert!(env.bool("C", true).is_err());
    }

    #[test]
    fn addresses_need_a_host_and_a_numeric_port() {
        let env = Env::from_map([("GOOD", "knowledge:50053"), ("BAD", "knowledge")]);
        assert_eq!(env.address("GOOD", "x:1").unwrap(), "knowledge:50053");
        assert!(env.address("BAD", "x:1").is_err());
    }

    #[test]
    fn listen_address_accepts_ipv4_and_ipv6_hosts() {
        let env = Env::default();
        assert_eq!(
            env.listen_addr("127.0.0.1", 80, "BIND_ADDRESS")
                .unwrap()
                .to_string(),
            "127.0.0.1:80"
        );
        assert_eq!(
            env.listen_addr("::1", 80, "BIND_ADDRESS")
                .unwrap()
                .to_string(),
            "[::1]:80"
        );
        assert!(env.listen_addr("not an ip", 80, "BIND_ADDRESS").is_err());
    }
}
