//! The executor's settings, read once from the environment (the original's names and defaults).

use std::net::SocketAddr;
use std::time::Duration;

use lifecycle::{Env, EnvError};

#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub health_addr: SocketAddr,
    /// The action API (bound once the executor has one).
    pub http_addr: SocketAddr,
    pub knowledge_address: String,
    /// `NATS_URL` with `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`, `NATS_CREDS_FILE`, `NATS_TLS_*`.
    pub nats: lifecycle::nats::NatsSettings,
    /// `GRPC_TLS_CERT`/`GRPC_TLS_KEY`/`GRPC_TLS_CA`/`GRPC_TLS_CLIENT_AUTH`.
    pub grpc_tls: lifecycle::grpc::GrpcTls,
    pub max_concurrent_actions: usize,
    pub action_timeout: Duration,
    pub enable_auto_execution: bool,
    /// Terminate a long-running statement that a cancel did not stop.
    pub terminate_after_cancel: bool,
    /// Touch superusers' sessions at all.
    pub terminate_superusers: bool,
    /// Where deployed helpers (poolers, caches) keep their files.
    pub state_dir: std::path::PathBuf,
    /// This executor's name on the actions it starts (distinct per executor; stable across its
    /// restarts, so a restarted executor closes what it left half done).
    pub executor_id: String,
    pub log_json: bool,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, EnvError> {
        let bind = env.string("BIND_ADDRESS", "127.0.0.1");
        let max_concurrent_actions: usize = env.parse("MAX_CONCURRENT_ACTIONS", 10)?;
        if max_concurrent_actions == 0 {
            return Err(at_least_one(env, "MAX_CONCURRENT_ACTIONS"));
        }
        let timeout_seconds: u64 = env.parse("ACTION_TIMEOUT_SECONDS", 300)?;
        if timeout_seconds == 0 {
            return Err(at_least_one(env, "ACTION_TIMEOUT_SECONDS"));
        }
        Ok(Self {
            grpc_addr: env.listen_addr(&bind, env.port("GRPC_PORT", 50052)?, "BIND_ADDRESS")?,
            health_addr: env.listen_addr(&bind, env.port("HEALTH_PORT", 8082)?, "BIND_ADDRESS")?,
            http_addr: env.listen_addr(&bind, env.port("HTTP_PORT", 8084)?, "BIND_ADDRESS")?,
            knowledge_address: env.address("KNOWLEDGE_ADDRESS", "localhost:50053")?,
            nats: lifecycle::nats::NatsSettings::from_env(env)?,
            grpc_tls: lifecycle::grpc::GrpcTls::from_env(env)?,
            max_concurrent_actions,
            action_timeout: Duration::from_secs(timeout_seconds),
            enable_auto_execution: env.bool("ENABLE_AUTO_EXECUTION", true)?,
            terminate_after_cancel: env.bool("TERMINATE_AFTER_CANCEL", false)?,
            terminate_superusers: env.bool("ALLOW_TERMINATE_SUPERUSER", false)?,
            state_dir: env.string("STATE_DIR", ".startupmonkey").into(),
            executor_id: env.string("EXECUTOR_ID", &host_name()),
            log_json: env.get("LOG_FORMAT") == Some("json"),
        })
    }
}

/// The machine's name (the default executor id): stable across restarts.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "executor".into())
}

/// The error for a zero, naming the value as it was written (the defaults are not zero, so the
/// variable is set).
fn at_least_one(env: &Env, name: &str) -> EnvError {
    EnvError::Invalid {
        name: name.into(),
        value: env.get(name).unwrap_or_default().into(),
        reason: "must be at least 1".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.grpc_addr.port(), 50052);
        assert_eq!(config.health_addr.port(), 8082);
        assert_eq!(config.http_addr.port(), 8084);
        assert_eq!(config.max_concurrent_actions, 10);
        assert_eq!(config.action_timeout, Duration::from_secs(300));
    }

    #[test]
    fn zero_concurrency_or_timeout_is_refused_naming_the_value_as_written() {
        let error = Config::from_env(&Env::from_map([("MAX_CONCURRENT_ACTIONS", "00")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("MAX_CONCURRENT_ACTIONS=\"00\""), "{error}");
        let error = Config::from_env(&Env::from_map([("ACTION_TIMEOUT_SECONDS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("ACTION_TIMEOUT_SECONDS=\"0\""), "{error}");
        assert!(error.contains("at least 1"), "{error}");
    }
}
