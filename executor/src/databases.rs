//! The executor's way into each watched database: the connection string from knowledge (re-read
//! every minute), one reused pool per database, and dedicated connections for statements that
//! may run for minutes (an index build, a VACUUM) with that action's own time limit. Every
//! session is named `startupmonkey-executor` and runs under a statement and a lock timeout.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use proto::clients::Knowledge;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, PgPool};
use tokio::sync::Mutex;

use crate::error::DatabaseError;

pub const APPLICATION_NAME: &str = "startupmonkey-executor";
/// Starts every long statement the executor runs on a monitored database (an index build, a
/// VACUUM), so the collector leaves it out of the application's latency and statements: our own
/// work never raises a detection.
pub const MARKER: &str = "/* startupmonkey-executor */";

/// `statement` as the executor sends it: after [`MARKER`].
pub fn marked(statement: &str) -> String {
    format!("{MARKER} {statement}")
}

/// A literal statement after [`MARKER`], joined at compile time.
macro_rules! marked_sql {
    ($sql:literal) => {
        concat!("/* startupmonkey-executor */ ", $sql)
    };
}
pub(crate) use marked_sql;
const REFRESH: Duration = Duration::from_secs(60);
/// Pooled sessions: short statements only.
const POOL_STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// DDL never queues behind another session's lock for longer than this.
pub const LOCK_TIMEOUT_MS: u64 = 2_000;

/// A watched database as the executor reaches it.
#[derive(Clone)]
pub struct Database {
    pub id: String,
    pub connection_string: String,
    pub pool: PgPool,
}

impl Database {
    /// A lazily connecting pool for `connection_string`.
    pub fn connect(id: &str, connection_string: &str) -> Result<Self, DatabaseError> {
        let pool = PgPoolOptions::new()
            .max_connections(3)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Some(Duration::from_secs(60)))
            .connect_lazy_with(
                options(connection_string, POOL_STATEMENT_TIMEOUT_MS).map_err(|source| {
                    DatabaseError::ConnectionString {
                        id: id.to_owned(),
                        source,
                    }
                })?,
            );
        Ok(Self {
            id: id.to_owned(),
            connection_string: connection_string.to_owned(),
            pool,
        })
    }

    /// A connection of its own, outside the pool, for one long statement: `statement_timeout`
    /// is the action's time limit, so PostgreSQL itself stops the statement when it runs out.
    pub async fn dedicated(
        &self,
        statement_timeout: Duration,
    ) -> Result<PgConnection, DatabaseError> {
        options(
            &self.connection_string,
            statement_timeout.as_millis() as u64,
        )
        .map_err(|source| DatabaseError::ConnectionString {
            id: self.id.clone(),
            source,
        })?
        .connect()
        .await
        .map_err(DatabaseError::Connect)
    }
}

pub struct Databases {
    knowledge: Knowledge,
    known: Mutex<HashMap<String, (Instant, Database)>>,
}

impl Databases {
    pub fn new(knowledge: Knowledge) -> Self {
        Self {
            knowledge,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The registered database `id`, or why it cannot be reached.
    pub async fn get(&self, id: &str) -> Result<Database, DatabaseError> {
        let mut known = self.known.lock().await;
        if let Some((checked, database)) = known.get(id)
            && checked.elapsed() < REFRESH
        {
            return Ok(database.clone());
        }
        let Some(connection_string) = self.knowledge.connection_string(id).await? else {
            known.remove(id);
            return Err(DatabaseError::NotRegistered(id.to_owned()));
        };
        if let Some((checked, database)) = known.get_mut(id)
            && database.connection_string == connection_string
        {
            *checked = Instant::now();
            return Ok(database.clone());
        }
        let database = Database::connect(id, &connection_string)?;
        known.insert(id.to_owned(), (Instant::now(), database.clone()));
        Ok(database)
    }
}

fn options(
    connection_string: &str,
    statement_timeout_ms: u64,
) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(connection_string)?
        .application_name(APPLICATION_NAME)
        .options([
            ("statement_timeout", statement_timeout_ms.to_string()),
            ("lock_timeout", LOCK_TIMEOUT_MS.to_string()),
            ("idle_in_transaction_session_timeout", "60000".to_owned()),
        ]))
}

/// How a statement run by [`execute_or_stop`] ended.
pub struct Run {
    pub outcome: Result<(), sqlx::Error>,
    /// `stop` started first: the statement was cancelled (or finished while being cancelled).
    pub stopped: bool,
}

/// How often a cancel is sent again while a stopped statement has not ended (a cancel that
/// arrives before the statement started is lost).
const CANCEL_REPEAT: Duration = Duration::from_secs(2);

/// Runs `statement` on `conn`, a dedicated session of `database`. When `stop` starts first, the
/// statement is cancelled on the server — `pg_cancel_backend` of this session only (its pid,
/// named `startupmonkey-executor`), sent from the pool — and waited for until it ends, so the
/// caller can clean up what it left (an INVALID index).
pub async fn execute_or_stop(
    database: &Database,
    conn: &mut PgConnection,
    statement: &str,
    stop: &lifecycle::Shutdown,
) -> Result<Run, sqlx::Error> {
    let pid: i32 = sqlx::query_scalar(marked_sql!("SELECT pg_backend_pid()"))
        .fetch_one(&mut *conn)
        .await?;
    if stop.is_triggered() {
        return Ok(Run {
            outcome: Ok(()),
            stopped: true,
        });
    }
    let run = sqlx::query(sqlx::AssertSqlSafe(marked(statement)))
        .persistent(false)
        .execute(&mut *conn);
    tokio::pin!(run);
    let run = tokio::select! {
        biased;
        outcome = &mut run => Run { outcome: outcome.map(|_| ()), stopped: false },
        () = stop.wait() => loop {
            sqlx::query(
                marked_sql!("SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
                 WHERE pid = $1 AND application_name = $2"),
            )
            .bind(pid)
            .bind(APPLICATION_NAME)
            .execute(&database.pool)
            .await?;
            if let Ok(outcome) = tokio::time::timeout(CANCEL_REPEAT, &mut run).await {
                break Run { outcome: outcome.map(|_| ()), stopped: true };
            }
        },
    };
    Ok(run)
}
