//! Per-statement lifetime counters from `pg_stat_statements` (1.8+ names from PostgreSQL 13,
//! `total_time` before), of every database of the server in one read (`server_wide`), without
//! the collector's own statements.
//! Texts are the normalised ones pg_stat_statements keeps (constants replaced by `$n`). With
//! `pg_stat_statements.track = all` a statement can also have a row whose text is the analyser's
//! probe of it (`PREPARE sm_probe_<n> AS …`, the same queryid): the application's own text is
//! preferred.

use std::collections::HashMap;

use sqlx::{PgPool, Row};

/// Several rows can share a queryid (top-level and nested, PostgreSQL 14+): summed here.
macro_rules! statement_sql {
    ($total_time:literal) => {
        concat!(
            "/* startupmonkey-collector */ SELECT d.datname::text, s.queryid, ",
            "coalesce(r.rolname::text, ''), ",
            "left(coalesce(min(s.query) FILTER (WHERE s.query NOT LIKE 'PREPARE sm\\_probe\\_%'), ",
            "min(s.query)), $1), sum(s.calls)::bigint, sum(s.",
            $total_time,
            ")::float8, sum(s.rows)::bigint, sum(s.shared_blks_hit)::bigint, ",
            "sum(s.shared_blks_read)::bigint ",
            "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid ",
            "LEFT JOIN pg_roles r ON r.oid = s.userid ",
            "WHERE s.queryid IS NOT NULL AND s.query NOT LIKE '/* startupmonkey-%' ",
            "GROUP BY d.datname, s.queryid, r.rolname"
        )
    };
}

/// Statement text kept per statement.
const QUERY_CHARS: i32 = 2000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatementCounters {
    pub queryid: i64,
    pub role: String,
    pub query: String,
    pub calls: i64,
    pub total_time_ms: f64,
    pub rows: i64,
    pub shared_blks_hit: i64,
    pub shared_blks_read: i64,
}

/// Every database's statements, by database name.
pub type ServerStatements = HashMap<String, Vec<StatementCounters>>;

pub async fn read(pool: &PgPool, server_version_num: i32) -> Result<ServerStatements, sqlx::Error> {
    // Two literal statements (the column was renamed in PostgreSQL 13), no SQL built at run time.
    let sql = if server_version_num >= 130_000 {
        statement_sql!("total_exec_time")
    } else {
        statement_sql!("total_time")
    };
    let rows = sqlx::query(sql).bind(QUERY_CHARS).fetch_all(pool).await?;
    let mut by_database = ServerStatements::new();
    for row in rows {
        let database: String = row.try_get(0)?;
        by_database
            .entry(database)
            .or_default()
            .push(StatementCounters {
                queryid: row.try_get(1)?,
                role: row.try_get(2)?,
                query: row.try_get(3)?,
                calls: row.try_get(4)?,
                total_time_ms: row.try_get(5)?,
                rows: row.try_get(6)?,
                shared_blks_hit: row.try_get(7)?,
                shared_blks_read: row.try_get(8)?,
            });
    }
    Ok(by_database)
}
