//! The gateway's settings, read once from the environment. `PORT` (default 3001) replaces the
//! original BFF's `COLLECTOR_PORT`, which is still read when `PORT` is unset.

use std::net::SocketAddr;

use lifecycle::{Env, EnvError};

#[derive(Clone)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub knowledge_address: String,
    pub executor_address: String,
    pub nats_url: String,
    /// The API token; never logged.
    pub token: Option<String>,
    pub log_json: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("http_addr", &self.http_addr)
            .field("knowledge_address", &self.knowledge_address)
            .field("executor_address", &self.executor_address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
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
            nats_url: env.string("NATS_URL", "nats://localhost:4222"),
            token: env.optional_string("GATEWAY_TOKEN"),
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
