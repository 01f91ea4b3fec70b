//! The executor's settings, read once from the environment (the original's names and defaults).

use std::net::SocketAddr;
use std::time::Duration;

use lifecycle::{Env, EnvError};

use crate::actions::docker::DockerSettings;

/// The names of the variables the executor reads (NATS_* and GRPC_TLS_* are read by
/// `lifecycle::nats::NatsSettings` and `lifecycle::grpc::GrpcTls`).
pub mod vars {
    pub const ACTION_TIMEOUT_SECONDS: &str = "ACTION_TIMEOUT_SECONDS";
    pub const ALLOW_TERMINATE_SUPERUSER: &str = "ALLOW_TERMINATE_SUPERUSER";
    pub const BIND_ADDRESS: &str = "BIND_ADDRESS";
    pub const DEPLOY_BACKEND: &str = "DEPLOY_BACKEND";
    pub const DOCKER_HOST: &str = "DOCKER_HOST";
    pub const DOCKER_NETWORK: &str = "DOCKER_NETWORK";
    pub const ENABLE_AUTO_EXECUTION: &str = "ENABLE_AUTO_EXECUTION";
    pub const EXECUTOR_ID: &str = "EXECUTOR_ID";
    pub const GRPC_PORT: &str = "GRPC_PORT";
    pub const HEALTH_PORT: &str = "HEALTH_PORT";
    pub const HTTP_PORT: &str = "HTTP_PORT";
    pub const KNOWLEDGE_ADDRESS: &str = "KNOWLEDGE_ADDRESS";
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    pub const MAX_CONCURRENT_ACTIONS: &str = "MAX_CONCURRENT_ACTIONS";
    pub const POOLER_IMAGE: &str = "POOLER_IMAGE";
    pub const REDIS_IMAGE: &str = "REDIS_IMAGE";
    pub const SHUTDOWN_DRAIN_SECONDS: &str = "SHUTDOWN_DRAIN_SECONDS";
    pub const STATE_DIR: &str = "STATE_DIR";
    pub const TERMINATE_AFTER_CANCEL: &str = "TERMINATE_AFTER_CANCEL";
}

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
    /// At shutdown, how long running actions may take to finish before they are cancelled
    /// (`SHUTDOWN_DRAIN_SECONDS`, default 25: inside the 30 s a container runtime waits between
    /// SIGTERM and SIGKILL, with time to clean up).
    pub shutdown_drain: Duration,
    pub enable_auto_execution: bool,
    /// Terminate a long-running statement that a cancel did not stop.
    pub terminate_after_cancel: bool,
    /// Touch superusers' sessions at all.
    pub terminate_superusers: bool,
    /// Where deployed helpers (poolers, caches) keep their files.
    pub state_dir: std::path::PathBuf,
    /// Where deployed helpers run (`DEPLOY_BACKEND`).
    pub deploy_backend: DeployBackend,
    /// This executor's name on the actions it starts (distinct per executor; stable across its
    /// restarts, so a restarted executor closes what it left half done).
    pub executor_id: String,
    pub log_json: bool,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, EnvError> {
        let bind = env.string(vars::BIND_ADDRESS, "127.0.0.1");
        let max_concurrent_actions: usize = env.parse(vars::MAX_CONCURRENT_ACTIONS, 10)?;
        if max_concurrent_actions == 0 {
            return Err(at_least_one(env, vars::MAX_CONCURRENT_ACTIONS));
        }
        let timeout_seconds: u64 = env.parse(vars::ACTION_TIMEOUT_SECONDS, 300)?;
        if timeout_seconds == 0 {
            return Err(at_least_one(env, vars::ACTION_TIMEOUT_SECONDS));
        }
        Ok(Self {
            grpc_addr: env.listen_addr(
                &bind,
                env.port(vars::GRPC_PORT, 50052)?,
                vars::BIND_ADDRESS,
            )?,
            health_addr: env.listen_addr(
                &bind,
                env.port(vars::HEALTH_PORT, 8082)?,
                vars::BIND_ADDRESS,
            )?,
            http_addr: env.listen_addr(
                &bind,
                env.port(vars::HTTP_PORT, 8084)?,
                vars::BIND_ADDRESS,
            )?,
            knowledge_address: env.address(vars::KNOWLEDGE_ADDRESS, "localhost:50053")?,
            nats: lifecycle::nats::NatsSettings::from_env(env)?,
            grpc_tls: lifecycle::grpc::GrpcTls::from_env(env)?,
            max_concurrent_actions,
            action_timeout: Duration::from_secs(timeout_seconds),
            shutdown_drain: Duration::from_secs(env.parse(vars::SHUTDOWN_DRAIN_SECONDS, 25)?),
            enable_auto_execution: env.bool(vars::ENABLE_AUTO_EXECUTION, true)?,
            terminate_after_cancel: env.bool(vars::TERMINATE_AFTER_CANCEL, false)?,
            terminate_superusers: env.bool(vars::ALLOW_TERMINATE_SUPERUSER, false)?,
            state_dir: env.string(vars::STATE_DIR, ".startupmonkey").into(),
            deploy_backend: DeployBackend::from_env(env)?,
            executor_id: env.string(vars::EXECUTOR_ID, &host_name()),
            log_json: env.get(vars::LOG_FORMAT) == Some("json"),
        })
    }
}

/// Where the PgBouncer and Redis the executor deploys run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployBackend {
    /// Local processes under `STATE_DIR` (bare metal, tests).
    Process,
    /// Containers through the Docker Engine API (compose deployments).
    Docker(DockerSettings),
}

/// The compose file's network (`networks.default.name` in docker-compose.yml).
pub const COMPOSE_NETWORK: &str = "startupmonkey";

impl DeployBackend {
    /// `DEPLOY_BACKEND=process|docker`; for docker, `DOCKER_HOST` (a `unix://` socket),
    /// `POOLER_IMAGE`, `REDIS_IMAGE` and `DOCKER_NETWORK`, read only then (`DOCKER_HOST` may be
    /// set for a docker CLI on a machine that deploys processes).
    fn from_env(env: &Env) -> Result<Self, EnvError> {
        let invalid = |name: &str, reason: &str| EnvError::Invalid {
            name: name.into(),
            value: env.get(name).unwrap_or_default().into(),
            reason: reason.into(),
        };
        match env.string(vars::DEPLOY_BACKEND, "process").as_str() {
            "process" => return Ok(Self::Process),
            "docker" => {}
            _ => return Err(invalid(vars::DEPLOY_BACKEND, "must be process or docker")),
        }
        let host = env.string(vars::DOCKER_HOST, "unix:///var/run/docker.sock");
        let socket = host
            .strip_prefix("unix://")
            .filter(|path| path.starts_with('/'))
            .ok_or_else(|| {
                invalid(
                    vars::DOCKER_HOST,
                    "must be the engine's Unix socket, unix:///path/to/docker.sock (TCP is not supported)",
                )
            })?;
        let image = |name: &str, default: &str| {
            let image = env.string(name, default);
            if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(invalid(
                    name,
                    "must be an image reference such as redis:7-alpine",
                ))
            } else {
                Ok(image)
            }
        };
        let network = env.string(vars::DOCKER_NETWORK, COMPOSE_NETWORK);
        let valid_network = network
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && network
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_network {
            return Err(invalid(
                vars::DOCKER_NETWORK,
                "must be a network name (letters, digits, -, _ and .) or host",
            ));
        }
        Ok(Self::Docker(DockerSettings {
            socket: socket.into(),
            pooler_image: image(vars::POOLER_IMAGE, "edoburu/pgbouncer:latest")?,
            redis_image: image(vars::REDIS_IMAGE, "redis:7-alpine")?,
            network,
        }))
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
        assert_eq!(config.shutdown_drain, Duration::from_secs(25));
        assert_eq!(config.deploy_backend, DeployBackend::Process);
    }

    #[test]
    fn the_docker_backend_has_the_compose_defaults_and_refuses_bad_values_by_name() {
        let docker = |vars: &[(&str, &str)]| {
            let mut all = vec![("DEPLOY_BACKEND", "docker")];
            all.extend_from_slice(vars);
            Config::from_env(&Env::from_map(all)).map(|c| c.deploy_backend)
        };
        assert_eq!(
            docker(&[]).unwrap(),
            DeployBackend::Docker(DockerSettings {
                socket: "/var/run/docker.sock".into(),
                pooler_image: "edoburu/pgbouncer:latest".into(),
                redis_image: "redis:7-alpine".into(),
                network: "startupmonkey".into(),
            })
        );
        let DeployBackend::Docker(settings) = docker(&[
            ("DOCKER_HOST", "unix:///run/podman/podman.sock"),
            ("DOCKER_NETWORK", "host"),
            ("REDIS_IMAGE", "registry:5000/redis:7"),
        ])
        .unwrap() else {
            panic!("docker")
        };
        assert_eq!(
            settings.socket,
            std::path::Path::new("/run/podman/podman.sock")
        );
        assert_eq!(settings.network, "host");
        assert_eq!(settings.redis_image, "registry:5000/redis:7");

        for (name, value) in [
            ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
            ("DOCKER_HOST", "unix://docker.sock"),
            ("DOCKER_NETWORK", "my network"),
            ("POOLER_IMAGE", "pgbouncer latest"),
        ] {
            let error = docker(&[(name, value)]).unwrap_err().to_string();
            assert!(error.contains(&format!("{name}={value:?}")), "{error}");
        }
        let error = Config::from_env(&Env::from_map([("DEPLOY_BACKEND", "kubernetes")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("DEPLOY_BACKEND=\"kubernetes\""), "{error}");
        // DOCKER_HOST is left alone when processes are deployed.
        assert!(Config::from_env(&Env::from_map([("DOCKER_HOST", "tcp://x:2375")])).is_ok());
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
