//! `deploy_redis`: a Redis cache for the application, as a local process (the `process`
//! backend; a Docker backend for compose deployments is not built yet): bound to loopback, a
//! generated password (kept in a 0600 file beside its config, never in the action's record or a
//! command line), `maxmemory` with an eviction policy, AOF on. Rollback stops it and removes its
//! directory.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::processes::{self, Place, RUN_AS};
use super::shown;

const BINARY: &str = "redis-server";
const POLICIES: [&str; 8] = [
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "noeviction",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRedis {
    pub database_id: String,
    /// Redis `maxmemory` syntax: `256mb`, `1gb`.
    pub max_memory: String,
    pub eviction_policy: String,
}

/// The process title names the config file (proc-title-template below), which is how the
/// running Redis is recognised.
fn place(state_dir: &Path, database_id: &str) -> Place {
    Place::new(state_dir, "caches", database_id, "redis", "conf")
}

impl DeployRedis {
    pub fn new(database_id: &str, max_memory: &str, eviction_policy: &str) -> Result<Self, String> {
        let max_memory = if max_memory.is_empty() {
            "256mb"
        } else {
            max_memory
        }
        .to_lowercase();
        let digits = max_memory.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &max_memory[digits.len()..];
        if digits.is_empty()
            || !digits.chars().all(|c| c.is_ascii_digit())
            || !["", "b", "kb", "mb", "gb"].contains(&unit)
        {
            return Err(format!(
                "max_memory {} must look like 256mb or 1gb",
                shown(format!("{max_memory:?}"))
            ));
        }
        let eviction_policy = if eviction_policy.is_empty() {
            "allkeys-lru"
        } else {
            eviction_policy
        };
        if !POLICIES.contains(&eviction_policy) {
            return Err(format!(
                "eviction_policy {} must be one of {}",
                shown(format!("{eviction_policy:?}")),
                POLICIES.join(", ")
            ));
        }
        Ok(Self {
            database_id: database_id.to_owned(),
            max_memory,
            eviction_policy: eviction_policy.to_owned(),
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "deploy a Redis cache ({}, {}) for {}",
            self.max_memory, self.eviction_policy, self.database_id
        )
    }

    pub async fn execute(&self, state_dir: &Path) -> Result<Value, String> {
        let place = place(state_dir, &self.database_id);
        if place.running().is_some() {
            return Err(format!(
                "a cache for {} already runs (config {}); roll that action back first",
                self.database_id,
                place.config.display()
            ));
        }
        std::fs::create_dir_all(&place.dir).map_err(|e| format!("{}: {e}", place.dir.display()))?;
        let port = processes::free_port()?;
        let password = processes::secret()?;
        let password_file = place.dir.join("password");
        processes::write_private(&password_file, &format!("{password}\n"))?;
        processes::write_private(
            &place.config,
            &format!(
                "bind 127.0.0.1\nprotected-mode yes\nport {port}\nrequirepass {password}\n\
                 maxmemory {}\nmaxmemory-policy {}\nappendonly yes\ndir {}\n\
                 daemonize yes\npidfile {}\nlogfile {}\nsave \"\"\n\
                 proc-title-template \"{{title}} {{config-file}} {{listen-addr}}\"\n",
                self.max_memory,
                self.eviction_policy,
                place.dir.display(),
                place.pid_file.display(),
                place.log.display(),
            ),
        )?;
        processes::hand_over(&place.dir)?;
        let mut command = if processes::running_as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", RUN_AS, "--", BINARY]);
            c
        } else {
            std::process::Command::new(BINARY)
        };
        let output = command.arg(&place.config).output().map_err(|e| {
            format!("cannot start {BINARY}: {e} (install the redis-server package)")
        })?;
        if !output.status.success() {
            return Err(format!(
                "{BINARY} did not start: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        if !processes::wait_for_port(port, Duration::from_secs(10)).await {
            let log = place.log_text();
            return Err(format!("Redis does not listen on port {port}: {log}"));
        }
        let pid = place
            .started()
            .await
            .ok_or("Redis listens but its pid file never appeared")?;
        Ok(json!({
            "backend": "process",
            "host": "127.0.0.1",
            "port": port,
            "pid": pid,
            "max_memory": self.max_memory,
            "eviction_policy": self.eviction_policy,
            "config_dir": place.dir.display().to_string(),
            "password_file": password_file.display().to_string(),
            "connection_string": format!("redis://:***@127.0.0.1:{port}"),
            "instruction": "Read the password from password_file; cache reads in the application \
                            (this needs a code change).",
            "requires_code_change": true,
        }))
    }

    pub async fn rollback(&self, state_dir: &Path) -> Result<Value, String> {
        let place = place(state_dir, &self.database_id);
        let stopped = place.tear_down().await?;
        Ok(json!({"stopped": stopped}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_policies_are_checked() {
        let ok = DeployRedis::new("db", "", "").unwrap();
        assert_eq!(
            (ok.max_memory.as_str(), ok.eviction_policy.as_str()),
            ("256mb", "allkeys-lru")
        );
        assert!(DeployRedis::new("db", "1GB", "volatile-ttl").is_ok());
        assert!(
            DeployRedis::new("db", "lots", "")
                .unwrap_err()
                .contains("256mb")
        );
        assert!(DeployRedis::new("db", "1gb\nrequirepass x", "").is_err());
        assert!(
            DeployRedis::new("db", "1gb", "lru; rm")
                .unwrap_err()
                .contains("one of")
        );
    }
}
