//! The knowledge service's settings, read once from the environment (the original's names and
//! defaults, plus the encryption key and retention).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lifecycle::{Env, EnvError};
use proto::status::ExecutionMode;

#[derive(Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub health_addr: SocketAddr,
    /// `redis://…` with password and database applied; never logged whole.
    pub redis_url: String,
    /// `REDIS_TLS_CA` / `REDIS_TLS_CERT` + `REDIS_TLS_KEY` (PEM contents), for `rediss://`.
    pub redis_tls: Option<redis::TlsCertificates>,
    pub grpc_tls: lifecycle::grpc::GrpcTls,
    /// `KNOWLEDGE_SECRET_KEY`, if given (base64 or hex of 32 bytes).
    pub secret_key: Option<String>,
    /// Where a generated key is kept when `KNOWLEDGE_SECRET_KEY` is not given.
    pub key_file: PathBuf,
    /// How long a resolved detection stays readable.
    pub resolved_detection_ttl: Duration,
    /// `EXECUTION_MODE`: the mode in force until one is saved in the configuration.
    pub initial_execution_mode: ExecutionMode,
    pub log_json: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("grpc_addr", &self.grpc_addr)
            .field("health_addr", &self.health_addr)
            .field("redis", &"<redacted>")
            .field("redis_tls", &self.redis_tls.is_some())
            .field("grpc_tls", &self.grpc_tls)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("key_file", &self.key_file)
            .field("resolved_detection_ttl", &self.resolved_detection_ttl)
            .finish()
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, EnvError> {
        let bind = env.string("BIND_ADDRESS", "127.0.0.1");
        let grpc_port = env.port("GRPC_PORT", 50053)?;
        let health_port = env.port("HEALTH_PORT", 8083)?;
        Ok(Self {
            grpc_addr: env.listen_addr(&bind, grpc_port, "BIND_ADDRESS")?,
            health_addr: env.listen_addr(&bind, health_port, "BIND_ADDRESS")?,
            redis_url: redis_url(env)?,
            redis_tls: redis_tls(env)?,
            grpc_tls: lifecycle::grpc::GrpcTls::from_env(env)?,
            secret_key: env.optional_string("KNOWLEDGE_SECRET_KEY"),
            key_file: PathBuf::from(
                env.string("KNOWLEDGE_KEY_FILE", ".startupmonkey/knowledge.key"),
            ),
            resolved_detection_ttl: env.duration(
                "RESOLVED_DETECTION_TTL",
                Duration::from_secs(24 * 3600),
                Duration::from_secs(60),
            )?,
            initial_execution_mode: env.parse("EXECUTION_MODE", ExecutionMode::Autonomous)?,
            log_json: env.get("LOG_FORMAT") == Some("json"),
        })
    }
}

/// `REDIS_ADDR` is `host:port` as in the original, or a full `redis://` / `rediss://` URL;
/// `REDIS_PASSWORD` and `REDIS_DB` apply on top.
fn redis_url(env: &Env) -> Result<String, EnvError> {
    let raw = env.string("REDIS_ADDR", "localhost:6379");
    let invalid = |reason: &str| EnvError::Invalid {
        name: "REDIS_ADDR".into(),
        value: redact_url(&raw),
        reason: reason.into(),
    };
    let tls = ["REDIS_TLS_CA", "REDIS_TLS_CERT"]
        .iter()
        .any(|name| env.get(name).is_some());
    let mut url = if raw.starts_with("redis://") || raw.starts_with("rediss://") {
        url::Url::parse(&raw).map_err(|e| invalid(&e.to_string()))?
    } else {
        env.address("REDIS_ADDR", "localhost:6379")?;
        let scheme = if tls { "rediss" } else { "redis" };
        url::Url::parse(&format!("{scheme}://{raw}")).map_err(|e| invalid(&e.to_string()))?
    };
    if tls && url.scheme() != "rediss" {
        return Err(invalid("REDIS_TLS_* is set: use rediss:// or host:port"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("expected host:port or a redis:// URL"));
    }
    if let Some(user) = env.get("REDIS_USERNAME") {
        url.set_username(user)
            .map_err(|()| invalid("cannot carry a user name"))?;
    }
    if let Some(password) = env.get("REDIS_PASSWORD") {
        url.set_password(Some(password))
            .map_err(|()| invalid("cannot carry a password"))?;
    }
    let db: u32 = env.parse("REDIS_DB", 0)?;
    if env.get("REDIS_DB").is_some() || url.path().trim_matches('/').is_empty() {
        url.set_path(&format!("/{db}"));
    }
    Ok(url.to_string())
}

/// Certificates for a TLS connection to Redis: a CA to trust (else the system's), and a client
/// certificate for servers that verify clients (`tls-auth-clients yes`).
fn redis_tls(env: &Env) -> Result<Option<redis::TlsCertificates>, EnvError> {
    let read = |name: &str| -> Result<Option<Vec<u8>>, EnvError> {
        env.get(name)
            .map(|path| {
                std::fs::read(path).map_err(|e| EnvError::Invalid {
                    name: name.into(),
                    value: path.into(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    };
    let root_cert = read("REDIS_TLS_CA")?;
    let client_tls = match (read("REDIS_TLS_CERT")?, read("REDIS_TLS_KEY")?) {
        (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
            client_cert,
            client_key,
        }),
        (None, None) => None,
        _ => {
            return Err(EnvError::Missing {
                name: "REDIS_TLS_CERT and REDIS_TLS_KEY (both or neither)".into(),
            });
        }
    };
    Ok(
        (root_cert.is_some() || client_tls.is_some()).then_some(redis::TlsCertificates {
            client_tls,
            root_cert,
        }),
    )
}

fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_original_ports_on_loopback() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.grpc_addr.to_string(), "127.0.0.1:50053");
        assert_eq!(config.health_addr.to_string(), "127.0.0.1:8083");
        assert_eq!(config.redis_url, "redis://localhost:6379/0");
        assert_eq!(config.resolved_detection_ttl, Duration::from_secs(86_400));
        assert_eq!(config.initial_execution_mode, ExecutionMode::Autonomous);
    }

    #[test]
    fn the_initial_execution_mode_is_one_of_the_three() {
        let env = Env::from_map([("EXECUTION_MODE", "approval")]);
        assert_eq!(
            Config::from_env(&env).unwrap().initial_execution_mode,
            ExecutionMode::Approval
        );
        let error = Config::from_env(&Env::from_map([("EXECUTION_MODE", "yolo")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("EXECUTION_MODE=\"yolo\""), "{error}");
    }

    #[test]
    fn password_and_database_apply_to_a_host_port_address() {
        let env = Env::from_map([
            ("REDIS_ADDR", "redis.internal:6380"),
            ("REDIS_PASSWORD", "p@ss/word"),
            ("REDIS_DB", "3"),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(
            config.redis_url,
            "redis://:p%40ss%2Fword@redis.internal:6380/3"
        );
        assert!(
            !format!("{config:?}").contains("p%40ss"),
            "secrets stay out of Debug"
        );
    }

    #[test]
    fn a_full_url_is_kept() {
        let env = Env::from_map([("REDIS_ADDR", "rediss://cache:6379/2")]);
        assert_eq!(
            Config::from_env(&env).unwrap().redis_url,
            "rediss://cache:6379/2"
        );
    }

    #[test]
    fn a_redis_ca_means_tls_and_a_plain_url_with_it_is_refused() {
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let env = Env::from_map([("REDIS_ADDR", "cache:6380"), ("REDIS_TLS_CA", ca)]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.redis_url, "rediss://cache:6380/0");
        assert!(config.redis_tls.is_some_and(|t| t.root_cert.is_some()));
        let error = Config::from_env(&Env::from_map([
            ("REDIS_ADDR", "redis://cache:6380"),
            ("REDIS_TLS_CA", ca),
        ]))
        .unwrap_err()
        .to_string();
        assert!(error.contains("rediss://"), "{error}");
        let error = Config::from_env(&Env::from_map([("REDIS_TLS_CERT", ca)]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("REDIS_TLS_KEY"), "{error}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = Config::from_env(&Env::from_map([("REDIS_ADDR", "nocolon")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("REDIS_ADDR=\"nocolon\""), "{error}");
        let error = Config::from_env(&Env::from_map([("REDIS_DB", "-1")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("REDIS_DB"), "{error}");
        let error = Config::from_env(&Env::from_map([("BIND_ADDRESS", "everywhere")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("BIND_ADDRESS"), "{error}");
    }
}
