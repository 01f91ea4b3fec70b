//! Per-table lifetime counters (`pg_stat_user_tables`, NULL-safe: a table without any index has
//! no `idx_scan`) and the existing indexes with their key columns (`pg_index`, PostgreSQL 11+ for
//! `indnkeyatts`; a descending key column is reported as `name DESC`, from `indoption`, since
//! `pg_get_indexdef` leaves the direction out for a single column). Tables are named
//! `schema.table`.

use proto::metrics::IndexStats;
use sqlx::{PgPool, Row};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableCounters {
    pub schema: String,
    pub name: String,
    pub live_tuples: i64,
    pub dead_tuples: i64,
    pub seq_scan: i64,
    pub seq_tup_read: i64,
    /// `None` when the table has no index.
    pub idx_scan: Option<i64>,
    pub n_tup_ins: i64,
    pub n_tup_upd: i64,
    pub n_tup_del: i64,
    pub n_tup_hot_upd: i64,
    pub table_bytes: i64,
    pub indexes_bytes: i64,
    pub last_vacuum: i64,
    pub last_autovacuum: i64,
    pub autovacuum_enabled: bool,
}

impl TableCounters {
    pub fn qualified_name(&self) -> String {
        qualified(&self.schema, &self.name)
    }
}

/// `schema.table` as PostgreSQL spells each part (unquoted; quoting is the executor's job).
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{schema}.{name}")
}

pub async fn read(pool: &PgPool) -> Result<Vec<TableCounters>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT s.schemaname::text, s.relname::text, \
           coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0), \
           coalesce(s.seq_scan, 0), coalesce(s.seq_tup_read, 0), s.idx_scan, \
           coalesce(s.n_tup_ins, 0), coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0), \
           coalesce(s.n_tup_hot_upd, 0), \
           pg_table_size(s.relid), pg_indexes_size(s.relid), \
           coalesce(extract(epoch FROM s.last_vacuum), 0)::bigint, \
           coalesce(extract(epoch FROM s.last_autovacuum), 0)::bigint, \
           NOT coalesce(c.reloptions && ARRAY['autovacuum_enabled=false', 'autovacuum_enabled=off'], false) \
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(TableCounters {
                schema: row.try_get(0)?,
                name: row.try_get(1)?,
                live_tuples: row.try_get(2)?,
                dead_tuples: row.try_get(3)?,
                seq_scan: row.try_get(4)?,
                seq_tup_read: row.try_get(5)?,
                idx_scan: row.try_get(6)?,
                n_tup_ins: row.try_get(7)?,
                n_tup_upd: row.try_get(8)?,
                n_tup_del: row.try_get(9)?,
                n_tup_hot_upd: row.try_get(10)?,
                table_bytes: row.try_get(11)?,
                indexes_bytes: row.try_get(12)?,
                last_vacuum: row.try_get(13)?,
                last_autovacuum: row.try_get(14)?,
                autovacuum_enabled: row.try_get(15)?,
            })
        })
        .collect()
}

pub async fn indexes(pool: &PgPool) -> Result<Vec<IndexStats>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT n.nspname::text, t.relname::text, i.relname::text, \
           pg_get_indexdef(x.indexrelid), x.indisvalid, x.indisunique, x.indisprimary, \
           coalesce(s.idx_scan, 0), pg_relation_size(x.indexrelid), \
           ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) \
                   || CASE WHEN x.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END \
                 FROM generate_series(1, x.indnkeyatts) AS k ORDER BY k) \
         FROM pg_index x \
           JOIN pg_class i ON i.oid = x.indexrelid \
           JOIN pg_class t ON t.oid = x.indrelid \
           JOIN pg_namespace n ON n.oid = t.relnamespace \
           LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.indexrelid \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg_toast%'",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let schema: String = row.try_get(0)?;
            let table: String = row.try_get(1)?;
            Ok(IndexStats {
                qualified_table: qualified(&schema, &table),
                schema,
                name: row.try_get(2)?,
                definition: row.try_get(3)?,
                is_valid: row.try_get(4)?,
                is_unique: row.try_get(5)?,
                is_primary: row.try_get(6)?,
                idx_scan: row.try_get(7)?,
                size_bytes: row.try_get(8)?,
                columns: row.try_get(9)?,
            })
        })
        .collect()
}
