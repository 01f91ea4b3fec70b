//! The `process` backend (`DEPLOY_BACKEND=process`, the default: bare metal and tests): the
//! helpers we deploy (PgBouncer, Redis) as local processes — a private directory per database
//! under `STATE_DIR`, a free loopback port, started as a non-root user, daemonized (so they
//! outlive the executor), waited for until they listen, found again from their pid file, and
//! stopped only when the pid file names the process we started (checked against its command
//! line).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::Command;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::backend::{Backend, Daemon, Helper, Kind, Launch, Site, free_port};
use crate::error::ActionError;

/// What the action reported when it started the helper, beside its configuration.
const DEPLOYMENT_FILE: &str = "deployment.json";

/// Local processes under `STATE_DIR`.
pub struct Processes {
    state_dir: PathBuf,
}

impl Processes {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            state_dir: state_dir.to_owned(),
        }
    }

    /// `STATE_DIR/poolers/<database>/pgbouncer.ini`, `STATE_DIR/caches/<database>/redis.conf`.
    fn place(&self, helper: &Helper) -> Place {
        match helper.kind {
            Kind::Pooler => Place::new(
                &self.state_dir,
                "poolers",
                &helper.database_id,
                "pgbouncer",
                "ini",
            ),
            // The process title names the config file (`proc-title-template` in its
            // configuration), which is how the running Redis is recognised.
            Kind::Cache => Place::new(
                &self.state_dir,
                "caches",
                &helper.database_id,
                "redis",
                "conf",
            ),
        }
    }

    /// Starts the daemon as [`RUN_AS`] when we are root.
    async fn spawn(kind: Kind, place: &Place) -> Result<(), ActionError> {
        let program = kind.program();
        let root = running_as_root();
        let mut command = match kind {
            Kind::Pooler => {
                let mut c = Command::new(program);
                c.arg("-d");
                if root {
                    c.args(["-u", RUN_AS]);
                }
                c
            }
            Kind::Cache if root => {
                let mut c = Command::new("runuser");
                c.args(["-u", RUN_AS, "--", program]);
                c
            }
            Kind::Cache => Command::new(program),
        };
        let output = command.arg(&place.config).output().await.map_err(|e| {
            ActionError::host(
                format!("cannot start {program} (install the {program} package)"),
                e,
            )
        })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ActionError::Refused(format!(
                "{program} did not start: {}{}",
                String::from_utf8_lossy(&output.stderr).trim(),
                place.log_text()
            )))
        }
    }

    async fn run(&self, launch: &Launch, place: &Place) -> Result<u32, ActionError> {
        tokio::fs::create_dir_all(&place.dir)
            .await
            .map_err(|e| ActionError::host(place.dir.display().to_string(), e))?;
        for (name, contents) in &launch.files {
            write_private(&place.dir.join(name), contents).await?;
        }
        hand_over(&place.dir).await?;
        let kind = launch.helper.kind;
        Self::spawn(kind, place).await?;
        let port = launch.site.port;
        if !wait_for_port(port, Duration::from_secs(10)).await {
            let log = place.log_text();
            return Err(ActionError::Refused(format!(
                "{} does not listen on port {port}: {log}",
                kind.title()
            )));
        }
        place.started().await.ok_or_else(|| {
            ActionError::Refused(format!(
                "{} listens but its pid file never appeared",
                kind.title()
            ))
        })
    }
}

impl Backend for Processes {
    fn name(&self) -> &'static str {
        "process"
    }

    fn find<'a>(&'a self, helper: &'a Helper) -> BoxFuture<'a, Result<Option<Value>, ActionError>> {
        Box::pin(async move {
            let place = self.place(helper);
            let Some(pid) = place.running() else {
                return Ok(None);
            };
            let mut known = std::fs::read_to_string(place.dir.join(DEPLOYMENT_FILE))
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .unwrap_or_else(
                    || json!({"backend": "process", "config_dir": place.dir.display().to_string()}),
                );
            known["pid"] = json!(pid);
            Ok(Some(known))
        })
    }

    fn site(&self, helper: &Helper) -> Result<Site, ActionError> {
        let place = self.place(helper);
        Ok(Site {
            listen_addr: "127.0.0.1".into(),
            port: free_port()?,
            host: "127.0.0.1".into(),
            daemon: Some(Daemon {
                pid_file: place.pid_file.clone(),
                log: place.log.clone(),
                data_dir: place.dir.clone(),
            }),
            config_dir: place.dir,
            network: None,
            container_name: None,
        })
    }

    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<Value, ActionError>> {
        Box::pin(async move {
            let place = self.place(&launch.helper);
            let pid = match self.run(&launch, &place).await {
                Ok(pid) => pid,
                Err(why) => {
                    // Nothing is left running.
                    let _ = place.tear_down().await;
                    return Err(why);
                }
            };
            let mut deployment = launch.deployment;
            deployment["pid"] = json!(pid);
            deployment["config_dir"] = json!(place.dir.display().to_string());
            write_private(&place.dir.join(DEPLOYMENT_FILE), &deployment.to_string()).await?;
            Ok(deployment)
        })
    }

    fn remove<'a>(&'a self, helper: &'a Helper) -> BoxFuture<'a, Result<Value, ActionError>> {
        Box::pin(async move {
            let place = self.place(helper);
            let stopped = place.tear_down().await?;
            Ok(json!({"stopped": stopped, "removed": place.dir.display().to_string()}))
        })
    }
}

/// The unprivileged user the helpers run as when the executor runs as root (PgBouncer refuses
/// root; Redis should not have it).
pub const RUN_AS: &str = "postgres";

/// Where one deployed helper lives: its directory, config file (whose path, in the process's
/// command line, is how the process is recognised), pid file and log.
pub struct Place {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub pid_file: PathBuf,
    pub log: PathBuf,
}

impl Place {
    /// `<state>/<kind>/<database>/`, with `<program>.<config extension>`, `.pid` and `.log`.
    pub fn new(
        state_dir: &Path,
        kind: &str,
        database_id: &str,
        program: &str,
        extension: &str,
    ) -> Self {
        let dir = directory(state_dir, kind, database_id);
        Self {
            config: dir.join(format!("{program}.{extension}")),
            pid_file: dir.join(format!("{program}.pid")),
            log: dir.join(format!("{program}.log")),
            dir,
        }
    }

    fn marker(&self) -> String {
        self.config.display().to_string()
    }

    /// The helper's pid, if it runs.
    pub fn running(&self) -> Option<u32> {
        our_pid(&self.pid_file, &self.marker())
    }

    /// Waits for the pid file of a helper that already listens.
    pub async fn started(&self) -> Option<u32> {
        wait_for_pid(&self.pid_file, &self.marker(), Duration::from_secs(5)).await
    }

    /// What the helper logged (for an error message).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the helper if it runs and removes its directory; true when it was running.
    pub async fn tear_down(&self) -> Result<bool, ActionError> {
        let stopped = match self.running() {
            Some(pid) => {
                stop(pid, &self.pid_file, &self.marker(), Duration::from_secs(10)).await?;
                true
            }
            None => false,
        };
        if self.dir.exists() {
            tokio::fs::remove_dir_all(&self.dir)
                .await
                .map_err(|e| ActionError::host(self.dir.display().to_string(), e))?;
        }
        Ok(stopped)
    }
}

/// `<state>/<kind>/<database id made safe for a file name>`, absolute (the path is how a running
/// helper is recognised, whatever the executor's working directory).
fn directory(state_dir: &Path, kind: &str, database_id: &str) -> PathBuf {
    let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_owned());
    state_dir
        .join(kind)
        .join(super::backend::safe_name(database_id))
}

/// Whether this process runs as root (the owner of `/proc/self` is the process's user).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Makes `dir` and its files belong to [`RUN_AS`] (when we are root), keeping them private.
pub async fn hand_over(dir: &Path) -> Result<(), ActionError> {
    if !running_as_root() {
        return Ok(());
    }
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{RUN_AS}:"))
        .arg(dir)
        .status()
        .await
        .map_err(|e| ActionError::host("chown", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(ActionError::Helper(format!(
            "chown -R {RUN_AS} {} failed",
            dir.display()
        )))
    }
}

/// Writes a file only its owner can read.
pub async fn write_private(path: &Path, contents: &str) -> Result<(), ActionError> {
    use tokio::io::AsyncWriteExt;
    let failed = |e| ActionError::host(path.display().to_string(), e);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(failed)?;
    file.write_all(contents.as_bytes()).await.map_err(failed)?;
    file.flush().await.map_err(failed)
}

/// Waits until something accepts connections on `port`.
pub async fn wait_for_port(port: u16, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The pid in `pid_file` if that process is alive and its command line mentions `marker` (our
/// config file), so a reused pid is never mistaken for ours.
pub fn our_pid(pid_file: &Path, marker: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // A zombie (state Z) has exited; nothing reaps it here.
    let zombie = state
        .rsplit(')')
        .next()
        .is_some_and(|rest| rest.trim_start().starts_with('Z'));
    (cmdline.contains(marker) && !zombie).then_some(pid)
}

/// Waits until `pid_file` names a live process of ours (a daemon may listen before it writes it).
pub async fn wait_for_pid(pid_file: &Path, marker: &str, limit: Duration) -> Option<u32> {
    let started = Instant::now();
    loop {
        if let Some(pid) = our_pid(pid_file, marker) {
            return Some(pid);
        }
        if started.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks process `pid` to stop (SIGTERM) and waits for it; SIGKILL after `limit`.
pub async fn stop(
    pid: u32,
    pid_file: &Path,
    marker: &str,
    limit: Duration,
) -> Result<(), ActionError> {
    let signal = |name: &'static str| async move {
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .await
            .map_err(|e| ActionError::host("kill", e))
    };
    signal("TERM").await?;
    let started = Instant::now();
    while our_pid(pid_file, marker) == Some(pid) {
        if started.elapsed() > limit {
            signal("KILL").await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if our_pid(pid_file, marker) == Some(pid) {
        return Err(ActionError::Helper(format!("process {pid} did not stop")));
    }
    Ok(())
}

/// A random secret: 32 hex characters from the OS's randomness.
pub fn secret() -> Result<String, ActionError> {
    let mut buffer = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .map_err(|e| ActionError::host("/dev/urandom", e))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}
