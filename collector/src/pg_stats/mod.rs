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
pub mod samples;
pub mod settings;
pub mod statements;
pub mod tables;

use std::future::Future;
use std::time::Duration;

use proto::knowledge::DatabaseFeatures;
use proto::metrics::ServerSettings;
use sqlx::PgPool;

pub use activity::{Activity, Connections};
pub use database::DatabaseCounters;
pub use samples::QuerySample;
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
/// tables a snapshot carries); fails only when the database cannot be reached at all.
pub async fn collect(pool: &PgPool, local_host: bool) -> Result<Sample, CollectError> {
    let mut sample = Sample::default();
    // One cheap round trip first: if the server is unreachable, say so instead of N errors.
    let (version, version_num, database_name) =
        tokio::time::timeout(QUERY_DEADLINE, settings::version(pool))
            .await
            .map_err(|_| CollectError::TimedOut)??;
    sample.server_version = version;
    sample.server_version_num = version_num;
    sample.database_name = database_name;
    let errors = &mut sample.errors;

    if let Some(settings) = attempt(errors, "settings", settings::read(pool)).await {
        sample.settings = settings;
    }
    if let Some(capabilities) = attempt(errors, "capabilities", capabilities::read(pool)).await {
        sample.capabilities = capabilities;
    }
    sample.connections = attempt(errors, "connections", activity::connections(pool)).await;
    sample.database = attempt(errors, "database", database::read(pool)).await;
    if let Some(tables) = attempt(errors, "tables", tables::read(pool)).await {
        sample.tables = tables;
    }
    sample.activity = attempt(errors, "activity", activity::read(pool)).await;
    if sample.capabilities.pg_stat_statements {
        sample.statements = attempt(
            errors,
            "pg_stat_statements",
            statements::read(pool, version_num),
        )
        .await;
        if version_num >= 140_000
            && let Some(samples) = attempt(errors, "statement samples", samples::read(pool)).await
        {
            sample.query_samples = samples;
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
