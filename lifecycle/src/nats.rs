//! How every service connects to NATS: one set of settings (URL, credentials, TLS) read from the
//! environment, and one `connect` that retries forever and never logs a secret.
//!
//! Credentials may come from `NATS_URL` itself (`nats://user:password@host:4222`, as users write
//! it) or from `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN` or `NATS_CREDS_FILE`. TLS is used when the
//! URL says `tls://` or any of `NATS_TLS_CA`, `NATS_TLS_CERT`/`NATS_TLS_KEY` is set.

use std::fmt;
use std::path::PathBuf;

use async_nats::{ConnectError, ConnectOptions};
use percent_encoding::percent_decode_str;

use crate::{Env, EnvError};

/// Where and how to reach NATS. `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// The server list, without credentials (safe to log).
    pub url: String,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
    creds_file: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    /// A client certificate and its key, for servers that verify clients.
    tls_client: Option<(PathBuf, PathBuf)>,
    tls_required: bool,
}

impl fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("creds_file", &self.creds_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_client", &self.tls_client)
            .field("tls_required", &self.tls_required)
            .finish()
    }
}

impl NatsSettings {
    pub fn from_env(env: &Env) -> Result<Self, EnvError> {
        let raw = env.string("NATS_URL", "nats://localhost:4222");
        let invalid = |reason: &str| EnvError::Invalid {
            name: "NATS_URL".into(),
            value: redact_url(&raw),
            reason: reason.into(),
        };
        let mut url_user = None;
        let mut url_password = None;
        let mut servers = Vec::new();
        // A comma-separated server list, as nats-server and its clients accept.
        for server in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let with_scheme = if server.contains("://") {
                server.to_owned()
            } else {
                format!("nats://{server}")
            };
            let mut parsed = url::Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
            if !matches!(parsed.scheme(), "nats" | "tls" | "ws" | "wss") {
                return Err(invalid("expected nats://, tls://, ws:// or wss://"));
            }
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(invalid("no host"));
            }
            if !parsed.username().is_empty() {
                url_user = Some(decode(parsed.username()));
                url_password = parsed.password().map(decode);
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
            }
            servers.push(parsed.as_str().trim_end_matches('/').to_owned());
        }
        if servers.is_empty() {
            return Err(invalid("no server"));
        }
        let tls_url = servers.iter().any(|s| s.starts_with("tls://"));

        let user = env.optional_string("NATS_USER").or(url_user);
        let password = env.optional_string("NATS_PASSWORD").or(url_password);
        let token = env.optional_string("NATS_TOKEN");
        let creds_file = env.optional_string("NATS_CREDS_FILE").map(PathBuf::from);
        let ways = [user.is_some(), token.is_some(), creds_file.is_some()];
        if ways.iter().filter(|&&w| w).count() > 1 {
            return Err(EnvError::Invalid {
                name: "NATS_USER/NATS_TOKEN/NATS_CREDS_FILE".into(),
                value: "<several>".into(),
                reason: "give one way to authenticate to NATS".into(),
            });
        }
        if password.is_some() && user.is_none() {
            return Err(EnvError::Missing {
                name: "NATS_USER (NATS_PASSWORD is set)".into(),
            });
        }
        let tls_ca = existing_file(env, "NATS_TLS_CA")?;
        let tls_client = match (
            existing_file(env, "NATS_TLS_CERT")?,
            existing_file(env, "NATS_TLS_KEY")?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(EnvError::Missing {
                    name: "NATS_TLS_CERT and NATS_TLS_KEY (both or neither)".into(),
                });
            }
        };
        let tls_required = tls_url || tls_ca.is_some() || tls_client.is_some();
        Ok(Self {
            url: servers.join(","),
            user,
            password,
            token,
            creds_file,
            tls_ca,
            tls_client,
            tls_required,
        })
    }

    /// A plain server at `url` with no credentials (tests, tools).
    pub fn plain(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            user: None,
            password: None,
            token: None,
            creds_file: None,
            tls_ca: None,
            tls_client: None,
            tls_required: false,
        }
    }

    /// Connects as `startupmonkey-<service>`; the first connection is retried, and so is every
    /// reconnection, without limit: a service outlives any NATS outage.
    pub async fn connect(&self, service: &str) -> Result<async_nats::Client, ConnectError> {
        let mut options = ConnectOptions::new()
            .name(format!("startupmonkey-{service}"))
            .retry_on_initial_connect()
            .max_reconnects(None);
        if let Some(path) = &self.creds_file {
            options = ConnectOptions::with_credentials_file(path)
                .await?
                .name(format!("startupmonkey-{service}"))
                .retry_on_initial_connect()
                .max_reconnects(None);
        }
        if let Some(user) = &self.user {
            options =
                options.user_and_password(user.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if self.tls_required {
            options = options.require_tls(true);
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        options.connect(self.url.as_str()).await
    }
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// The URL with any password replaced, for error messages.
fn redact_url(raw: &str) -> String {
    match raw.rsplit_once('@') {
        Some((before, after)) => match before.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://<credentials>@{after}"),
            None => format!("<credentials>@{after}"),
        },
        None => raw.to_owned(),
    }
}

/// A path setting that must name a readable file: a typo is found at start, not at connect.
pub(crate) fn existing_file(env: &Env, name: &str) -> Result<Option<PathBuf>, EnvError> {
    let Some(raw) = env.get(name) else {
        return Ok(None);
    };
    let path = PathBuf::from(raw);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(Some(path)),
        Ok(_) => Err(EnvError::Invalid {
            name: name.into(),
            value: raw.into(),
            reason: "not a file".into(),
        }),
        Err(error) => Err(EnvError::Invalid {
            name: name.into(),
            value: raw.into(),
            reason: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<NatsSettings, EnvError> {
        NatsSettings::from_env(&Env::from_map(vars.iter().copied()))
    }

    #[test]
    fn the_default_is_a_local_server_without_credentials_or_tls() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.url, "nats://localhost:4222");
        assert!(s.user.is_none() && s.token.is_none() && s.creds_file.is_none());
        assert!(!s.tls_required);
    }

    #[test]
    fn credentials_in_the_url_are_taken_out_of_it_and_decoded() {
        let s = settings(&[("NATS_URL", "nats://svc:p%40ss@nats.internal:4222")]).unwrap();
        assert_eq!(s.url, "nats://nats.internal:4222");
        assert_eq!(s.user.as_deref(), Some("svc"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("p@ss"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn explicit_variables_win_over_the_url_and_a_server_list_is_kept() {
        let s = settings(&[
            ("NATS_URL", "nats://a:1@n1:4222, n2:4222"),
            ("NATS_USER", "svc"),
            ("NATS_PASSWORD", "secret"),
        ])
        .unwrap();
        assert_eq!(s.url, "nats://n1:4222,nats://n2:4222");
        assert_eq!(s.user.as_deref(), Some("svc"));
        assert_eq!(s.password.as_deref(), Some("secret"));
    }

    #[test]
    fn a_tls_url_requires_tls_and_bad_settings_are_refused_without_showing_secrets() {
        assert!(
            settings(&[("NATS_URL", "tls://nats:4222")])
                .unwrap()
                .tls_required
        );
        let error = settings(&[("NATS_URL", "http://u:topsecret@nats:4222")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("NATS_URL"), "{error}");
        assert!(!error.contains("topsecret"), "{error}");
        let error = settings(&[("NATS_PASSWORD", "x")]).unwrap_err().to_string();
        assert!(error.contains("NATS_USER"), "{error}");
        let error = settings(&[("NATS_USER", "u"), ("NATS_TOKEN", "t")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("one way"), "{error}");
        let error = settings(&[("NATS_TLS_CA", "/nonexistent/ca.pem")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("NATS_TLS_CA"), "{error}");
        let error = settings(&[(
            "NATS_TLS_CERT",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        )])
        .unwrap_err()
        .to_string();
        assert!(error.contains("NATS_TLS_KEY"), "{error}");
    }
}
