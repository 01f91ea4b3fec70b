//! Database-wide lifetime counters (`pg_stat_database`, any version) and the database's size
//! (`pg_database_size`, which looks at every file of the database: at 10,000 tables it cost more
//! than everything else of a cycle together, so `Size` reads it again only when it can have
//! changed).

use std::time::{Duration, Instant};

use sqlx::{PgPool, Row};

use super::{QueryError, TableCounters, attempt};

/// While any table's counters move, the size is read again at most this often.
pub const SIZE_REFRESH_BUSY: Duration = Duration::from_secs(60);
/// While nothing moves, it is read again this often all the same (what grows without moving a
/// counter: a file extended ahead, a database-wide change of something other than a table).
pub const SIZE_REFRESH_IDLE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DatabaseCounters {
    pub size_bytes: i64,
    pub blks_hit: i64,
    pub blks_read: i64,
    pub xact_commit: i64,
    pub xact_rollback: i64,
}

/// The counters; `size_bytes` is left at 0 for `Size` to fill in.
pub async fn read(pool: &PgPool) -> Result<DatabaseCounters, sqlx::Error> {
    let row = sqlx::query(
        "/* startupmonkey-collector */ SELECT 0::bigint, coalesce(blks_hit, 0)::bigint, coalesce(blks_read, 0)::bigint, \
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

/// The database's size, kept between cycles of one database.
#[derive(Debug, Default)]
pub struct Size {
    /// When it was read, what the tables' counters added up to then, and the size.
    last: Option<(Instant, i64, i64)>,
}

impl Size {
    /// Sets `counters.size_bytes`: as last read while that is recent enough, else read again.
    pub async fn complete(
        &mut self,
        pool: &PgPool,
        counters: &mut DatabaseCounters,
        tables: &[TableCounters],
        errors: &mut Vec<QueryError>,
        now: Instant,
    ) {
        let activity = activity(tables);
        let fresh = self.last.filter(|(at, seen, _)| {
            let age = now.duration_since(*at);
            age < SIZE_REFRESH_BUSY || (*seen == activity && age < SIZE_REFRESH_IDLE)
        });
        if let Some((_, _, size)) = fresh {
            counters.size_bytes = size;
            return;
        }
        match attempt(errors, "database size", size(pool)).await {
            Some(size) => {
                counters.size_bytes = size;
                self.last = Some((now, activity, size));
            }
            // The last size known, however old, rather than none.
            None => counters.size_bytes = self.last.map_or(0, |(_, _, size)| size),
        }
    }
}

/// A sum that moves whenever a table is written, vacuumed, rewritten, created or dropped.
fn activity(tables: &[TableCounters]) -> i64 {
    tables.iter().fold(tables.len() as i64, |sum, t| {
        sum.wrapping_add(t.n_tup_ins)
            .wrapping_add(t.n_tup_upd)
            .wrapping_add(t.n_tup_del)
            .wrapping_add(t.last_vacuum)
            .wrapping_add(t.last_autovacuum)
            .wrapping_add(t.relfilenode)
    })
}

async fn size(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "/* startupmonkey-collector */ SELECT pg_database_size(current_database())::bigint",
    )
    .fetch_one(pool)
    .await
}
