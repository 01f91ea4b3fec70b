//! Turns lifetime counters into per-interval values. Each database keeps the previous sample's
//! counters; a counter that went down was reset (pg_stat_reset, eviction from pg_stat_statements,
//! a restart), and its delta is then its new value: what accumulated since the reset.
//!
//! Latency over the interval comes from pg_stat_statements deltas: for each statement, calls and
//! total time in the window give its mean; the database average is Σtime / Σcalls, and the
//! percentiles (p50, p95, p99) are estimated from the per-statement means weighted by calls —
//! the value below which that share of the interval's calls fall when each call is taken at its
//! statement's mean. It cannot see spread within one statement, so it understates tails of a
//! single statement with variable cost; it does see one slow statement among fast ones, which is
//! what the detectors need.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use proto::metrics::{StatementStats, TableStats};

use crate::pg_stats::{DatabaseCounters, Sample, StatementCounters, TableCounters};

/// Most tables reported per kind of interest (scanned, bloated, written).
pub const TABLES_PER_KIND: usize = 100;
/// Most statements reported, by time spent over the interval.
pub const TOP_STATEMENTS: usize = 50;

/// Counters of the previous sample of one database.
#[derive(Debug, Default)]
pub struct Window {
    previous: Option<Previous>,
}

#[derive(Debug)]
struct Previous {
    at: Instant,
    database: Option<DatabaseCounters>,
    /// By table oid: a table dropped and created again under its name starts a new window.
    tables: HashMap<i64, Counts>,
    statements: Option<HashMap<(i64, String), StatementCounters>>,
}

/// Blocks found in shared buffers and read from outside them over the interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CacheWindow {
    pub hits: i64,
    pub reads: i64,
}

impl CacheWindow {
    /// `None` when nothing was read at all (an idle database has no hit rate, not a bad one).
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.reads;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    pub calls: i64,
    pub total_time_ms: f64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// What happened over one interval.
#[derive(Debug, Clone, Default)]
pub struct Interval {
    /// `None` on a database's first sample: nothing is windowed yet.
    pub seconds: Option<f64>,
    pub cache: Option<CacheWindow>,
    pub commits: Option<i64>,
    pub rollbacks: Option<i64>,
    /// Tables of interest with per-interval counters (all zero on the first sample).
    pub tables: Vec<TableStats>,
    /// Sequential scans over the interval, all tables.
    pub seq_scans: Option<i64>,
    pub latency: Option<Latency>,
    /// Buffer hits and reads of the application's statements (pg_stat_statements, without ours).
    pub statements_cache: Option<CacheWindow>,
    pub top_statements: Vec<StatementStats>,
}

/// A counter's increase; after a reset, its new value.
pub fn delta(current: i64, previous: i64) -> i64 {
    if current >= previous {
        current - previous
    } else {
        current
    }
}

fn delta_f(current: f64, previous: f64) -> f64 {
    if current >= previous {
        current - previous
    } else {
        current
    }
}

impl Window {
    /// Forgets the previous sample (the connection string changed: another database maybe).
    pub fn reset(&mut self) {
        self.previous = None;
    }

    pub fn advance(&mut self, sample: &Sample, at: Instant) -> Interval {
        let previous = self.previous.take();
        let seconds = previous
            .as_ref()
            .map(|p| at.duration_since(p.at).as_secs_f64())
            .filter(|s| *s > 0.0);
        let windowed = seconds.and(previous.as_ref());

        let mut interval = Interval {
            seconds,
            ..Default::default()
        };
        if let (Some(now), Some(before)) = (sample.database, windowed.and_then(|p| p.database)) {
            interval.cache = Some(CacheWindow {
                hits: delta(now.blks_hit, before.blks_hit),
                reads: delta(now.blks_read, before.blks_read),
            });
            interval.commits = Some(delta(now.xact_commit, before.xact_commit));
            interval.rollbacks = Some(delta(now.xact_rollback, before.xact_rollback));
        }

        // Only numbers for every table; a `TableStats` for the few of interest.
        let deltas: Vec<Counts> = sample
            .tables
            .iter()
            .map(|t| match windowed.and_then(|p| p.tables.get(&t.oid)) {
                Some(before) => {
                    let now = counts(t);
                    std::array::from_fn(|i| delta(now[i], before[i]))
                }
                None => [0; 6],
            })
            .collect();
        if windowed.is_some() {
            interval.seq_scans = Some(deltas.iter().map(|d| d[SEQ_SCAN]).sum());
        }
        let mut tables: Vec<TableStats> = of_interest(&sample.tables, &deltas)
            .into_iter()
            .map(|i| table_interval(&sample.tables[i], &deltas[i]))
            .collect();
        tables.sort_by(|a, b| a.qualified_name.cmp(&b.qualified_name));
        interval.tables = tables;

        if let (Some(now), Some(before)) = (
            sample.statements.as_ref(),
            windowed.and_then(|p| p.statements.as_ref()),
        ) {
            let stats = statement_intervals(now, before);
            interval.latency = Some(latency(&stats));
            interval.statements_cache = Some(CacheWindow {
                hits: stats.iter().map(|s| s.shared_blks_hit).sum(),
                reads: stats.iter().map(|s| s.shared_blks_read).sum(),
            });
            interval.top_statements = top(stats);
        }

        self.previous = Some(Previous {
            at,
            database: sample.database,
            tables: sample.tables.iter().map(|t| (t.oid, counts(t))).collect(),
            statements: sample.statements.as_ref().map(|list| {
                list.iter()
                    .map(|s| ((s.queryid, s.role.clone()), s.clone()))
                    .collect()
            }),
        });
        interval
    }
}

/// A table's counters that are windowed, in this order.
type Counts = [i64; 6];
const SEQ_SCAN: usize = 0;
const SEQ_TUP_READ: usize = 1;

fn counts(t: &TableCounters) -> Counts {
    [
        t.seq_scan,
        t.seq_tup_read,
        t.n_tup_ins,
        t.n_tup_upd,
        t.n_tup_del,
        t.n_tup_hot_upd,
    ]
}

fn table_interval(now: &TableCounters, d: &Counts) -> TableStats {
    TableStats {
        qualified_name: now.qualified_name(),
        schema: now.schema.clone(),
        name: now.name.clone(),
        live_tuples: now.live_tuples,
        dead_tuples: now.dead_tuples,
        seq_scan: d[SEQ_SCAN],
        seq_tup_read: d[SEQ_TUP_READ],
        // Read afterwards, for the tables a snapshot carries only (`pg_stats::Details`).
        idx_scan: None,
        n_tup_ins: d[2],
        n_tup_upd: d[3],
        n_tup_del: d[4],
        n_tup_hot_upd: d[5],
        // Read afterwards, for the tables a snapshot carries only (`pg_stats::Details`).
        table_bytes: 0,
        indexes_bytes: 0,
        last_vacuum: now.last_vacuum,
        last_autovacuum: now.last_autovacuum,
        autovacuum_enabled: now.autovacuum_enabled,
        seq_scan_total: now.seq_scan,
    }
}

/// The positions of the most scanned, the most bloated and the most written tables, each list
/// bounded (every table when there are no more than `TABLES_PER_KIND`). Ties are broken by name,
/// so the same figures choose the same tables whatever order the server listed them in (an idle
/// database sends the same list, which costs nothing to send: `table_list`).
fn of_interest(tables: &[TableCounters], deltas: &[Counts]) -> Vec<usize> {
    if tables.len() <= TABLES_PER_KIND {
        return (0..tables.len()).collect();
    }
    let mut keep = HashSet::new();
    let mut pick = |key: &dyn Fn(usize) -> i64| {
        let mut candidates: Vec<usize> = (0..tables.len()).filter(|&i| key(i) > 0).collect();
        let order = |a: &usize, b: &usize| {
            key(*b).cmp(&key(*a)).then_with(|| {
                (&tables[*a].schema, &tables[*a].name).cmp(&(&tables[*b].schema, &tables[*b].name))
            })
        };
        if candidates.len() > TABLES_PER_KIND {
            candidates.select_nth_unstable_by(TABLES_PER_KIND - 1, order);
            candidates.truncate(TABLES_PER_KIND);
        }
        keep.extend(candidates);
    };
    pick(&|i| deltas[i][SEQ_TUP_READ]);
    pick(&|i| tables[i].dead_tuples);
    pick(&|i| deltas[i][2] + deltas[i][3] + deltas[i][4]);
    keep.into_iter().collect()
}

fn statement_intervals(
    now: &[StatementCounters],
    before: &HashMap<(i64, String), StatementCounters>,
) -> Vec<StatementStats> {
    now.iter()
        .filter_map(|s| {
            let previous = before.get(&(s.queryid, s.role.clone()));
            let calls = previous.map_or(s.calls, |p| delta(s.calls, p.calls));
            if calls == 0 {
                return None;
            }
            let total = previous.map_or(s.total_time_ms, |p| {
                delta_f(s.total_time_ms, p.total_time_ms)
            });
            Some(StatementStats {
                queryid: s.queryid,
                query: s.query.clone(),
                role: s.role.clone(),
                calls,
                total_time_ms: total,
                mean_time_ms: total / calls as f64,
                rows: previous.map_or(s.rows, |p| delta(s.rows, p.rows)),
                shared_blks_hit: previous.map_or(s.shared_blks_hit, |p| {
                    delta(s.shared_blks_hit, p.shared_blks_hit)
                }),
                shared_blks_read: previous.map_or(s.shared_blks_read, |p| {
                    delta(s.shared_blks_read, p.shared_blks_read)
                }),
            })
        })
        .collect()
}

/// Average and call-weighted percentiles of the per-statement means (see the module docs).
pub fn latency(stats: &[StatementStats]) -> Latency {
    let calls: i64 = stats.iter().map(|s| s.calls).sum();
    let total: f64 = stats.iter().map(|s| s.total_time_ms).sum();
    let mut by_mean: Vec<(f64, i64)> = stats.iter().map(|s| (s.mean_time_ms, s.calls)).collect();
    by_mean.sort_by(|a, b| a.0.total_cmp(&b.0));
    let percentile = |q: f64| {
        let target = (q * calls as f64).ceil().max(1.0) as i64;
        let mut seen = 0;
        for (mean, n) in &by_mean {
            seen += n;
            if seen >= target {
                return *mean;
            }
        }
        0.0
    };
    Latency {
        calls,
        total_time_ms: total,
        avg_ms: if calls > 0 { total / calls as f64 } else { 0.0 },
        p50_ms: percentile(0.50),
        p95_ms: percentile(0.95),
        p99_ms: percentile(0.99),
    }
}

fn top(mut stats: Vec<StatementStats>) -> Vec<StatementStats> {
    stats.sort_by(|a, b| b.total_time_ms.total_cmp(&a.total_time_ms));
    stats.truncate(TOP_STATEMENTS);
    stats
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn table(name: &str, seq_scan: i64) -> TableCounters {
        TableCounters {
            oid: name.bytes().map(i64::from).sum(),
            schema: "public".into(),
            name: name.into(),
            seq_scan,
            seq_tup_read: seq_scan * 100,
            ..Default::default()
        }
    }

    fn statement(queryid: i64, calls: i64, total_time_ms: f64) -> StatementCounters {
        StatementCounters {
            queryid,
            role: "app".into(),
            query: format!("SELECT {queryid}"),
            calls,
            total_time_ms,
            ..Default::default()
        }
    }

    fn sample(
        tables: Vec<TableCounters>,
        statements: Vec<StatementCounters>,
        hit: i64,
        read: i64,
    ) -> Sample {
        Sample {
            database: Some(DatabaseCounters {
                blks_hit: hit,
                blks_read: read,
                ..Default::default()
            }),
            tables,
            statements: Some(statements),
            ..Default::default()
        }
    }

    #[test]
    fn the_first_sample_has_no_window() {
        let mut window = Window::default();
        let interval = window.advance(
            &sample(vec![table("a", 50)], vec![], 10, 10),
            Instant::now(),
        );
        assert!(interval.seconds.is_none());
        assert!(interval.cache.is_none());
        assert!(interval.latency.is_none());
        assert_eq!(interval.tables[0].seq_scan, 0);
        assert_eq!(interval.tables[0].seq_scan_total, 50);
    }

    #[test]
    fn each_table_gets_its_own_delta() {
        let mut window = Window::default();
        let t0 = Instant::now();
        window.advance(
            &sample(vec![table("a", 10), table("b", 7)], vec![], 0, 0),
            t0,
        );
        let interval = window.advance(
            &sample(vec![table("a", 25), table("b", 7)], vec![], 0, 0),
            t0 + Duration::from_secs(2),
        );
        let a = interval.tables.iter().find(|t| t.name == "a").unwrap();
        let b = interval.tables.iter().find(|t| t.name == "b").unwrap();
        assert_eq!((a.seq_scan, a.seq_tup_read), (15, 1500));
        assert_eq!(b.seq_scan, 0);
        assert_eq!(a.qualified_name, "public.a");
        assert_eq!(interval.seq_scans, Some(15));
        assert_eq!(interval.seconds, Some(2.0));
    }

    #[test]
    fn of_many_tables_the_same_figures_choose_the_same_bounded_list_in_any_order() {
        let tables: Vec<TableCounters> = (0..250)
            .map(|i| TableCounters {
                oid: i,
                dead_tuples: if i % 2 == 0 { 5 } else { 0 },
                ..table(&format!("t{i:03}"), 0)
            })
            .collect();
        let chosen = |tables: Vec<TableCounters>| {
            let mut window = Window::default();
            let interval = window.advance(&sample(tables, vec![], 0, 0), Instant::now());
            interval
                .tables
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>()
        };
        let forwards = chosen(tables.clone());
        let backwards = chosen(tables.into_iter().rev().collect());
        assert_eq!(
            forwards.len(),
            TABLES_PER_KIND,
            "125 with dead rows, 100 kept"
        );
        assert_eq!(forwards, backwards);
        assert_eq!(forwards[0], "t000");
        assert_eq!(forwards[99], "t198", "ties go by name");
    }

    #[test]
    fn a_reset_counter_counts_from_zero_instead_of_going_negative() {
        assert_eq!(delta(100, 40), 60);
        assert_eq!(delta(5, 40), 5);
    }

    #[test]
    fn cache_hit_rate_is_windowed_and_absent_without_reads() {
        let mut window = Window::default();
        let t0 = Instant::now();
        // A lifetime hit rate of 50 %...
        window.advance(&sample(vec![], vec![], 1000, 1000), t0);
        // ...but 90 of the last 100 blocks were hits.
        let busy = window.advance(
            &sample(vec![], vec![], 1090, 1010),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(busy.cache.unwrap().hit_rate(), Some(0.9));
        let idle = window.advance(
            &sample(vec![], vec![], 1090, 1010),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(idle.cache.unwrap().hit_rate(), None);
    }

    #[test]
    fn latency_comes_from_statement_deltas_with_a_weighted_p95() {
        let mut window = Window::default();
        let t0 = Instant::now();
        window.advance(
            &sample(
                vec![],
                vec![statement(1, 1000, 1000.0), statement(2, 10, 5000.0)],
                0,
                0,
            ),
            t0,
        );
        // Over the interval: 94 fast calls at 1 ms, 6 slow calls at 200 ms.
        let interval = window.advance(
            &sample(
                vec![],
                vec![statement(1, 1094, 1094.0), statement(2, 16, 6200.0)],
                0,
                0,
            ),
            t0 + Duration::from_secs(1),
        );
        let latency = interval.latency.unwrap();
        assert_eq!(latency.calls, 100);
        assert!((latency.avg_ms - (94.0 + 1200.0) / 100.0).abs() < 1e-9);
        assert_eq!(latency.p50_ms, 1.0);
        assert_eq!(latency.p95_ms, 200.0);
        assert_eq!(
            interval.top_statements[0].queryid, 2,
            "ordered by time spent"
        );
        assert_eq!(interval.top_statements[0].calls, 6);
    }

    #[test]
    fn the_applications_cache_comes_from_its_statements_only() {
        let mut window = Window::default();
        let t0 = Instant::now();
        let mut app = statement(1, 10, 10.0);
        app.shared_blks_hit = 100;
        app.shared_blks_read = 100;
        window.advance(&sample(vec![], vec![app.clone()], 0, 0), t0);
        app.calls = 20;
        app.shared_blks_hit = 1000;
        app.shared_blks_read = 200;
        // The whole database read far more (our own queries among them).
        let interval = window.advance(
            &sample(vec![], vec![app], 500, 50_000),
            t0 + Duration::from_secs(1),
        );
        let statements = interval.statements_cache.unwrap();
        assert_eq!((statements.hits, statements.reads), (900, 100));
        assert_eq!(statements.hit_rate(), Some(0.9));
        assert_eq!(interval.cache.unwrap().reads, 50_000);
    }

    #[test]
    fn statements_without_calls_in_the_window_are_left_out() {
        let mut window = Window::default();
        let t0 = Instant::now();
        window.advance(&sample(vec![], vec![statement(1, 5, 5.0)], 0, 0), t0);
        let interval = window.advance(
            &sample(vec![], vec![statement(1, 5, 5.0)], 0, 0),
            t0 + Duration::from_secs(1),
        );
        assert!(interval.top_statements.is_empty());
        assert_eq!(interval.latency.unwrap().calls, 0);
    }
}
