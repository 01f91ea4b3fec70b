//! `deploy_redis`: a Redis cache for the application, where `DEPLOY_BACKEND` says
//! (`backend.rs`): a local process bound to loopback, daemonized, AOF on in its directory; or a
//! container (`startupmonkey-redis-<database>`) bound as its network needs, with no persistence
//! at all (`appendonly no`, no snapshots: it is a cache) and a memory limit above `maxmemory`.
//! Either way: a generated password, kept in 0600 files beside its config (never in the action's
//! record, a command line, the environment or a container label), `maxmemory` with an eviction
//! policy; a second run reports the one that runs. Rollback stops and removes it.

use std::future::Future;

use proto::actions::{DeployRedis, HelperRemoved, RedisDeployed};
use serde_json::json;

use super::backend::{Helper, Kind, Launch};
use super::{Context, processes};
use crate::error::ActionError;

/// What Redis needs beyond `maxmemory` (its own memory, buffers, fragmentation), at least.
const MEMORY_HEADROOM_BYTES: u64 = 64 * 1024 * 1024;
/// `deploy_redis` as the executor runs it.
pub trait DeployRedisRun {
    fn describe(&self) -> String;
    fn execute(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<RedisDeployed, ActionError>> + Send;
    fn rollback(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<HelperRemoved, ActionError>> + Send;
}

impl DeployRedisRun for DeployRedis {
    fn describe(&self) -> String {
        format!(
            "deploy a Redis cache ({}, {}) for {}",
            self.max_memory, self.eviction_policy, self.database_id
        )
    }

    async fn execute(&self, context: &Context) -> Result<RedisDeployed, ActionError> {
        let backend = context.backend();
        let helper = helper(self);
        if let Some(mut known) = backend.find(&helper).await? {
            known["note"] = json!("already running; nothing started");
            return super::deployment(known);
        }
        let site = backend.site(&helper)?;
        let password = processes::secret()?;
        let password_file = site.file("password");
        let mut config = format!(
            "bind {listen}\nprotected-mode yes\nport {port}\nrequirepass {password}\n\
             maxmemory {max_memory}\nmaxmemory-policy {policy}\nsave \"\"\n",
            listen = site.listen_addr,
            port = site.port,
            max_memory = self.max_memory,
            policy = self.eviction_policy,
        );
        let (persistence, instruction) = match (&site.daemon, &site.container_name) {
            (Some(daemon), _) => {
                config.push_str(&format!(
                    "appendonly yes\ndir {}\ndaemonize yes\npidfile {}\nlogfile {}\n\
                     proc-title-template \"{{title}} {{config-file}} {{listen-addr}}\"\n",
                    daemon.data_dir.display(),
                    daemon.pid_file.display(),
                    daemon.log.display(),
                ));
                (
                    "append-only file in config_dir: the cache survives a restart".to_owned(),
                    "Read the password from password_file; cache reads in the application \
                     (this needs a code change)."
                        .to_owned(),
                )
            }
            (None, container) => {
                config.push_str("appendonly no\ndir /tmp\ndaemonize no\nlogfile \"\"\n");
                (
                    "none (appendonly no, no snapshots): a cache, empty whenever its container \
                     is recreated"
                        .to_owned(),
                    format!(
                        "Read the password with `docker exec {} cat {}`; cache reads in the \
                         application (this needs a code change).",
                        container.as_deref().unwrap_or("<container>"),
                        password_file.display()
                    ),
                )
            }
        };
        let deployment = json!({
            "backend": backend.name(),
            "host": site.host,
            "port": site.port,
            "network": site.network,
            "max_memory": self.max_memory,
            "eviction_policy": self.eviction_policy,
            "config_dir": site.config_dir.display().to_string(),
            "password_file": password_file.display().to_string(),
            "connection_string": format!("redis://:***@{}:{}", site.host, site.port),
            "persistence": persistence,
            "instruction": instruction,
            "requires_code_change": true,
        });
        let deployed = backend
            .start(Launch {
                helper,
                files: vec![
                    (Kind::Cache.config_file(), config),
                    ("password", format!("{password}\n")),
                ],
                site,
                memory_bytes: memory_limit(self),
                deployment,
            })
            .await?;
        super::deployment(deployed)
    }

    async fn rollback(&self, context: &Context) -> Result<HelperRemoved, ActionError> {
        super::deployment(context.backend().remove(&helper(self)).await?)
    }
}

fn helper(plan: &DeployRedis) -> Helper {
    Helper {
        kind: Kind::Cache,
        database_id: plan.database_id.clone(),
    }
}

/// `maxmemory` in bytes (Redis's units: `kb` = 1024 bytes); `None` for 0 (no limit) or a
/// figure too large to be meant.
fn max_memory_bytes(plan: &DeployRedis) -> Option<u64> {
    let digits = plan
        .max_memory
        .trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &plan.max_memory[digits.len()..] {
        "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        _ => 1,
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|bytes| *bytes > 0)
}

/// A container's memory limit: `maxmemory` plus half again for Redis's own memory, buffers
/// and fragmentation (at least [`MEMORY_HEADROOM_BYTES`]).
fn memory_limit(plan: &DeployRedis) -> Option<u64> {
    let bytes = max_memory_bytes(plan)?;
    bytes.checked_add((bytes / 2).max(MEMORY_HEADROOM_BYTES))
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
                .to_string()
                .contains("256mb")
        );
        assert!(DeployRedis::new("db", "1gb\nrequirepass x", "").is_err());
        assert!(
            DeployRedis::new("db", "1gb", "lru; rm")
                .unwrap_err()
                .to_string()
                .contains("one of")
        );
    }

    #[test]
    fn a_container_may_use_maxmemory_and_half_again_at_least_64_mib_more() {
        let limit = |max_memory| memory_limit(&DeployRedis::new("db", max_memory, "").unwrap());
        assert_eq!(limit("64mb"), Some(128 << 20));
        assert_eq!(limit("1gb"), Some(3 << 29));
        assert_eq!(limit("1048576kb"), Some(3 << 29));
        assert_eq!(limit("0"), None, "no maxmemory, no limit");
        assert_eq!(limit("99999999999999999999gb"), None);
        assert_eq!(limit("17179869184gb"), None, "overflows");
    }
}
