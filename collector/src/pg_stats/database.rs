//! Database-wide lifetime counters (`pg_stat_database`, any version) and the database's size.

use sqlx::{PgPool, Row};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DatabaseCounters {
    pub size_bytes: i64,
    pub blks_hit: i64,
    pub blks_read: i64,
    pub xact_commit: i64,
    pub xact_rollback: i64,
}

pub async fn read(pool: &PgPool) -> Result<DatabaseCounters, sqlx::Error> {
    let row = sqlx::query(
        "/* startupmonkey-collector */ SELECT pg_database_size(current_database())::bigint, \
           coalesce(blks_hit, 0)::bigint, coalesce(blks_read, 0)::bigint, \
           coalesce(xact_commit, 0)::bigint, coalesce(xact_rollback, 0)::bigint \
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    Ok(DatabaseCounters {
        size_bytes: row.try_get(0)?,
        blks_hit: row.try_get(1)?,
        blks_read: row.try_get(2)?,
        xact_commit: row.try_get(3)?,
        xact_rollback: row.try_get(4)?,
    })
}
