//! The collector's settings, read once from the environment (the original's names and defaults).

use std::net::SocketAddr;
use std::time::Duration;

use lifecycle::{Env, EnvError};

#[derive(Debug, Clone)]
pub struct Config {
    pub health_addr: SocketAddr,
    pub analyser_address: String,
    pub knowledge_address: String,
    /// `NATS_URL` with `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`, `NATS_CREDS_FILE`, `NATS_TLS_*`.
    pub nats: lifecycle::nats::NatsSettings,
    /// `GRPC_TLS_CERT`/`GRPC_TLS_KEY`/`GRPC_TLS_CA`/`GRPC_TLS_CLIENT_AUTH`.
    pub grpc_tls: lifecycle::grpc::GrpcTls,
    /// How often every database is collected (at least 1 s).
    pub collection_interval: Duration,
    /// How often the list of databases is refreshed from knowledge (at least 5 s).
    pub sync_interval: Duration,
    pub publish_metrics: bool,
    /// This collector's name in the databases' leases (several collectors share them).
    pub collector_id: String,
    pub log_json: bool,
}

/// `<host name>-<pid>`: unique among the collectors sharing a knowledge.
fn default_collector_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "collector".into());
    let host: String = host.chars().filter(|c| c.is_ascii_graphic()).collect();
    format!("{host}-{}", std::process::id())
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, EnvError> {
        let bind = env.string("BIND_ADDRESS", "127.0.0.1");
        Ok(Self {
            health_addr: env.listen_addr(&bind, env.port("HEALTH_PORT", 8080)?, "BIND_ADDRESS")?,
            analyser_address: env.address("ANALYSER_ADDRESS", "localhost:50051")?,
            knowledge_address: env.address("KNOWLEDGE_ADDRESS", "localhost:50053")?,
            nats: lifecycle::nats::NatsSettings::from_env(env)?,
            grpc_tls: lifecycle::grpc::GrpcTls::from_env(env)?,
            collection_interval: env.duration(
                "COLLECTION_INTERVAL",
                Duration::from_secs(10),
                Duration::from_secs(1),
            )?,
            sync_interval: env.duration(
                "SYNC_INTERVAL",
                Duration::from_secs(30),
                Duration::from_secs(5),
            )?,
            publish_metrics: env.bool("ENABLE_METRICS_PUBLISHING", true)?,
            collector_id: env.string("COLLECTOR_ID", &default_collector_id()),
            log_json: env.get("LOG_FORMAT") == Some("json"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.health_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.analyser_address, "localhost:50051");
        assert_eq!(config.collection_interval, Duration::from_secs(10));
        assert_eq!(config.sync_interval, Duration::from_secs(30));
        assert!(config.publish_metrics);
    }

    #[test]
    fn intervals_below_their_minimum_are_refused() {
        let error = Config::from_env(&Env::from_map([("SYNC_INTERVAL", "2s")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("SYNC_INTERVAL=\"2s\""), "{error}");
        let one_second = Config::from_env(&Env::from_map([("COLLECTION_INTERVAL", "1s")])).unwrap();
        assert_eq!(one_second.collection_interval, Duration::from_secs(1));
    }
}
