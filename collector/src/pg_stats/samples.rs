//! Live statement samples for fixed constants (`constants`): the text each client session of this
//! database ran last, with its `query_id` (PostgreSQL 14+, with `compute_query_id` on, as
//! pg_stat_statements turns it on). The text carries literal values; it is read, reduced to the
//! constants that never vary, and dropped within the cycle.

use sqlx::{PgPool, Row};

/// Statement text read per session: as much as pg_stat_statements' text (`statements`).
const QUERY_CHARS: i32 = 2000;

/// One session's latest statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySample {
    pub pid: i32,
    pub queryid: i64,
    /// When the statement started, so a session idle since the last cycle is not sampled twice.
    pub query_start_us: i64,
    pub text: String,
}

pub async fn read(pool: &PgPool) -> Result<Vec<QuerySample>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT pid, query_id, \
           coalesce((extract(epoch FROM query_start) * 1000000)::bigint, 0), left(query, $1) \
         FROM pg_stat_activity \
         WHERE datname = current_database() AND backend_type = 'client backend' \
           AND pid <> pg_backend_pid() AND query_id IS NOT NULL AND query_id <> 0 \
           AND application_name NOT LIKE 'startupmonkey-%' \
           AND query NOT LIKE '/* startupmonkey-%'",
    )
    .bind(QUERY_CHARS)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(QuerySample {
                pid: row.try_get(0)?,
                queryid: row.try_get(1)?,
                query_start_us: row.try_get(2)?,
                text: row.try_get(3)?,
            })
        })
        .collect()
}
