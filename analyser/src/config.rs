//! The analyser's settings, read once from the environment (the original's names). Thresholds
//! here are only fallbacks for when knowledge is unreachable; knowledge's configuration wins.

use std::net::SocketAddr;

use lifecycle::{Env, EnvError};

/// Detector thresholds used until knowledge answers.
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackThresholds {
    pub connection_pool_critical: f64,
    pub sequential_scan_threshold: i64,
    pub sequential_scan_delta: f64,
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
    pub nats_url: String,
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
            nats_url: env.string("NATS_URL", "nats://localhost:4222"),
            enable_all_detectors: env.bool("ENABLE_ALL_DETECTORS", true)?,
            thresholds: FallbackThresholds {
                // The original defaulted to 0.1 "for local testing"; 0.8 is its real default.
                connection_pool_critical: ratio(env, "THRESHOLD_CONNECTION_POOL_CRITICAL", 0.8)?,
                sequential_scan_threshold: positive(env, "THRESHOLD_SEQ_SCAN", 1000.0)? as i64,
                sequential_scan_delta: positive(env, "THRESHOLD_SEQ_SCAN_DELTA", 100.0)?,
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
        Err(EnvError::Invalid {
            name: name.into(),
            value: value.to_string(),
            reason: "expected a ratio between 0 and 1".into(),
        })
    }
}

fn positive(env: &Env, name: &str, default: f64) -> Result<f64, EnvError> {
    let value: f64 = env.parse(name, default)?;
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(EnvError::Invalid {
            name: name.into(),
            value: value.to_string(),
            reason: "expected a number greater than 0".into(),
        })
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
        assert_eq!(config.thresholds.idle_transaction_seconds, 300.0);
        assert!(config.enable_all_detectors);
    }

    #[test]
    fn out_of_range_thresholds_name_the_variable() {
        let error = Config::from_env(&Env::from_map([("THRESHOLD_CACHE_HIT_RATE", "1.5")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("THRESHOLD_CACHE_HIT_RATE"), "{error}");
        let error = Config::from_env(&Env::from_map([("THRESHOLD_LONG_QUERY_SECS", "-3")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("THRESHOLD_LONG_QUERY_SECS"), "{error}");
    }
}
