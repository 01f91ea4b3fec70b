//! The `docker` backend (`DEPLOY_BACKEND=docker`, for compose deployments): each helper is a
//! container made through the Docker Engine API on `DOCKER_HOST`'s Unix socket (`bollard`, behind
//! the calls in `api.rs`).
//!
//! A helper's container is named `startupmonkey-<pooler|redis>-<database id made safe>` and
//! labelled `io.startupmonkey.kind`, `io.startupmonkey.database` and
//! `io.startupmonkey.deployment` (what the action reported, no secrets), so a restarted executor
//! finds it by name, as the process backend finds its pid file; only a container with our name
//! *and* our labels is ever stopped or removed. Its configuration files are uploaded as a tar
//! (`PUT /containers/{id}/archive`, written by `tar.rs`) before it starts, owned by nobody
//! (65534) and 0600: secrets live there and nowhere else (not in the command, the environment or
//! the labels).
//!
//! The container runs as 65534:65534 with every capability dropped and `no-new-privileges`,
//! restarts unless stopped (so it outlives the executor), and with `DOCKER_NETWORK=host` listens
//! on 127.0.0.1 at a free port; on any other network it listens on 0.0.0.0 at the standard port
//! and is reached by its container name. A missing image is pulled once.

pub mod api;
mod tar;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, HostConfig,
    RestartPolicy, RestartPolicyNameEnum,
};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tracing::info;

use self::api::Api;
pub use self::api::ApiError;
use super::backend::{Backend, Helper, Kind, Launch, Site};
use crate::error::ActionError;

pub const LABEL_KIND: &str = "io.startupmonkey.kind";
pub const LABEL_DATABASE: &str = "io.startupmonkey.database";
pub const LABEL_DEPLOYMENT: &str = "io.startupmonkey.deployment";
/// `nobody`: the user the helpers run as and own their files as.
const NOBODY: (u32, u32) = (65534, 65534);
/// How long a started helper has to accept connections.
const READY_LIMIT: Duration = Duration::from_secs(30);
/// How long a helper has to stop before the engine kills it.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Log lines quoted when a helper does not start.
const LOG_LINES: u32 = 20;

/// `DOCKER_HOST`, `POOLER_IMAGE`, `REDIS_IMAGE`, `DOCKER_NETWORK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    /// The engine's Unix socket (`DOCKER_HOST=unix:///var/run/docker.sock`).
    pub socket: PathBuf,
    /// Any image with `pgbouncer` on its PATH.
    pub pooler_image: String,
    /// Any image with `redis-server` on its PATH.
    pub redis_image: String,
    /// The network the helpers join; `host` for the host's own.
    pub network: String,
}

pub struct Docker {
    api: Api,
    settings: DockerSettings,
}

impl Docker {
    pub fn new(settings: DockerSettings) -> Self {
        Self {
            api: Api::new(&settings.socket),
            settings,
        }
    }

    /// For logs: the socket and network.
    pub fn describe(&self) -> String {
        format!(
            "{}, network {}",
            self.api.socket().display(),
            self.settings.network
        )
    }

    /// Whether the engine answers, and the API version it speaks.
    pub async fn ping(&self) -> Result<String, ActionError> {
        Ok(self.api.ping().await?)
    }

    fn image(&self, kind: Kind) -> &str {
        match kind {
            Kind::Pooler => &self.settings.pooler_image,
            Kind::Cache => &self.settings.redis_image,
        }
    }

    fn host_network(&self) -> bool {
        self.settings.network == "host"
    }

    /// The container with `helper`'s name, if any; an error if it is not ours.
    async fn existing(
        &self,
        helper: &Helper,
    ) -> Result<Option<ContainerInspectResponse>, ActionError> {
        let name = container_name(helper);
        let Some(container) = self.api.inspect(&name).await? else {
            return Ok(None);
        };
        let kind = label(&container, LABEL_KIND).unwrap_or("");
        let database = label(&container, LABEL_DATABASE).unwrap_or("");
        if kind != helper.kind.name() || database != helper.database_id {
            return Err(ActionError::Refused(format!(
                "a container named {name} exists but was not deployed by StartupMonkey for \
                 database {:?} (labels {LABEL_KIND}={kind:?}, {LABEL_DATABASE}={database:?}); \
                 it is left alone: remove or rename it",
                helper.database_id
            )));
        }
        Ok(Some(container))
    }

    async fn create(&self, launch: &Launch, name: &str) -> Result<String, ActionError> {
        let kind = launch.helper.kind;
        let image = self.image(kind);
        // No swap beyond the limit.
        let memory = launch
            .memory_bytes
            .map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX));
        let config = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(vec![kind.program().to_owned()]),
            cmd: Some(vec![
                launch.site.file(kind.config_file()).display().to_string(),
            ]),
            user: Some(format!("{}:{}", NOBODY.0, NOBODY.1)),
            labels: Some(HashMap::from([
                (LABEL_KIND.to_owned(), kind.name().to_owned()),
                (LABEL_DATABASE.to_owned(), launch.helper.database_id.clone()),
                (LABEL_DEPLOYMENT.to_owned(), launch.deployment.to_string()),
            ])),
            host_config: Some(HostConfig {
                network_mode: Some(self.settings.network.clone()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                cap_drop: Some(vec!["ALL".to_owned()]),
                security_opt: Some(vec!["no-new-privileges".to_owned()]),
                memory,
                memory_swap: memory,
                ..Default::default()
            }),
            ..Default::default()
        };
        match self.api.create(name, config.clone()).await {
            Ok(id) => Ok(id),
            Err(error) if error.is_missing_image() => {
                info!(image, "pulling the helper image");
                self.api.pull(image).await?;
                Ok(self.api.create(name, config).await?)
            }
            Err(error) => Err(ActionError::Refused(format!(
                "creating container {name} from {image}: {error}"
            ))),
        }
    }

    /// Uploads the files, starts the container and waits until it accepts connections.
    async fn run(&self, launch: &Launch, id: &str) -> Result<(), ActionError> {
        let dir = launch.site.config_dir.display().to_string();
        let files: Vec<(&str, &[u8])> = launch
            .files
            .iter()
            .map(|(name, contents)| (*name, contents.as_bytes()))
            .collect();
        self.api
            .upload(id, tar::archive(&dir, &files, NOBODY)?)
            .await?;
        self.api.start(id).await?;
        let started = Instant::now();
        loop {
            let container = self.api.inspect(id).await?.ok_or_else(|| {
                ActionError::Refused("the container disappeared while starting".into())
            })?;
            let state = container.state.clone().unwrap_or_default();
            // With restarts allowed, a helper that exits at once may already be starting again.
            let exited = matches!(
                state.status,
                Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)
            ) || state.restarting == Some(true)
                || container.restart_count.unwrap_or(0) > 0;
            if exited {
                return Err(ActionError::Refused(format!(
                    "{} exited (status {}, exit code {})",
                    launch.helper.kind.title(),
                    state.status.map_or("?".to_owned(), |s| s.to_string()),
                    state.exit_code.map_or("?".to_owned(), |c| c.to_string())
                )));
            }
            if running(&container) && self.listens(&container, &launch.site).await {
                return Ok(());
            }
            if started.elapsed() > READY_LIMIT {
                return Err(ActionError::Refused(format!(
                    "{} does not accept connections on port {} after {} s",
                    launch.helper.kind.title(),
                    launch.site.port,
                    READY_LIMIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether a started helper accepts connections where the executor can check: the loopback
    /// on the host's network, else the container's address on its network (reachable from a
    /// container on the same network, and from the host of a local engine), else its name.
    async fn listens(&self, container: &ContainerInspectResponse, site: &Site) -> bool {
        let address = if self.host_network() {
            format!("127.0.0.1:{}", site.port)
        } else {
            let ip = container
                .network_settings
                .as_ref()
                .and_then(|settings| settings.networks.as_ref())
                .and_then(|networks| networks.get(&self.settings.network))
                .and_then(|endpoint| endpoint.ip_address.as_deref())
                .filter(|ip| !ip.is_empty());
            format!("{}:{}", ip.unwrap_or(&site.host), site.port)
        };
        let connect = tokio::net::TcpStream::connect(&address);
        matches!(
            tokio::time::timeout(Duration::from_secs(1), connect).await,
            Ok(Ok(_))
        )
    }
}

impl Backend for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn find<'a>(&'a self, helper: &'a Helper) -> BoxFuture<'a, Result<Option<Value>, ActionError>> {
        Box::pin(async move {
            let Some(container) = self.existing(helper).await? else {
                return Ok(None);
            };
            if !running(&container) {
                return Ok(None);
            }
            let mut deployment: Value = label(&container, LABEL_DEPLOYMENT)
                .and_then(|label| serde_json::from_str(label).ok())
                .unwrap_or_else(|| json!({"backend": "docker"}));
            deployment["container_id"] = json!(container.id);
            deployment["container_name"] = json!(container_name(helper));
            Ok(Some(deployment))
        })
    }

    fn site(&self, helper: &Helper) -> Result<Site, ActionError> {
        let name = container_name(helper);
        let (listen_addr, port, host) = if self.host_network() {
            let port = super::backend::free_port()?;
            ("127.0.0.1", port, "127.0.0.1".to_owned())
        } else {
            ("0.0.0.0", helper.kind.standard_port(), name.clone())
        };
        Ok(Site {
            config_dir: config_dir(helper.kind).into(),
            listen_addr: listen_addr.into(),
            port,
            host,
            daemon: None,
            network: Some(self.settings.network.clone()),
            container_name: Some(name),
        })
    }

    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<Value, ActionError>> {
        Box::pin(async move {
            let name = container_name(&launch.helper);
            // One of ours that stopped (or never started): replaced by a fresh one.
            if let Some(stale) = self.existing(&launch.helper).await? {
                if running(&stale) {
                    return Err(ActionError::Refused(format!(
                        "container {name} already runs"
                    )));
                }
                info!(container = %name, "removing a stopped helper container before deploying again");
                self.api
                    .remove(stale.id.as_deref().unwrap_or(&name))
                    .await?;
            }
            let id = self.create(&launch, &name).await?;
            if let Err(why) = self.run(&launch, &id).await {
                let logs = self.api.logs(&id, LOG_LINES).await.unwrap_or_default();
                // Nothing is left behind: a later run starts clean.
                let _ = self.api.remove(&id).await;
                let logs = logs.trim();
                return Err(ActionError::Helper(if logs.is_empty() {
                    format!("container {name}: {why}")
                } else {
                    format!("container {name}: {why}; its log ends:\n{logs}")
                }));
            }
            let mut deployment = launch.deployment;
            deployment["container_id"] = json!(id);
            deployment["container_name"] = json!(name);
            deployment["image"] = json!(self.image(launch.helper.kind));
            Ok(deployment)
        })
    }

    fn remove<'a>(&'a self, helper: &'a Helper) -> BoxFuture<'a, Result<Value, ActionError>> {
        Box::pin(async move {
            let name = container_name(helper);
            let Some(container) = self.existing(helper).await? else {
                return Ok(json!({
                    "stopped": false,
                    "removed": Value::Null,
                    "note": format!("no container named {name}; nothing to remove"),
                }));
            };
            let id = container.id.clone().unwrap_or_else(|| name.clone());
            let running = running(&container);
            if running {
                self.api.stop(&id, STOP_GRACE).await?;
            }
            self.api.remove(&id).await?;
            Ok(json!({"stopped": running, "removed": name, "container_id": id}))
        })
    }
}

/// One of the container's labels.
fn label<'a>(container: &'a ContainerInspectResponse, key: &str) -> Option<&'a str> {
    let labels = container.config.as_ref()?.labels.as_ref()?;
    labels.get(key).map(String::as_str)
}

fn running(container: &ContainerInspectResponse) -> bool {
    container
        .state
        .as_ref()
        .and_then(|state| state.running)
        .unwrap_or(false)
}

/// Where a helper's configuration lives inside its container.
fn config_dir(kind: Kind) -> &'static str {
    match kind {
        Kind::Pooler => "/etc/pgbouncer",
        Kind::Cache => "/etc/redis",
    }
}

/// `startupmonkey-<kind>-<database id>`: the id as it is when it is made of letters, digits,
/// `-`, `_` and `.` and at most 40 long; otherwise those characters of it, then a hash of the
/// whole id, so two ids never share a container.
pub fn container_name(helper: &Helper) -> String {
    format!(
        "startupmonkey-{}-{}",
        helper.kind.name(),
        super::backend::safe_name(&helper.database_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(kind: Kind, id: &str) -> String {
        container_name(&Helper {
            kind,
            database_id: id.into(),
        })
    }

    #[test]
    fn container_names_are_the_database_id_when_safe_and_never_shared() {
        assert_eq!(name(Kind::Pooler, "db-1"), "startupmonkey-pooler-db-1");
        let dotted = name(Kind::Cache, "orders.eu_1");
        assert!(
            dotted.starts_with("startupmonkey-redis-orders_eu_1-"),
            "{dotted}"
        );
        assert_ne!(dotted, name(Kind::Cache, "orders_eu_1"));
        let odd = name(Kind::Pooler, "a/b c");
        assert!(odd.starts_with("startupmonkey-pooler-a_b_c-"), "{odd}");
        assert_ne!(odd, name(Kind::Pooler, "a_b_c"));
        assert_ne!(odd, name(Kind::Pooler, "a b/c"));
        let long = name(Kind::Cache, &"x".repeat(300));
        assert!(
            long.len() <= "startupmonkey-redis-".len() + 40 + 9,
            "{long}"
        );
        assert!(
            name(Kind::Pooler, "é\"; rm -rf")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        );
    }
}
