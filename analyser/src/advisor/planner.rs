//! The advisor's own connection to a monitored database, and the two things it asks there: the
//! planner's statistics on candidate columns (`pg_stats`) and, with HypoPG installed, the
//! planner's cost of each statement with and without a set of hypothetical indexes, and their
//! estimated sizes.
//!
//! The connection is read-only by construction (`default_transaction_read_only`), one per
//! database, named `startupmonkey-analyser`, every statement under a 2 s timeout and a 200 ms
//! lock timeout; HypoPG's indexes live only in this session's memory and are reset before and
//! after each probe. See docs/decisions/0004.
//!
//! Statements come from pg_stat_statements with `$n` placeholders, which PostgreSQL 15 cannot
//! EXPLAIN directly: each is PREPAREd and explained as `EXECUTE` with NULL arguments under
//! `plan_cache_mode = force_generic_plan`, so the plan does not depend on the NULLs. A statement
//! is prepared after the hypothetical index exists, so no cached plan hides it.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use proto::clients::Knowledge;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Postgres, Row};
use tokio::sync::Mutex;

pub const APPLICATION_NAME: &str = "startupmonkey-analyser";
/// Every statement we send starts with this mark, so the collector leaves it out of the workload.
macro_rules! marked {
    ($sql:literal) => {
        concat!("/* startupmonkey-analyser */ ", $sql)
    };
}
/// How long a connection string read from knowledge is trusted before asking again.
const CONNECTION_REFRESH: Duration = Duration::from_secs(60);
/// Upper bound on one whole probe (several statements), on top of each statement's timeout.
const PROBE_DEADLINE: Duration = Duration::from_secs(20);

/// Why the planner could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    #[error("reading the connection string from knowledge: {0}")]
    Knowledge(#[from] proto::error::Error),
    #[error("database {0} is not registered")]
    NotRegistered(String),
    #[error("invalid connection string: {}", describe(.0))]
    ConnectionString(#[source] sqlx::Error),
    #[error("{}", describe(.0))]
    Query(#[from] sqlx::Error),
    #[error("hypothetical index refused: {}", describe(.0))]
    Hypothetical(#[source] sqlx::Error),
    #[error("the planner probe took longer than {} s", PROBE_DEADLINE.as_secs())]
    ProbeTimedOut,
    #[error("the planner gave a cost for none of the table's statements")]
    NoCost,
}

/// One read-only pool per monitored database, opened on first use.
pub struct Planner {
    knowledge: Knowledge,
    pools: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    connection_string: String,
    checked: Instant,
    pool: PgPool,
}

impl Planner {
    pub fn new(knowledge: Knowledge) -> Self {
        Self {
            knowledge,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// A session on `database_id`, or why there is none.
    pub async fn session(
        &self,
        database_id: &str,
    ) -> Result<PoolConnection<Postgres>, PlannerError> {
        let pool = self.pool(database_id).await?;
        Ok(pool.acquire().await?)
    }

    async fn pool(&self, database_id: &str) -> Result<PgPool, PlannerError> {
        let mut pools = self.pools.lock().await;
        if let Some(entry) = pools.get(database_id)
            && entry.checked.elapsed() < CONNECTION_REFRESH
        {
            return Ok(entry.pool.clone());
        }
        let Some(connection_string) = self.knowledge.connection_string(database_id).await? else {
            pools.remove(database_id);
            return Err(PlannerError::NotRegistered(database_id.to_owned()));
        };
        if let Some(entry) = pools.get_mut(database_id)
            && entry.connection_string == connection_string
        {
            entry.checked = Instant::now();
            return Ok(entry.pool.clone());
        }
        let options =
            connect_options(&connection_string).map_err(PlannerError::ConnectionString)?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Some(Duration::from_secs(60)))
            .connect_lazy_with(options);
        pools.insert(
            database_id.to_owned(),
            Entry {
                connection_string,
                checked: Instant::now(),
                pool: pool.clone(),
            },
        );
        Ok(pool)
    }
}

/// The advisor's session settings on top of the registered connection string.
pub fn connect_options(connection_string: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(connection_string)?
        .application_name(APPLICATION_NAME)
        .options([
            ("default_transaction_read_only", "on"),
            ("statement_timeout", "2000"),
            ("lock_timeout", "200"),
            ("idle_in_transaction_session_timeout", "10000"),
        ]))
}

/// The planner's distinct-value estimate per column of `schema.table` that has statistics, as a
/// count (pg_stats gives a negative fraction of the rows for columns it expects to grow).
pub async fn distinct_values(
    session: &mut PgConnection,
    schema: &str,
    table: &str,
    columns: &[String],
    live_rows: i64,
) -> Result<HashMap<String, f64>, PlannerError> {
    let rows = sqlx::query(marked!(
        "SELECT attname::text, n_distinct::float8 FROM pg_stats \
         WHERE schemaname = $1 AND tablename = $2 AND attname = ANY($3) AND NOT inherited"
    ))
    .bind(schema)
    .bind(table)
    .bind(columns)
    .fetch_all(&mut *session)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let name: String = row.get(0);
            let n: f64 = row.get(1);
            let count = if n < 0.0 { -n * live_rows as f64 } else { n };
            (name, count.max(1.0))
        })
        .collect())
}

/// A value of `schema.table.column`, quoted as a SQL literal by PostgreSQL, that about `share` of
/// the column's values are at or above, read from the planner's histogram (`pg_stats`); `None`
/// when the column has no histogram.
pub async fn upper_quantile(
    session: &mut PgConnection,
    schema: &str,
    table: &str,
    column: &str,
    share: f64,
) -> Result<Option<String>, PlannerError> {
    sqlx::query_scalar(marked!(
        "SELECT quote_literal(b[greatest(1, least(n, round((1 - $4) * (n - 1))::int + 1))]) \
         FROM (SELECT bounds AS b, cardinality(bounds) AS n FROM \
               (SELECT histogram_bounds::text::text[] AS bounds FROM pg_stats \
                WHERE schemaname = $1 AND tablename = $2 AND attname = $3 AND NOT inherited) h) x \
         WHERE n > 0"
    ))
    .bind(schema)
    .bind(table)
    .bind(column)
    .bind(share)
    .fetch_optional(&mut *session)
    .await
    .map(Option::flatten)
    .map_err(PlannerError::Query)
}

/// What the planner said with a set of hypothetical indexes in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    /// The total cost of each statement; `None` for a statement the planner refused.
    pub costs: Vec<Option<f64>>,
    /// HypoPG's size estimate of each hypothetical index, in bytes.
    pub sizes: Vec<Option<i64>>,
}

/// The planner's total cost of each statement with every index of `hypothetical` (`CREATE
/// INDEX` statements) in place at once; with none, the costs as the database stands. Needs
/// HypoPG installed in the database when `hypothetical` is not empty.
pub async fn plan_costs(
    session: &mut PgConnection,
    statements: &[&str],
    hypothetical: &[String],
) -> Result<Probe, PlannerError> {
    let probe = async {
        reset(session).await?;
        sqlx::query(marked!("SET plan_cache_mode = force_generic_plan"))
            .execute(&mut *session)
            .await?;
        let mut sizes = Vec::with_capacity(hypothetical.len());
        for definition in hypothetical {
            let oid: sqlx::postgres::types::Oid =
                sqlx::query_scalar(marked!("SELECT indexrelid FROM hypopg_create_index($1)"))
                    .bind(definition)
                    .fetch_one(&mut *session)
                    .await
                    .map_err(PlannerError::Hypothetical)?;
            let size: Option<i64> =
                sqlx::query_scalar(marked!("SELECT hypopg_relation_size($1)::bigint"))
                    .bind(oid)
                    .fetch_one(&mut *session)
                    .await
                    .ok();
            sizes.push(size);
        }
        let mut costs = Vec::with_capacity(statements.len());
        for (i, statement) in statements.iter().enumerate() {
            costs.push(statement_cost(session, &format!("sm_probe_{i}"), statement).await);
        }
        reset(session).await?;
        Ok(Probe { costs, sizes })
    };
    match tokio::time::timeout(PROBE_DEADLINE, probe).await {
        Ok(result) => result,
        Err(_) => {
            // The session may be mid-statement: drop it rather than reuse it.
            Err(PlannerError::ProbeTimedOut)
        }
    }
}

/// `name` is ours (`sm_probe_<n>`); `statement` is one SELECT, UPDATE or DELETE as parsed by
/// `statement::analyse` (which refuses several statements), prepared and explained, never run,
/// on a read-only session.
async fn statement_cost(session: &mut PgConnection, name: &str, statement: &str) -> Option<f64> {
    sqlx::query(AssertSqlSafe(format!("PREPARE {name} AS {statement}")))
        .persistent(false)
        .execute(&mut *session)
        .await
        .ok()?;
    let parameters: Option<i32> = sqlx::query_scalar(marked!(
        "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1"
    ))
    .bind(name)
    .fetch_one(&mut *session)
    .await
    .ok()?;
    let arguments = match parameters.unwrap_or(0) {
        0 => String::new(),
        n => format!("({})", vec!["NULL"; n as usize].join(", ")),
    };
    // The first line of a text plan is the top node: `Limit  (cost=0.04..38.62 rows=10 …)`.
    let top: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "/* startupmonkey-analyser */ EXPLAIN EXECUTE {name}{arguments}"
    )))
    .persistent(false)
    .fetch_one(&mut *session)
    .await
    .ok();
    let _ = deallocate(session, name).await;
    total_cost(&top?)
}

/// `name` is one of ours, or read from pg_prepared_statements: quoted either way.
async fn deallocate(session: &mut PgConnection, name: &str) -> Result<(), PlannerError> {
    sqlx::query(AssertSqlSafe(format!(
        "DEALLOCATE {}",
        super::naming::quote_ident(name)
    )))
    .persistent(false)
    .execute(&mut *session)
    .await
    .map(|_| ())
    .map_err(PlannerError::Query)
}

/// The total cost in a plan line: the number after `..` in `(cost=startup..total`.
fn total_cost(line: &str) -> Option<f64> {
    let after = &line[line.find("(cost=")? + "(cost=".len()..];
    let total = &after[after.find("..")? + 2..];
    total.split_whitespace().next()?.parse().ok()
}

/// No hypothetical index and none of our prepared statements is left in the session (sqlx's own
/// prepared statements stay: it caches them per connection).
async fn reset(session: &mut PgConnection) -> Result<(), PlannerError> {
    let ours: Vec<String> = sqlx::query_scalar(marked!(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'sm\\_probe\\_%'"
    ))
    .fetch_all(&mut *session)
    .await?;
    for name in ours {
        deallocate(session, &name).await?;
    }
    // Only where HypoPG is installed; elsewhere there is nothing to reset.
    let has_hypopg: bool = sqlx::query_scalar(marked!(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg')"
    ))
    .fetch_one(&mut *session)
    .await?;
    if has_hypopg {
        sqlx::query(marked!("SELECT hypopg_reset()"))
            .execute(&mut *session)
            .await?;
    }
    Ok(())
}

/// Whether the session still answers (after a probe that timed out it may not).
pub async fn healthy(session: &mut PgConnection) -> bool {
    tokio::time::timeout(Duration::from_secs(2), session.ping())
        .await
        .is_ok_and(|r| r.is_ok())
}

/// A database error's own message (without sqlx's prefix), anything else as sqlx says it.
fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_total_cost_is_read_from_the_top_plan_line() {
        let line = "Limit  (cost=0.04..38.62 rows=10 width=28)";
        assert_eq!(super::total_cost(line), Some(38.62));
        assert_eq!(
            super::total_cost("Result  (cost=0.00..0.01 rows=1 width=4)"),
            Some(0.01)
        );
        assert_eq!(super::total_cost("garbage"), None);
    }
}
