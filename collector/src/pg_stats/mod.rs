//! Reading PostgreSQL's statistics, one module per concern. Every query is read-only, carries the
//! `/* startupmonkey-collector */` marker (so our own statements are left out of the latency
//! figures) and runs under the pool's `statement_timeout` plus a client-side deadline. A query
//! that fails is reported in `Sample::errors` and the rest are still collected.
//!
//! Minimum server version: PostgreSQL 12 (pg_stat_statements 1.8 column names from 13 on, the
//! older ones before).

pub mod activity;
pub mod capabilities;
pub mod database;
pub mod server_wide;
pub mod settings;
pub mod statements;
pub mod tables;

use std::future::Future;
use std::time::Duration;

use proto::knowledge::DatabaseFeatures;
use proto::metrics::ServerSettings;
use sqlx::PgPool;

pub use activity::{Activity, Connections, QuerySample};
pub use database::DatabaseCounters;
pub use server_wide::ServerWide;
pub use statements::StatementCounters;
pub use tables::{Details, TableCounters};

/// Prefix of every statement we send, so pg_stat_statements rows of our own are recognisable.
pub const MARKER: &str = "/* startupmonkey-collector */";

/// Longest a single statistics query may take on the client side.
pub const QUERY_DEADLINE: Duration = Duration::from_secs(5);

/// A failed query: what it was for and why it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryError {
    pub what: &'static str,
    pub error: String,
}

/// Everything read from one database in one cycle; counters are lifetime values.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub server_version: String,
    pub server_version_num: i32,
    pub database_name: String,
    pub settings: ServerSettings,
    pub capabilities: DatabaseFeatures,
    pub connections: Option<Connections>,
    pub database: Option<DatabaseCounters>,
    /// Every table's counters; sizes and indexes are read afterwards, for the tables the snapshot
    /// carries only (`tables::Details`).
    pub tables: Vec<TableCounters>,
    /// `None` when pg_stat_statements cannot be read.
    pub statements: Option<Vec<StatementCounters>>,
    pub activity: Option<Activity>,
    /// Each client session's latest statement with its literals (PostgreSQL 14+, with
    /// pg_stat_statements): read for `constants`, never sent.
    pub query_samples: Vec<QuerySample>,
    pub host_memory_bytes: Option<i64>,
    pub errors: Vec<QueryError>,
}

/// Runs a query with the client-side deadline, recording a failure instead of returning it.
pub async fn attempt<T, F>(errors: &mut Vec<QueryError>, what: &'static str, query: F) -> Option<T>
where
    F: Future<Output = Result<T, sqlx::Error>>,
{
    match tokio::time::timeout(QUERY_DEADLINE, query).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            errors.push(QueryError {
                what,
                error: describe(&error),
            });
            None
        }
        Err(_) => {
            errors.push(QueryError {
                what,
                error: format!("no answer within {QUERY_DEADLINE:?}"),
            });
            None
        }
    }
}

/// A database error's message without the connection details sqlx may add.
pub fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// Why nothing could be collected from a database.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{}", describe(.0))]
    Unreachable(#[from] sqlx::Error),
    #[error("the server did not answer within {} s", QUERY_DEADLINE.as_secs())]
    TimedOut,
}

/// Reads everything but tables' sizes and indexes (`tables::Details`, once the window chose the
/// tables a snapshot carries); fails only when the database cannot be reached at all. Sessions and
/// statements come from a read of the whole server, shared with its other databases
/// (`server_wide`).
pub async fn collect(
    pool: &PgPool,
    local_host: bool,
    server_wide: &ServerWide,
) -> Result<Sample, CollectError> {
    let mut sample = Sample::default();
    // One cheap round trip first: if the server is unreachable, say so instead of N errors.
    let version = tokio::time::timeout(QUERY_DEADLINE, settings::version(pool))
        .await
        .map_err(|_| CollectError::TimedOut)??;
    let version_num = version.server_version_num;
    let server = server_wide.server(&version.server_identity);
    sample.server_version = version.server_version;
    sample.server_version_num = version_num;
    sample.database_name = version.database_name;
    let name = sample.database_name.as_str();
    let errors = &mut sample.errors;

    if let Some(settings) = attempt(errors, "settings", settings::read(pool)).await {
        sample.settings = settings;
    }
    if let Some(capabilities) = attempt(errors, "capabilities", capabilities::read(pool)).await {
        sample.capabilities = capabilities;
    }
    sample.database = attempt(errors, "database", database::read(pool)).await;
    if let Some(tables) = attempt(errors, "tables", tables::read(pool)).await {
        sample.tables = tables;
    }
    let sessions = attempt(
        errors,
        "activity",
        server_wide.sessions(&server, pool, version_num),
    )
    .await;
    if let Some(sessions) = &sessions {
        sample.connections = Some(sessions.connections(name));
        sample.activity = Some(sessions.activity.clone());
    }
    if sample.capabilities.pg_stat_statements {
        let statements = attempt(
            errors,
            "pg_stat_statements",
            server_wide.statements(&server, pool, version_num),
        )
        .await;
        sample.statements = statements.map(|all| all.get(name).cloned().unwrap_or_default());
        // Samples need query_id in pg_stat_activity (PostgreSQL 14+).
        if version_num >= 140_000
            && let Some(sessions) = &sessions
        {
            sample.query_samples = sessions.samples(name);
        }
    }
    sample.capabilities.server_version_num = version_num;
    sample.host_memory_bytes = if local_host {
        settings::local_memory_bytes()
    } else {
        None
    };
    Ok(sample)
}
