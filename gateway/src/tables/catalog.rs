//! The statements of the Tables page, each a plain read of the statistics views and the catalog,
//! marked `/* startupmonkey-gateway */` so the collector leaves them out of the workload. Each
//! runs under the session's 5 s `statement_timeout` (`dbtest::connect`). PostgreSQL 11 or later
//! (`pg_index.indnkeyatts`, `INCLUDE`). `pg_index`'s vectors start at subscript 0; sliced with
//! `[0:]` they start at 1, as arrays read by sqlx must.

use sqlx::{PgConnection, Row};

use super::redundant::{IndexFacts, Key, KeyColumn, Period};

/// Most indexes compared for duplicates and unused ones; a database with more is judged on
/// these (by oid, so the oldest) and the report says so.
pub const MAX_INDEXES_COMPARED: i64 = 100_000;

/// The database, whether the server is a standby, and since when index scans are counted.
pub struct Context {
    pub database: String,
    pub in_recovery: bool,
    pub period: Period,
    /// The period starts at a reset of the statistics (rather than at the server's start).
    pub since_reset: bool,
}

/// `pg_stat_database.stats_reset` (set by `pg_stat_reset()` and, on PostgreSQL 15 and later,
/// by the reset of a single table's or index's counters too), else `pg_postmaster_start_time()`.
/// Either way the start is no earlier than the counting, so a period is never overstated.
pub async fn context(conn: &mut PgConnection) -> Result<Context, sqlx::Error> {
    let row = sqlx::query(
        "/* startupmonkey-gateway */ SELECT current_database()::text AS database, \
           pg_is_in_recovery() AS in_recovery, \
           extract(epoch FROM d.stats_reset)::int8 AS stats_reset, \
           extract(epoch FROM pg_postmaster_start_time())::int8 AS server_started, \
           extract(epoch FROM now())::int8 AS now \
         FROM pg_stat_database d WHERE d.datname = current_database()",
    )
    .fetch_one(&mut *conn)
    .await?;
    let stats_reset: Option<i64> = row.try_get("stats_reset")?;
    let server_started: i64 = row.try_get("server_started")?;
    Ok(Context {
        database: row.try_get("database")?,
        in_recovery: row.try_get("in_recovery")?,
        period: Period {
            since: stats_reset.unwrap_or(server_started),
            now: row.try_get("now")?,
        },
        since_reset: stats_reset.is_some(),
    })
}

/// One table's statistics (`pg_stat_user_tables`) and sizes.
pub struct TableRow {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    /// `None` when the table went away while it was read.
    pub total_bytes: Option<i64>,
    pub table_bytes: Option<i64>,
    pub indexes_bytes: Option<i64>,
    pub live_rows: i64,
    pub dead_rows: i64,
    pub sequential_scans: i64,
    pub rows_read_sequentially: i64,
    /// `None` for a table without indexes.
    pub index_scans: Option<i64>,
    pub last_vacuum: Option<i64>,
    pub last_autovacuum: Option<i64>,
    pub last_analyze: Option<i64>,
    pub last_autoanalyze: Option<i64>,
}

/// How many user tables there are (`pg_stat_user_tables`).
pub async fn table_count(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("/* startupmonkey-gateway */ SELECT count(*)::int8 FROM pg_stat_user_tables")
        .fetch_one(&mut *conn)
        .await
}

/// `limit` tables from `offset`, the largest first by `pg_class.relpages` (the size the last
/// VACUUM or ANALYZE recorded: ordering by the files' sizes would read every table's files).
/// Sizes are then read for these tables only. pg_stat_user_tables, pg_class.
pub async fn tables(
    conn: &mut PgConnection,
    limit: i64,
    offset: i64,
) -> Result<Vec<TableRow>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-gateway */ WITH page AS ( \
           SELECT s.relid, c.relpages FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
           ORDER BY c.relpages DESC, s.schemaname, s.relname LIMIT $1 OFFSET $2) \
         SELECT s.relid::int8 AS oid, s.schemaname::text AS schema, s.relname::text AS name, \
           pg_total_relation_size(s.relid)::int8 AS total_bytes, \
           pg_relation_size(s.relid)::int8 AS table_bytes, \
           pg_indexes_size(s.relid)::int8 AS indexes_bytes, \
           s.n_live_tup::int8 AS live_rows, s.n_dead_tup::int8 AS dead_rows, \
           s.seq_scan::int8 AS sequential_scans, s.seq_tup_read::int8 AS rows_read_sequentially, \
           s.idx_scan::int8 AS index_scans, \
           extract(epoch FROM s.last_vacuum)::int8 AS last_vacuum, \
           extract(epoch FROM s.last_autovacuum)::int8 AS last_autovacuum, \
           extract(epoch FROM s.last_analyze)::int8 AS last_analyze, \
           extract(epoch FROM s.last_autoanalyze)::int8 AS last_autoanalyze \
         FROM page p JOIN pg_stat_user_tables s ON s.relid = p.relid \
         ORDER BY p.relpages DESC, s.schemaname, s.relname",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(TableRow {
                oid: row.try_get("oid")?,
                schema: row.try_get("schema")?,
                name: row.try_get("name")?,
                total_bytes: row.try_get("total_bytes")?,
                table_bytes: row.try_get("table_bytes")?,
                indexes_bytes: row.try_get("indexes_bytes")?,
                live_rows: row.try_get("live_rows")?,
                dead_rows: row.try_get("dead_rows")?,
                sequential_scans: row.try_get("sequential_scans")?,
                rows_read_sequentially: row.try_get("rows_read_sequentially")?,
                index_scans: row.try_get("index_scans")?,
                last_vacuum: row.try_get("last_vacuum")?,
                last_autovacuum: row.try_get("last_autovacuum")?,
                last_analyze: row.try_get("last_analyze")?,
                last_autoanalyze: row.try_get("last_autoanalyze")?,
            })
        })
        .collect()
}

/// The facts of every index of the user's tables and materialized views (not those of system
/// schemas), at most [`MAX_INDEXES_COMPARED`]: raw catalog columns, deparsed only for the keys
/// of expression indexes and for predicates. pg_index, pg_class, pg_namespace, pg_am,
/// pg_constraint, pg_inherits, pg_stat_user_indexes.
pub async fn index_facts(conn: &mut PgConnection) -> Result<Vec<IndexFacts>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-gateway */ SELECT i.indexrelid::int8 AS index_oid, \
           i.indrelid::int8 AS table_oid, n.nspname::text AS schema, t.relname::text AS table_name, \
           x.relname::text AS name, am.amname::text AS access_method, \
           i.indnkeyatts::int4 AS key_count, (i.indkey::int2[])[0:] AS attributes, \
           ((i.indclass::oid[])[0:])::int8[] AS operator_classes, \
           ((i.indcollation::oid[])[0:])::int8[] AS collations, \
           (i.indoption::int2[])[0:] AS options, \
           CASE WHEN i.indexprs IS NULL THEN NULL ELSE ARRAY( \
             SELECT pg_get_indexdef(i.indexrelid, k, true) \
             FROM generate_series(1, i.indnkeyatts) k ORDER BY k) END AS key_definitions, \
           pg_get_expr(i.indpred, i.indrelid, true) AS predicate, \
           i.indisunique AS is_unique, i.indisprimary AS is_primary, \
           i.indisexclusion AS is_exclusion, i.indisreplident AS is_replica_identity, \
           (i.indisvalid AND i.indisready) AS is_valid, \
           EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
             AS backs_constraint, \
           EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) \
             AS partition_of_index, \
           coalesce(s.idx_scan, 0)::int8 AS scans \
         FROM pg_index i \
           JOIN pg_class x ON x.oid = i.indexrelid \
           JOIN pg_class t ON t.oid = i.indrelid \
           JOIN pg_namespace n ON n.oid = t.relnamespace \
           JOIN pg_am am ON am.oid = x.relam \
           LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid \
         WHERE t.relkind IN ('r', 'm') \
           AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' \
         ORDER BY i.indexrelid LIMIT $1",
    )
    .bind(MAX_INDEXES_COMPARED)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(index_from_row).collect()
}

fn index_from_row(row: &sqlx::postgres::PgRow) -> Result<IndexFacts, sqlx::Error> {
    let key_count = usize::try_from(row.try_get::<i32, _>("key_count")?).unwrap_or(0);
    let attributes: Vec<i16> = row.try_get("attributes")?;
    let operator_classes: Vec<i64> = row.try_get("operator_classes")?;
    let collations: Vec<i64> = row.try_get("collations")?;
    let options: Vec<i16> = row.try_get("options")?;
    let key_definitions: Option<Vec<String>> = row.try_get("key_definitions")?;
    let keys = (0..key_count.min(attributes.len()))
        .map(|k| Key {
            column: match attributes[k] {
                0 => KeyColumn::Expression(
                    key_definitions
                        .as_ref()
                        .and_then(|d| d.get(k).cloned())
                        .unwrap_or_default(),
                ),
                attribute => KeyColumn::Attribute(attribute),
            },
            operator_class: operator_classes.get(k).copied().unwrap_or(0),
            collation: collations.get(k).copied().unwrap_or(0),
            options: options.get(k).copied().unwrap_or(0),
        })
        .collect();
    Ok(IndexFacts {
        index_oid: row.try_get("index_oid")?,
        table_oid: row.try_get("table_oid")?,
        schema: row.try_get("schema")?,
        table: row.try_get("table_name")?,
        name: row.try_get("name")?,
        access_method: row.try_get("access_method")?,
        keys,
        included: attributes.get(key_count..).unwrap_or_default().to_vec(),
        predicate: row.try_get("predicate")?,
        unique: row.try_get("is_unique")?,
        primary: row.try_get("is_primary")?,
        exclusion: row.try_get("is_exclusion")?,
        backs_constraint: row.try_get("backs_constraint")?,
        replica_identity: row.try_get("is_replica_identity")?,
        partition_of_index: row.try_get("partition_of_index")?,
        valid: row.try_get("is_valid")?,
        scans: row.try_get("scans")?,
    })
}

/// One index's definition (`pg_get_indexdef`) and size on disk.
pub struct IndexDetail {
    pub definition: String,
    pub size_bytes: i64,
}

/// Definitions and sizes of the indexes `oids` (an index gone meanwhile is simply absent).
/// pg_index, `pg_get_indexdef`, `pg_relation_size`.
pub async fn index_details(
    conn: &mut PgConnection,
    oids: &[i64],
) -> Result<std::collections::HashMap<i64, IndexDetail>, sqlx::Error> {
    let rows: Vec<(i64, Option<String>, Option<i64>)> = sqlx::query_as(
        "/* startupmonkey-gateway */ SELECT i.indexrelid::int8, pg_get_indexdef(i.indexrelid), \
           pg_relation_size(i.indexrelid)::int8 \
         FROM pg_index i WHERE i.indexrelid = ANY($1::int8[]::oid[])",
    )
    .bind(oids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(oid, definition, size)| {
            Some((
                oid,
                IndexDetail {
                    definition: definition?,
                    size_bytes: size.unwrap_or(0),
                },
            ))
        })
        .collect())
}
