//! The gateway's settings, read once from the environment. `PORT` (default 3001) replaces the
//! original BFF's `COLLECTOR_PORT`, which is still read when `PORT` is unset.

use std::net::SocketAddr;

use lifecycle::{Env, EnvError};

#[derive(Clone)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub knowledge_address: String,
    pub executor_address: String,
    /// `NATS_URL` with `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`, `NATS_CREDS_FILE`, `NATS_TLS_*`.
    pub nats: lifecycle::nats::NatsSettings,
    /// `GRPC_TLS_CERT`/`GRPC_TLS_KEY`/`GRPC_TLS_CA`/`GRPC_TLS_CLIENT_AUTH`.
    pub grpc_tls: lifecycle::grpc::GrpcTls,
    /// The API token; never logged.
    pub token: Option<String>,
    /// Where a generated token is kept (`<STATE_DIR>/gateway.token`, mode 0600).
    pub state_dir: std::path::PathBuf,
    /// Require the token for reads too.
    pub auth_reads: bool,
    /// Let webhooks reach loopback and private addresses (refused by default).
    pub webhook_allow_private: bool,
    /// Metric snapshots kept per database for charts.
    pub history_points: usize,
    /// Health endpoints of the services the gateway has no RPC to, for `/status`.
    pub collector_health_url: String,
    pub analyser_health_url: String,
    pub log_json: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("http_addr", &self.http_addr)
            .field("knowledge_address", &self.knowledge_address)
            .field("executor_address", &self.executor_address)
            .field("nats", &self.nats)
            .field("grpc_tls", &self.grpc_tls)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("state_dir", &self.state_dir)
            .field("auth_reads", &self.auth_reads)
            .field("log_json", &self.log_json)
            .finish()
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, EnvError> {
        let bind = env.string("BIND_ADDRESS", "127.0.0.1");
        let port = match env.get("PORT") {
            Some(_) => env.port("PORT", 3001)?,
            None => env.port("COLLECTOR_PORT", 3001)?,
        };
        Ok(Self {
            http_addr: env.listen_addr(&bind, port, "BIND_ADDRESS")?,
            knowledge_address: env.address("KNOWLEDGE_ADDRESS", "localhost:50053")?,
            executor_address: env.address("EXECUTOR_ADDRESS", "localhost:50052")?,
            nats: lifecycle::nats::NatsSettings::from_env(env)?,
            grpc_tls: lifecycle::grpc::GrpcTls::from_env(env)?,
            token: env
                .optional_string("GATEWAY_TOKEN")
                .filter(|t| !t.is_empty()),
            state_dir: env.string("STATE_DIR", ".startupmonkey").into(),
            auth_reads: env.bool("GATEWAY_AUTH_READS", false)?,
            webhook_allow_private: env.bool("WEBHOOK_ALLOW_PRIVATE", false)?,
            history_points: env.parse("METRIC_HISTORY_POINTS", 360)?,
            collector_health_url: env
                .string("COLLECTOR_HEALTH_URL", "http://localhost:8080/health"),
            analyser_health_url: env.string("ANALYSER_HEALTH_URL", "http://localhost:8081/health"),
            log_json: env.get("LOG_FORMAT") == Some("json"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_defaults_to_3001_and_accepts_the_original_name() {
        assert_eq!(
            Config::from_env(&Env::default()).unwrap().http_addr.port(),
            3001
        );
        let original = Env::from_map([("COLLECTOR_PORT", "4001")]);
        assert_eq!(Config::from_env(&original).unwrap().http_addr.port(), 4001);
        let both = Env::from_map([("COLLECTOR_PORT", "4001"), ("PORT", "5001")]);
        assert_eq!(Config::from_env(&both).unwrap().http_addr.port(), 5001);
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let config = Config::from_env(&Env::from_map([("GATEWAY_TOKEN", "tok-123")])).unwrap();
        assert_eq!(config.token.as_deref(), Some("tok-123"));
        assert!(!format!("{config:?}").contains("tok-123"));
    }
}
