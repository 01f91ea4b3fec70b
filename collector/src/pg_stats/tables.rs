//! Per-table lifetime counters of every table (what `pg_stat_user_tables` shows, read from
//! `pg_class` with the statistics functions it uses), and the index scans, sizes and indexes of
//! the tables a snapshot carries, re-read only when they can have changed (`Details`). Tables are
//! named `schema.table`.
//!
//! What each cycle costs at 10,000 tables: one read of the counters of every table (the
//! statistics getters of the table itself; not the view, whose sum of index scans over every
//! index of every table was half its cost), one grouped read of the index catalog rows and index
//! scans of the tables the snapshot carries (at most `window::TABLES_PER_KIND` × 3, or every table
//! of a small database), and sizes or definitions only for those of them that moved or whose
//! catalog rows changed. `pg_table_size`, `pg_indexes_size` and `pg_get_indexdef` read files and
//! deparse: they were most of a cycle when run for every table every time.
//!
//! A table's index scans in the window (`TableStats.idx_scan`) are therefore known from its second
//! cycle in a row among the tables carried; on its first they count as 0, as every counter does on
//! a database's first sample. `None` still means the table has no index.
//!
//! Catalog views: `pg_class`, `pg_namespace`, `pg_index`, the `pg_stat_get_*` functions;
//! PostgreSQL 11+ for `indnkeyatts`. A descending key column is reported as `name DESC`, from `indoption`, since
//! `pg_get_indexdef` leaves the direction out for a single column.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use proto::metrics::{IndexStats, TableStats};
use sqlx::{PgPool, Row};

use super::{QueryError, attempt};

/// Longest a table's sizes are reused while its counters stand still: what changes a size without
/// moving a counter (a rolled-back bulk load is counted, a file extended ahead is not) shows
/// within this time.
pub const SIZE_REFRESH: Duration = Duration::from_secs(300);
/// Longest an index's definition is reused while its catalog rows stand still: a renamed column
/// changes the text `pg_get_indexdef` writes without touching `pg_index` or the index's `pg_class`
/// row.
pub const DEFINITION_REFRESH: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableCounters {
    /// `pg_class.oid`, as a number.
    pub oid: i64,
    pub schema: String,
    pub name: String,
    pub live_tuples: i64,
    pub dead_tuples: i64,
    pub seq_scan: i64,
    pub seq_tup_read: i64,
    pub n_tup_ins: i64,
    pub n_tup_upd: i64,
    pub n_tup_del: i64,
    pub n_tup_hot_upd: i64,
    pub last_vacuum: i64,
    pub last_autovacuum: i64,
    pub autovacuum_enabled: bool,
    /// Changes when the table is rewritten (TRUNCATE, VACUUM FULL, CLUSTER).
    pub relfilenode: i64,
}

impl TableCounters {
    pub fn qualified_name(&self) -> String {
        qualified(&self.schema, &self.name)
    }

    /// What moves whenever the table's or its indexes' sizes or index scan counts can have.
    fn movement(&self, idx_scan: Option<i64>) -> Movement {
        Movement {
            writes: (self.n_tup_ins, self.n_tup_upd, self.n_tup_del),
            idx_scan,
            vacuums: (self.last_vacuum, self.last_autovacuum),
            relfilenode: self.relfilenode,
        }
    }
}

/// `schema.table` as PostgreSQL spells each part (unquoted; quoting is the executor's job).
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{schema}.{name}")
}

/// The counters of every table: one row each, nothing per table but the statistics getters.
pub async fn read(pool: &PgPool) -> Result<Vec<TableCounters>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT c.oid::int8, n.nspname::text, c.relname::text, \
           pg_stat_get_live_tuples(c.oid), pg_stat_get_dead_tuples(c.oid), \
           pg_stat_get_numscans(c.oid), pg_stat_get_tuples_returned(c.oid), \
           pg_stat_get_tuples_inserted(c.oid), pg_stat_get_tuples_updated(c.oid), \
           pg_stat_get_tuples_deleted(c.oid), pg_stat_get_tuples_hot_updated(c.oid), \
           coalesce(extract(epoch FROM pg_stat_get_last_vacuum_time(c.oid)), 0)::bigint, \
           coalesce(extract(epoch FROM pg_stat_get_last_autovacuum_time(c.oid)), 0)::bigint, \
           NOT coalesce(c.reloptions && ARRAY['autovacuum_enabled=false', 'autovacuum_enabled=off'], false), \
           c.relfilenode::int8 \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 't', 'm', 'p') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(TableCounters {
                oid: row.try_get(0)?,
                schema: row.try_get(1)?,
                name: row.try_get(2)?,
                live_tuples: row.try_get(3)?,
                dead_tuples: row.try_get(4)?,
                seq_scan: row.try_get(5)?,
                seq_tup_read: row.try_get(6)?,
                n_tup_ins: row.try_get(7)?,
                n_tup_upd: row.try_get(8)?,
                n_tup_del: row.try_get(9)?,
                n_tup_hot_upd: row.try_get(10)?,
                last_vacuum: row.try_get(11)?,
                last_autovacuum: row.try_get(12)?,
                autovacuum_enabled: row.try_get(13)?,
                relfilenode: row.try_get(14)?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Movement {
    writes: (i64, i64, i64),
    idx_scan: Option<i64>,
    vacuums: (i64, i64),
    relfilenode: i64,
}

/// What is known of one table's index scans, sizes and indexes, and from when.
#[derive(Debug, Clone, Default)]
struct Known {
    /// The cycle (`Details::cycle`) its index scans were last read in, and their lifetime count.
    scans: Option<(u64, i64)>,
    sizes: Option<Sizes>,
    indexes: Option<Indexes>,
}

#[derive(Debug, Clone)]
struct Sizes {
    read_at: Instant,
    /// The counters when they were read: sizes are read again once these move.
    movement: Movement,
    table_bytes: i64,
    indexes_bytes: i64,
}

#[derive(Debug, Clone)]
struct Indexes {
    read_at: Instant,
    /// The index catalog rows' stamp when they were read (`catalog`).
    stamp: Stamp,
    /// By index oid; `qualified_table` and `schema` are set from the table's current name.
    list: Vec<(i64, IndexStats)>,
}

/// The count and a hash of the catalog rows of a table's indexes: it changes when an index is
/// created, dropped, renamed, rebuilt or changes validity.
type Stamp = (i64, i64);

/// Index scans, sizes and indexes of the tables a snapshot carries, kept between cycles of one
/// database.
#[derive(Debug, Default)]
pub struct Details {
    known: HashMap<i64, Known>,
    /// Cycles completed.
    cycle: u64,
}

impl Details {
    /// Fills in the index scans in the window and the sizes of `tables` (the snapshot's, each
    /// found in `counters` by name) and returns their indexes, ordered by table and name. What a failed query should have read
    /// stays as last known (or empty) and the failure is recorded in `errors`.
    pub async fn complete(
        &mut self,
        pool: &PgPool,
        counters: &[TableCounters],
        tables: &mut [TableStats],
        errors: &mut Vec<QueryError>,
        now: Instant,
    ) -> Vec<IndexStats> {
        self.cycle += 1;
        let present: HashSet<i64> = counters.iter().map(|c| c.oid).collect();
        self.known.retain(|oid, _| present.contains(oid));
        let by_name: HashMap<(&str, &str), &TableCounters> = counters
            .iter()
            .map(|c| ((c.schema.as_str(), c.name.as_str()), c))
            .collect();
        let carried: Vec<&TableCounters> = tables
            .iter()
            .filter_map(|t| by_name.get(&(t.schema.as_str(), t.name.as_str())).copied())
            .collect();
        if carried.is_empty() {
            return Vec::new();
        }
        let oids: Vec<i64> = carried.iter().map(|c| c.oid).collect();

        let catalog = attempt(errors, "index catalog", catalog(pool, &oids)).await;
        let failed = catalog.is_none();
        let catalog = catalog.unwrap_or_default();
        let stamps: HashMap<i64, Stamp> = catalog.iter().map(|(t, (s, _))| (*t, *s)).collect();
        // A table without an index has no row, hence no scans.
        let scans = |oid: i64| catalog.get(&oid).map(|(_, scans)| *scans);
        let redefine: Vec<i64> = carried
            .iter()
            .filter(|c| {
                let stamp = stamps.get(&c.oid).copied().unwrap_or_default();
                self.known
                    .get(&c.oid)
                    .and_then(|k| k.indexes.as_ref())
                    .is_none_or(|i| {
                        i.stamp != stamp || now.duration_since(i.read_at) >= DEFINITION_REFRESH
                    })
            })
            .map(|c| c.oid)
            .collect();
        let stale_sizes: Vec<i64> = carried
            .iter()
            .filter(|c| {
                self.known
                    .get(&c.oid)
                    .and_then(|k| k.sizes.as_ref())
                    .is_none_or(|s| {
                        s.movement != c.movement(scans(c.oid))
                            || now.duration_since(s.read_at) >= SIZE_REFRESH
                    })
            })
            .map(|c| c.oid)
            // A table whose indexes changed has another `pg_indexes_size`.
            .chain(redefine.iter().copied())
            .collect();
        // Index figures (size, scans) move with the table's counters; a table whose catalog rows
        // stand still gets them without its definitions.
        let refigure: Vec<i64> = stale_sizes
            .iter()
            .copied()
            .filter(|oid| !redefine.contains(oid))
            .collect();

        if !stale_sizes.is_empty()
            && let Some(sizes) =
                attempt(errors, "table sizes", table_sizes(pool, &stale_sizes)).await
        {
            let movements: HashMap<i64, Movement> = carried
                .iter()
                .map(|c| (c.oid, c.movement(scans(c.oid))))
                .collect();
            for (oid, table_bytes, indexes_bytes) in sizes {
                let known = self.known.entry(oid).or_default();
                known.sizes = Some(Sizes {
                    read_at: now,
                    movement: movements[&oid],
                    table_bytes,
                    indexes_bytes,
                });
            }
        }
        if !refigure.is_empty()
            && let Some(figures) =
                attempt(errors, "index sizes", index_figures(pool, &refigure)).await
        {
            let figures: HashMap<i64, (i64, i64)> = figures
                .into_iter()
                .map(|(oid, scans, size)| (oid, (scans, size)))
                .collect();
            for (_, known) in self
                .known
                .iter_mut()
                .filter(|(table, _)| refigure.contains(table))
            {
                for (oid, index) in known.indexes.iter_mut().flat_map(|i| &mut i.list) {
                    if let Some((scans, size)) = figures.get(oid) {
                        index.idx_scan = *scans;
                        index.size_bytes = *size;
                    }
                }
            }
        }
        if !redefine.is_empty()
            && let Some(rows) = attempt(errors, "indexes", indexes(pool, &redefine)).await
        {
            let mut lists: HashMap<i64, Vec<(i64, IndexStats)>> =
                redefine.iter().map(|oid| (*oid, Vec::new())).collect();
            for (table, oid, index) in rows {
                lists.entry(table).or_default().push((oid, index));
            }
            for (table, list) in lists {
                let known = self.known.entry(table).or_default();
                known.indexes = Some(Indexes {
                    read_at: now,
                    stamp: stamps.get(&table).copied().unwrap_or_default(),
                    list,
                });
            }
        }

        let mut out = Vec::new();
        for table in tables.iter_mut() {
            let Some(counters) = by_name
                .get(&(table.schema.as_str(), table.name.as_str()))
                .copied()
            else {
                continue;
            };
            let known = self.known.entry(counters.oid).or_default();
            if !failed {
                let now = scans(counters.oid);
                let previous = known
                    .scans
                    .filter(|(cycle, _)| *cycle + 1 == self.cycle)
                    .map(|(_, count)| count);
                table.idx_scan = now.map(|n| previous.map_or(0, |p| crate::window::delta(n, p)));
                known.scans = now.map(|n| (self.cycle, n));
            }
            if let Some(sizes) = &known.sizes {
                table.table_bytes = sizes.table_bytes;
                table.indexes_bytes = sizes.indexes_bytes;
            }
            for (_, index) in known.indexes.iter().flat_map(|i| &i.list) {
                out.push(IndexStats {
                    qualified_table: table.qualified_name.clone(),
                    schema: table.schema.clone(),
                    ..index.clone()
                });
            }
        }
        out.sort_by(|a, b| {
            (a.qualified_table.as_str(), a.name.as_str())
                .cmp(&(b.qualified_table.as_str(), b.name.as_str()))
        });
        out
    }
}

/// Each table's index stamp (`Stamp`) and index scans (lifetime, all its indexes); a table without
/// an index has no row.
async fn catalog(pool: &PgPool, tables: &[i64]) -> Result<HashMap<i64, (Stamp, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT x.indrelid::int8, count(*)::int8, \
           sum(hashtext(concat_ws(':', x.indexrelid, x.indisvalid, x.indisready, x.indislive, \
                                  i.relname, i.relfilenode, x.xmin, i.xmin)))::int8, \
           sum(pg_stat_get_numscans(x.indexrelid))::int8 \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE x.indrelid = ANY($1::int8[]::oid[]) GROUP BY x.indrelid",
    )
    .bind(tables)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0)?,
                ((row.try_get(1)?, row.try_get(2)?), row.try_get(3)?),
            ))
        })
        .collect()
}

/// `(table oid, pg_table_size, pg_indexes_size)`; a table dropped meanwhile is left out.
async fn table_sizes(pool: &PgPool, tables: &[i64]) -> Result<Vec<(i64, i64, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT c.oid::int8, pg_table_size(c.oid), \
           pg_indexes_size(c.oid) \
         FROM pg_class c WHERE c.oid = ANY($1::int8[]::oid[])",
    )
    .bind(tables)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}

/// `(index oid, idx_scan, pg_relation_size)` of the tables' indexes.
async fn index_figures(pool: &PgPool, tables: &[i64]) -> Result<Vec<(i64, i64, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT x.indexrelid::int8, \
           coalesce(pg_stat_get_numscans(x.indexrelid), 0), pg_relation_size(x.indexrelid) \
         FROM pg_index x WHERE x.indrelid = ANY($1::int8[]::oid[])",
    )
    .bind(tables)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}

/// `(table oid, index oid, index)` of the tables' indexes, definitions included.
async fn indexes(
    pool: &PgPool,
    tables: &[i64],
) -> Result<Vec<(i64, i64, IndexStats)>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT x.indrelid::int8, x.indexrelid::int8, \
           i.relname::text, pg_get_indexdef(x.indexrelid), x.indisvalid, x.indisunique, \
           x.indisprimary, coalesce(pg_stat_get_numscans(x.indexrelid), 0), \
           pg_relation_size(x.indexrelid), \
           ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) \
                   || CASE WHEN x.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END \
                 FROM generate_series(1, x.indnkeyatts) AS k ORDER BY k) \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE x.indrelid = ANY($1::int8[]::oid[])",
    )
    .bind(tables)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                IndexStats {
                    name: row.try_get(2)?,
                    definition: row.try_get(3)?,
                    is_valid: row.try_get(4)?,
                    is_unique: row.try_get(5)?,
                    is_primary: row.try_get(6)?,
                    idx_scan: row.try_get(7)?,
                    size_bytes: row.try_get(8)?,
                    columns: row.try_get(9)?,
                    ..Default::default()
                },
            ))
        })
        .collect()
}
