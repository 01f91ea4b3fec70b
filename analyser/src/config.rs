//! The analyser's settings, read once from the environment (the original's names). Thresholds
//! here are only fallbacks for when knowledge is unreachable; knowledge's configuration wins.

use std::net::SocketAddr;

use lifecycle::{Env, EnvError};

/// Detector thresholds used until knowledge answers.
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackThresholds {
    pub connection_pool_critical: f64,
    pub sequential_scan_threshold: i64,
    pub p95_latency_ms: f64,
    pub cache_hit_rate: f64,
    pub table_bloat_ratio: f64,
    pub long_query_seconds: f64,
    pub idle_transaction_seconds: f64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub knowledge_address: String,
    /// `NATS_URL` with `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`, `NATS_CREDS_FILE`, `NATS_TLS_*`.
    pub nats: lifecycle::nats::NatsSettings,
    /// `GRPC_TLS_CERT`/`GRPC_TLS_KEY`/`GRPC_TLS_CA`/`GRPC_TLS_CLIENT_AUTH`.
    pub grpc_tls: lifecycle::grpc::GrpcTls,
    pub enable_all_detectors: bool,
    pub thresholds: FallbackThresholds,
    pub log_json: bool,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, EnvError> {
        let bind = env.string("BIND_ADDRESS", "127.0.0.1");
        Ok(Self {
            grpc_addr: env.listen_addr(&bind, env.port("GRPC_PORT", 50051)?, "BIND_ADDRESS")?,
            health_addr: env.listen_addr(&bind, env.port("HEALTH_PORT", 8081)?, "BIND_ADDRESS")?,
            knowledge_address: env.address("KNOWLEDGE_ADDRESS", "localhost:50053")?,
            nats: lifecycle::nats::NatsSettings::from_env(env)?,
            grpc_tls: lifecycle::grpc::GrpcTls::from_env(env)?,
            enable_all_detectors: env.bool("ENABLE_ALL_DETECTORS", true)?,
            thresholds: FallbackThresholds {
                // The original defaulted to 0.1 "for local testing"; 0.8 is its real default.
                connection_pool_critical: ratio(env, "THRESHOLD_CONNECTION_POOL_CRITICAL", 0.8)?,
                sequential_scan_threshold: positive_count(env, "THRESHOLD_SEQ_SCAN", 1000)?,
                p95_latency_ms: positive(env, "THRESHOLD_P95_LATENCY_MS", 100.0)?,
                cache_hit_rate: ratio(env, "THRESHOLD_CACHE_HIT_RATE", 0.9)?,
                table_bloat_ratio: ratio(env, "THRESHOLD_TABLE_BLOAT", 0.1)?,
                long_query_seconds: positive(env, "THRESHOLD_LONG_QUERY_SECS", 30.0)?,
                idle_transaction_seconds: positive(env, "THRESHOLD_IDLE_TXN_SECS", 300.0)?,
            },
            log_json: env.get("LOG_FORMAT") == Some("json"),
        })
    }
}

fn ratio(env: &Env, name: &str, default: f64) -> Result<f64, EnvError> {
    let value: f64 = env.parse(name, default)?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(out_of_range(env, name, "expected a ratio between 0 and 1"))
    }
}

fn positive(env: &Env, name: &str, default: f64) -> Result<f64, EnvError> {
    let value: f64 = env.parse(name, default)?;
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(out_of_range(env, name, "expected a number greater than 0"))
    }
}

fn positive_count(env: &Env, name: &str, default: i64) -> Result<i64, EnvError> {
    let value: i64 = env.parse(name, default)?;
    if value > 0 {
        Ok(value)
    } else {
        Err(out_of_range(
            env,
            name,
            "expected a whole number greater than 0",
        ))
    }
}

/// The error for a value that parsed but is out of range, naming the value as it was written
/// (defaults are always in range, so the variable is set).
fn out_of_range(env: &Env, name: &str, reason: &str) -> EnvError {
    EnvError::Invalid {
        name: name.into(),
        value: env.get(name).unwrap_or_default().into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_original_ports_and_real_thresholds() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.grpc_addr.port(), 50051);
        assert_eq!(config.health_addr.port(), 8081);
        assert_eq!(config.thresholds.connection_pool_critical, 0.8);
        assert_eq!(config.thresholds.sequential_scan_threshold, 1000);
        assert_eq!(config.thresholds.idle_transaction_seconds, 300.0);
        assert!(config.enable_all_detectors);
    }

    fn refusal(name: &str, value: &str) -> String {
        Config::from_env(&Env::from_map([(name, value)]))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn out_of_range_thresholds_name_the_variable_and_the_value_as_written() {
        let error = refusal("THRESHOLD_CACHE_HIT_RATE", "1.50");
        assert!(
            error.contains("THRESHOLD_CACHE_HIT_RATE=\"1.50\""),
            "{error}"
        );
        let error = refusal("THRESHOLD_LONG_QUERY_SECS", "-3");
        assert!(
            error.contains("THRESHOLD_LONG_QUERY_SECS=\"-3\""),
            "{error}"
        );
        let error = refusal("THRESHOLD_P95_LATENCY_MS", "0");
        assert!(error.contains("THRESHOLD_P95_LATENCY_MS=\"0\""), "{error}");
    }

    #[test]
    fn the_seq_scan_threshold_is_a_whole_number_of_scans() {
        let error = refusal("THRESHOLD_SEQ_SCAN", "0.5");
        assert!(error.contains("THRESHOLD_SEQ_SCAN=\"0.5\""), "{error}");
        let error = refusal("THRESHOLD_SEQ_SCAN", "0");
        assert!(error.contains("greater than 0"), "{error}");
        let config = Config::from_env(&Env::from_map([("THRESHOLD_SEQ_SCAN", "250")])).unwrap();
        assert_eq!(config.thresholds.sequential_scan_threshold, 250);
    }
}
