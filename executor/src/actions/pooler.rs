//! `deploy_connection_pooler`: a real PgBouncer in front of the database, where `DEPLOY_BACKEND`
//! says (`backend.rs`): a local process (`process`: its own directory under `STATE_DIR/poolers/`,
//! a free loopback port, daemonized, found again from its pid file) or a container
//! (`docker`: `startupmonkey-pooler-<database>`, found again by its name, logging to stderr).
//! Either way it gets the credentials of the registered connection in a 0600 auth file, runs as a
//! non-root user and outlives an executor restart; a second run reports the one that runs.
//!
//! `pool_mode = session` by default: PgBouncer 1.18 (Debian's) cannot pool prepared statements
//! in transaction mode (1.21+ can), and drivers such as sqlx, JDBC and asyncpg use them. The pool
//! is sized from measurement (the analyser's figure: 80 % of the usable connections). The result
//! gives the application's new connection string (password masked). Rollback stops and removes
//! the process and its directory, or the container.

use std::str::FromStr;

use std::future::Future;

use proto::actions::{DeployPooler, HelperRemoved, PoolMode, PoolerDeployed};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;

use super::backend::{Helper, Kind, Launch};
use super::{Context, shown};
use crate::error::ActionError;

const DEFAULT_POOL_SIZE: u32 = 20;

/// `deploy_connection_pooler` as the executor runs it.
pub trait DeployPoolerRun: Sized {
    fn from_metadata(database_id: &str, metadata: &Value) -> Result<Self, ActionError>;
    fn describe(&self) -> String;
    fn execute(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<PoolerDeployed, ActionError>> + Send;
    fn rollback(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<HelperRemoved, ActionError>> + Send;
}

impl DeployPoolerRun for DeployPooler {
    fn from_metadata(database_id: &str, metadata: &Value) -> Result<Self, ActionError> {
        let pool_size = match metadata.get("pool_size") {
            None | Some(Value::Null) => DEFAULT_POOL_SIZE,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    ActionError::Invalid(format!(
                        "pool_size {} must be a whole number from 1 to 10000",
                        shown(v.to_string())
                    ))
                })? as u32,
        };
        let pool_mode = match metadata.get("pool_mode").and_then(Value::as_str) {
            None | Some("session") => PoolMode::Session,
            Some("transaction") => PoolMode::Transaction,
            Some(other) => {
                return Err(ActionError::Invalid(format!(
                    "pool_mode {} must be session or transaction",
                    shown(format!("{other:?}"))
                )));
            }
        };
        Ok(Self {
            database_id: database_id.to_owned(),
            pool_size,
            pool_mode,
        })
    }

    fn describe(&self) -> String {
        format!(
            "deploy PgBouncer ({} mode, pool of {}) in front of {}",
            self.pool_mode, self.pool_size, self.database_id
        )
    }

    async fn execute(&self, context: &Context) -> Result<PoolerDeployed, ActionError> {
        let database = context.database()?;
        let backend = context.backend();
        let helper = helper(self);
        // Already deployed and running: report it instead of starting a second one.
        if let Some(mut known) = backend.find(&helper).await? {
            known["note"] = json!("already running; nothing started");
            return super::deployment(known);
        }
        let target = Target::parse(&database.connection_string)?;
        let site = backend.site(&helper)?;
        site.reaches(&target.host)?;
        let auth_file = site.file("userlist.txt");
        let reserve = (self.pool_size / 10).clamp(1, 5);
        let max_client = (self.pool_size * 10).max(200);
        let mut ini = format!(
            "[databases]\n\
             {name} = host={host} port={db_port} dbname={name} user={user}\n\
             [pgbouncer]\n\
             listen_addr = {listen}\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = {auth_type}\n\
             auth_file = {auth}\n\
             pool_mode = {mode}\n\
             default_pool_size = {pool}\n\
             reserve_pool_size = {reserve}\n\
             max_client_conn = {max_client}\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             application_name_add_host = 0\n",
            name = config_value(&target.database),
            host = config_value(&target.host),
            db_port = target.port,
            user = config_value(&target.user),
            listen = site.listen_addr,
            port = site.port,
            auth_type = if target.password.is_empty() {
                "trust"
            } else {
                "scram-sha-256"
            },
            auth = auth_file.display(),
            mode = self.pool_mode,
            pool = self.pool_size,
        );
        // A daemon writes its pid and log to files; in a container it logs to stderr.
        if let Some(daemon) = &site.daemon {
            ini.push_str(&format!(
                "logfile = {}\npidfile = {}\n",
                daemon.log.display(),
                daemon.pid_file.display()
            ));
        }
        let deployment = json!({
            "backend": backend.name(),
            "host": site.host,
            "port": site.port,
            "network": site.network,
            "pool_mode": self.pool_mode,
            "default_pool_size": self.pool_size,
            "reserve_pool_size": reserve,
            "max_client_conn": max_client,
            "connection_string": format!(
                "postgres://{}{}@{}:{}/{}",
                target.user,
                if target.password.is_empty() { "" } else { ":***" },
                site.host,
                site.port,
                target.database
            ),
            "instruction": "Point the application at this connection string (same user and password); \
                            nothing else changes.",
            "compatibility": "session pooling: every client keeps its server connection for the \
                              session, so prepared statements work. Transaction pooling multiplexes \
                              more clients but breaks prepared statements before PgBouncer 1.21.",
        });
        let deployed = backend
            .start(Launch {
                helper,
                files: vec![
                    (
                        "userlist.txt",
                        format!("{} {}\n", quoted(&target.user), quoted(&target.password)),
                    ),
                    (Kind::Pooler.config_file(), ini),
                ],
                site,
                memory_bytes: None,
                deployment,
            })
            .await?;
        super::deployment(deployed)
    }

    async fn rollback(&self, context: &Context) -> Result<HelperRemoved, ActionError> {
        super::deployment(context.backend().remove(&helper(self)).await?)
    }
}

fn helper(plan: &DeployPooler) -> Helper {
    Helper {
        kind: Kind::Pooler,
        database_id: plan.database_id.clone(),
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
    fn parse(connection_string: &str) -> Result<Self, ActionError> {
        let options = PgConnectOptions::from_str(connection_string)
            .map_err(|e| ActionError::Refused(format!("invalid connection string: {e}")))?;
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
