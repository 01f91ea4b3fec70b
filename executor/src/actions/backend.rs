//! Where the helpers the executor deploys (PgBouncer, Redis) run: one [`Backend`] trait, with
//! local processes (`processes.rs`: bare metal and tests) and containers through the Docker
//! Engine API (`docker.rs`: compose deployments) behind it, chosen by `DEPLOY_BACKEND`
//! (`deploy.rs`). This module depends on neither implementation; they depend on it.
//!
//! The actions say *what* runs (configuration files, the deployment they report); a backend says
//! *where*: the [`Site`] a new helper gets (its files' directory, address and port), starting it
//! until it accepts connections, finding it again after an executor restart, and removing only
//! what it started.

use std::path::PathBuf;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::ActionError;

/// A database id as it may appear in a directory or container name: kept when it is all ASCII
/// letters, digits, `-` and `_` (40 at most); otherwise made so and told apart by a hash of the
/// id, so two ids (`a.b`, `a_b`) never share a helper.
pub fn safe_name(database_id: &str) -> String {
    let safe: String = database_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if safe == database_id {
        safe
    } else {
        format!("{safe}-{:08x}", proto::sql::fnv1a(database_id) as u32)
    }
}

/// What kind of helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pooler,
    Cache,
}

impl Kind {
    /// Its name in container names and labels: `pooler`, `redis`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pooler => "pooler",
            Kind::Cache => "redis",
        }
    }

    /// For people: `PgBouncer`, `Redis`.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Pooler => "PgBouncer",
            Kind::Cache => "Redis",
        }
    }

    /// The program, on PATH (the Debian package of the same name for local processes).
    pub fn program(self) -> &'static str {
        match self {
            Kind::Pooler => "pgbouncer",
            Kind::Cache => "redis-server",
        }
    }

    /// The configuration file the program is started with, in [`Site::config_dir`].
    pub fn config_file(self) -> &'static str {
        match self {
            Kind::Pooler => "pgbouncer.ini",
            Kind::Cache => "redis.conf",
        }
    }

    /// The port it listens on when it has an address of its own (a container network).
    pub fn standard_port(self) -> u16 {
        match self {
            Kind::Pooler => 6432,
            Kind::Cache => 6379,
        }
    }
}

/// One helper: a kind, for one registered database. At most one of each runs per database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    pub kind: Kind,
    pub database_id: String,
}

/// Where a new helper runs, as it and its clients see it.
#[derive(Debug, Clone)]
pub struct Site {
    /// The directory of its configuration files, as the helper sees it.
    pub config_dir: PathBuf,
    /// The address it binds.
    pub listen_addr: String,
    pub port: u16,
    /// The host its clients use (the connection string's host).
    pub host: String,
    /// A local process daemonizes with a pid file and a log file, and keeps data in its own
    /// directory; a container runs in the foreground, logs to stderr and keeps nothing.
    pub daemon: Option<Daemon>,
    /// The container network it joins (`host`: the executor's machine's network); `None` for a
    /// local process.
    pub network: Option<String>,
    /// The container it runs in; `None` for a local process.
    pub container_name: Option<String>,
}

/// The files of a daemonized local process.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub pid_file: PathBuf,
    pub log: PathBuf,
    /// Where it may keep data (Redis's append-only file).
    pub data_dir: PathBuf,
}

impl Site {
    /// The path of `file` in the configuration directory.
    pub fn file(&self, file: &str) -> PathBuf {
        self.config_dir.join(file)
    }

    /// Whether the helper can reach a database at `host`, or why not: a container on its own
    /// network has its own loopback, and no container sees the executor's Unix sockets.
    pub fn reaches(&self, host: &str) -> Result<(), ActionError> {
        let Some(network) = &self.network else {
            return Ok(());
        };
        if host.starts_with('/') {
            return Err(ActionError::Refused(format!(
                "the database is registered through the Unix socket directory {host}, which a \
                 container cannot reach: register it with a TCP host"
            )));
        }
        if network != "host" && is_loopback(host) {
            return Err(ActionError::Refused(format!(
                "the database is registered at {host}, the executor's own loopback, which a \
                 container on network {network} cannot reach: register it by an address that \
                 network reaches (e.g. its compose service name), or set DOCKER_NETWORK=host"
            )));
        }
        Ok(())
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Launch {
    pub helper: Helper,
    pub site: Site,
    /// Files written into [`Site::config_dir`], readable by the helper only (0600): secrets go
    /// here and nowhere else. One of them is [`Kind::config_file`].
    pub files: Vec<(&'static str, String)>,
    /// A memory limit, where the backend can enforce one (containers).
    pub memory_bytes: Option<u64>,
    /// What the action reports, kept with the helper so that a later run — after an executor
    /// restart — reports it again. Never holds a secret.
    pub deployment: Value,
}

/// Runs helpers somewhere. Every method is safe to call again after an executor restart: what
/// runs is found from the helper's name alone (a pid file, a container name).
pub trait Backend: Send + Sync {
    /// `process` or `docker`, as in `DEPLOY_BACKEND` and the action's result.
    fn name(&self) -> &'static str;

    /// The deployment a running helper was started with, plus what identifies it now (`pid`,
    /// `container_id`); `None` when none runs.
    fn find<'a>(&'a self, helper: &'a Helper) -> BoxFuture<'a, Result<Option<Value>, ActionError>>;

    /// Where a new helper would run.
    fn site(&self, helper: &Helper) -> Result<Site, ActionError>;

    /// Writes its files, starts it and waits until it accepts connections. Returns the
    /// deployment plus what identifies the helper; on failure, nothing is left running.
    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<Value, ActionError>>;

    /// Stops and removes the helper, if it runs and is ours; the JSON says what was done.
    fn remove<'a>(&'a self, helper: &'a Helper) -> BoxFuture<'a, Result<Value, ActionError>>;
}

/// A free local TCP port for a new helper.
pub fn free_port() -> Result<u16, ActionError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ActionError::host("no free port", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(network: Option<&str>) -> Site {
        Site {
            config_dir: "/etc/pgbouncer".into(),
            listen_addr: "0.0.0.0".into(),
            port: 6432,
            host: "h".into(),
            daemon: None,
            network: network.map(str::to_owned),
            container_name: None,
        }
    }

    #[test]
    fn a_container_on_its_own_network_cannot_reach_the_executors_loopback_or_sockets() {
        for host in ["localhost", "127.0.0.1", "::1", "[::1]", "127.0.1.1"] {
            let error = site(Some("startupmonkey"))
                .reaches(host)
                .unwrap_err()
                .to_string();
            assert!(error.contains("loopback"), "{error}");
            assert!(error.contains("startupmonkey"), "{error}");
        }
        assert!(site(Some("startupmonkey")).reaches("demo-postgres").is_ok());
        assert!(site(Some("host")).reaches("127.0.0.1").is_ok());
        assert!(
            site(Some("host"))
                .reaches("/var/run/postgresql")
                .unwrap_err()
                .to_string()
                .contains("Unix socket")
        );
        assert!(site(None).reaches("/var/run/postgresql").is_ok());
    }

    #[test]
    fn database_ids_that_differ_get_helpers_that_differ() {
        assert_eq!(safe_name("shop_db-2"), "shop_db-2");
        let dotted = safe_name("a.b");
        assert!(dotted.starts_with("a_b-"), "{dotted}");
        assert_ne!(dotted, safe_name("a_b"));
        assert_ne!(safe_name("a/b"), safe_name("a.b"));
        let long = safe_name(&"x".repeat(300));
        assert_eq!(long.len(), 40 + 9, "{long}");
        assert_ne!(long, safe_name(&"x".repeat(301)));
    }
}
