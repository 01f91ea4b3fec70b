//! `deploy_connection_pooler`: a real PgBouncer in front of the database, as a local process
//! (the `process` backend: bare metal and tests; a Docker backend for compose deployments is not
//! built yet). It gets its own directory under `STATE_DIR/poolers/`, a free loopback port, the
//! credentials of the registered connection (in a 0600 auth file), runs as a non-root user, and
//! daemonizes, so it outlives an executor restart; the executor finds it again from its pid file.
//!
//! `pool_mode = session` by default: PgBouncer 1.18 (Debian's) cannot pool prepared statements
//! in transaction mode (1.21+ can), and drivers such as sqlx, JDBC and asyncpg use them. The pool
//! is sized from measurement (the analyser's figure: 80 % of the usable connections). The result
//! gives the application's new connection string (password masked). Rollback stops the process
//! and removes its directory.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;

use super::processes::{self, Place, RUN_AS};
use super::{Context, shown};

const BINARY: &str = "pgbouncer";
const DEFAULT_POOL_SIZE: u32 = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployPooler {
    pub database_id: String,
    pub pool_size: u32,
    pub pool_mode: String,
}

fn place(state_dir: &Path, database_id: &str) -> Place {
    Place::new(state_dir, "poolers", database_id, "pgbouncer", "ini")
}

impl DeployPooler {
    pub fn from_metadata(database_id: &str, metadata: &Value) -> Result<Self, String> {
        let pool_size = match metadata.get("pool_size") {
            None | Some(Value::Null) => DEFAULT_POOL_SIZE,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    format!(
                        "pool_size {} must be a whole number from 1 to 10000",
                        shown(v.to_string())
                    )
                })? as u32,
        };
        let pool_mode = match metadata.get("pool_mode").and_then(Value::as_str) {
            None => "session".to_owned(),
            Some(mode @ ("session" | "transaction")) => mode.to_owned(),
            Some(other) => {
                return Err(format!(
                    "pool_mode {} must be session or transaction",
                    shown(format!("{other:?}"))
                ));
            }
        };
        Ok(Self {
            database_id: database_id.to_owned(),
            pool_size,
            pool_mode,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "deploy PgBouncer ({} mode, pool of {}) in front of {}",
            self.pool_mode, self.pool_size, self.database_id
        )
    }

    pub async fn execute(&self, context: &Context) -> Result<Value, String> {
        let database = context.database()?;
        let place = place(&context.state_dir, &self.database_id);
        let state_file = place.dir.join("deployment.json");
        // Already deployed and running: report it instead of starting a second one.
        if let Some(pid) = place.running()
            && let Ok(state) = std::fs::read_to_string(&state_file)
        {
            let mut known: Value = serde_json::from_str(&state).map_err(|e| e.to_string())?;
            known["pid"] = json!(pid);
            known["note"] = json!("already running; nothing started");
            return Ok(known);
        }
        let target = Target::parse(&database.connection_string)?;
        let port = processes::free_port()?;
        std::fs::create_dir_all(&place.dir).map_err(|e| format!("{}: {e}", place.dir.display()))?;
        let auth_file = place.dir.join("userlist.txt");
        processes::write_private(
            &auth_file,
            &format!("{} {}\n", quoted(&target.user), quoted(&target.password)),
        )?;
        let reserve = (self.pool_size / 10).clamp(1, 5);
        let ini = format!(
            "[databases]\n\
             {name} = host={host} port={db_port} dbname={name} user={user}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = {auth_type}\n\
             auth_file = {auth}\n\
             pool_mode = {mode}\n\
             default_pool_size = {pool}\n\
             reserve_pool_size = {reserve}\n\
             max_client_conn = {max_client}\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             application_name_add_host = 0\n\
             logfile = {log}\n\
             pidfile = {pid}\n",
            name = config_value(&target.database),
            host = config_value(&target.host),
            db_port = target.port,
            user = config_value(&target.user),
            auth_type = if target.password.is_empty() {
                "trust"
            } else {
                "scram-sha-256"
            },
            auth = auth_file.display(),
            mode = self.pool_mode,
            pool = self.pool_size,
            max_client = (self.pool_size * 10).max(200),
            log = place.log.display(),
            pid = place.pid_file.display(),
        );
        processes::write_private(&place.config, &ini)?;
        processes::hand_over(&place.dir)?;
        let mut command = std::process::Command::new(BINARY);
        command.arg("-d");
        if processes::running_as_root() {
            command.args(["-u", RUN_AS]);
        }
        let output = command
            .arg(&place.config)
            .output()
            .map_err(|e| format!("cannot start {BINARY}: {e} (install the pgbouncer package)"))?;
        if !output.status.success() {
            return Err(format!(
                "{BINARY} did not start: {}{}",
                String::from_utf8_lossy(&output.stderr).trim(),
                place.log_text()
            ));
        }
        if !processes::wait_for_port(port, Duration::from_secs(10)).await {
            let log = place.log_text();
            return Err(format!("PgBouncer does not listen on port {port}: {log}"));
        }
        let pid = place
            .started()
            .await
            .ok_or("PgBouncer listens but its pid file never appeared")?;
        let deployment = json!({
            "backend": "process",
            "host": "127.0.0.1",
            "port": port,
            "pid": pid,
            "config_dir": place.dir.display().to_string(),
            "pool_mode": self.pool_mode,
            "default_pool_size": self.pool_size,
            "reserve_pool_size": reserve,
            "max_client_conn": (self.pool_size * 10).max(200),
            "connection_string": format!(
                "postgres://{}{}@127.0.0.1:{port}/{}",
                target.user,
                if target.password.is_empty() { "" } else { ":***" },
                target.database
            ),
            "instruction": "Point the application at this connection string (same user and password); \
                            nothing else changes.",
            "compatibility": "session pooling: every client keeps its server connection for the \
                              session, so prepared statements work. Transaction pooling multiplexes \
                              more clients but breaks prepared statements before PgBouncer 1.21.",
        });
        processes::write_private(&state_file, &deployment.to_string())?;
        Ok(deployment)
    }

    pub async fn rollback(&self, context: &Context) -> Result<Value, String> {
        let place = place(&context.state_dir, &self.database_id);
        let stopped = place.tear_down().await?;
        Ok(json!({"stopped": stopped, "removed": place.dir.display().to_string()}))
    }
}

/// What PgBouncer connects to, from the registered connection string.
struct Target {
    host: String,
    port: u16,
    database: String,
    user: String,
    password: String,
}

impl Target {
    fn parse(connection_string: &str) -> Result<Self, String> {
        let options = PgConnectOptions::from_str(connection_string)
            .map_err(|e| format!("invalid connection string: {e}"))?;
        let password = url::Url::parse(connection_string)
            .ok()
            .and_then(|u| u.password().map(str::to_owned))
            .map(|p| {
                percent_encoding::percent_decode_str(&p)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        let host = match options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => options.get_host().to_owned(),
        };
        Ok(Self {
            host,
            port: options.get_port(),
            database: options
                .get_database()
                .unwrap_or(options.get_username())
                .to_owned(),
            user: options.get_username().to_owned(),
            password,
        })
    }
}

/// A userlist.txt field: `"..."` with `"` doubled.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// A value in pgbouncer.ini's connection string: quoted when it has spaces or quotes.
fn config_value(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
    {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}
