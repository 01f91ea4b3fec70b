//! A database's recent workload as rates per second that do not depend on the collection
//! interval: each table's sequential-scan reads and writes, each statement's calls and time.
//!
//! Every window's counts are added to sums that decay exponentially with the time constant
//! [`HORIZON`], and so do the seconds covered; a rate is a decayed sum over the decayed seconds.
//! For a steady workload that is its true rate whatever the interval (1 s windows or 10 s windows
//! give the same figure); a statement seen in one window of several — slow and infrequent —
//! keeps its share of the last minute or so instead of vanishing from the next window. On a
//! database's first windows the rate is simply what those windows saw.
//!
//! Each statement is parsed when first seen (`statement::analyse`), and again when the constants
//! the collector saw it always use change (`statement::with_constants`: those `$n` become their
//! literals, so a partial index can be found and the planner sees the real values). It is
//! forgotten when its rate falls below [`FORGET_BELOW`] calls per second; a table when its scans
//! and writes do and its sequential scans read less than a row per second. Memory is bounded by
//! what ran in the last few horizons.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use proto::metrics::MetricSnapshot;
use proto::sql::SqlConstant;

use super::statement::{self, TableUse};
use crate::interned::Interned;

/// The time constant of the decay, in seconds: a window `HORIZON` old weighs 1/e of a new one.
pub const HORIZON: f64 = 60.0;
/// A statement or table whose events fall below this rate per second is forgotten (once in
/// almost three hours).
const FORGET_BELOW: f64 = 1e-4;

/// The longest a statement's tables wait for the collector to settle which of its parameters are
/// constants (it needs three sampled executions), so an index is not chosen on the generic text
/// a moment before the constants would have shown a partial index.
pub const LEARNING_WAIT: Duration = Duration::from_secs(120);

/// How long the time of a table's statements still counts as about to change after one of its
/// indexes appeared or went: their old times are forgotten, and the new ones are measured over
/// windows that straddle the change.
pub const REMEASURE: Duration = Duration::from_secs(30);

/// One statement's recent load.
#[derive(Debug, Clone)]
pub struct StatementLoad {
    pub queryid: i64,
    /// pg_stat_statements' text with its fixed constants in place, and how it uses each table.
    pub parsed: Arc<Parsed>,
    /// The parameters the collector saw always hold one value, put into `parsed.query`.
    pub constants: Vec<(i32, SqlConstant)>,
    /// Since when the collector has been sampling the statement without having settled its
    /// constants; `None` once settled, or when it is not sampled at all.
    pub learning_since: Option<Instant>,
    /// Decayed sums (divide by [`DatabaseWorkload::seconds`] for rates).
    pub calls: f64,
    pub time_ms: f64,
    pub rows: f64,
}

/// A statement's text as the advisor probes it, and how it uses each table: shared by every
/// database whose statement has the same text (the databases of one application have the same
/// statements), so a thousand databases do not keep a thousand copies.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The text as PostgreSQL accepts it (`interval $1` → `$1::interval`); empty when `uses` is
    /// `None`.
    pub query: String,
    /// `None` when the text does not parse or no use could be served by an index (an INSERT, a
    /// bare scan): the statement then counts for its rates alone.
    pub uses: Option<Vec<TableUse>>,
}

/// Every text parsed and still used by some database, by its text with constants in place.
static PARSED: LazyLock<Interned<Parsed>> = LazyLock::new(Interned::new);

impl Parsed {
    /// The statement `text` parsed, or the copy some database already has.
    pub fn of(text: &str) -> Arc<Parsed> {
        PARSED.get(text, |text| {
            let query = statement::parseable(text);
            let uses = statement::analyse(&query)
                .ok()
                .filter(|uses| uses.iter().any(TableUse::may_use_an_index));
            Arc::new(Parsed {
                query: if uses.is_some() { query } else { String::new() },
                uses,
            })
        })
    }
}

impl StatementLoad {
    /// Whether its constants are still being learnt at `now` (see [`LEARNING_WAIT`]).
    pub fn learning(&self, now: Instant) -> bool {
        self.learning_since
            .is_some_and(|since| now.duration_since(since) < LEARNING_WAIT)
    }

    pub fn mean_time_ms(&self) -> f64 {
        if self.calls > 0.0 {
            self.time_ms / self.calls
        } else {
            0.0
        }
    }

    pub fn rows_per_call(&self) -> f64 {
        if self.calls > 0.0 {
            self.rows / self.calls
        } else {
            0.0
        }
    }
}

/// One table's recent load.
#[derive(Debug, Clone, Default)]
pub struct TableLoad {
    /// Decayed sums.
    pub seq_tup_read: f64,
    pub seq_scan: f64,
    pub scans: f64,
    pub writes: f64,
    /// The last live-row estimate seen.
    pub live_tuples: i64,
    /// The names of its valid indexes when it was last seen.
    pub indexes: Option<Vec<String>>,
}

/// The decayed workload of one database.
#[derive(Debug, Clone, Default)]
pub struct DatabaseWorkload {
    /// Decayed seconds covered.
    pub seconds: f64,
    pub statements: HashMap<i64, StatementLoad>,
    /// By qualified name (`schema.table`).
    pub tables: HashMap<String, TableLoad>,
    /// Tables whose indexes changed lately: when, and their statements' database time per second
    /// (ms) just before.
    pub remeasuring: HashMap<String, (Instant, f64)>,
}

impl DatabaseWorkload {
    /// Adds one snapshot's window; a snapshot without a window (a database's first) adds nothing.
    pub fn observe(&mut self, snapshot: &MetricSnapshot) {
        self.observe_at(snapshot, Instant::now());
    }

    /// [`DatabaseWorkload::observe`] at `now`.
    pub fn observe_at(&mut self, snapshot: &MetricSnapshot, now: Instant) {
        let window = snapshot.time_delta_seconds.unwrap_or(0.0);
        let Some(detail) = snapshot.postgres.as_ref() else {
            return;
        };
        if window <= 0.0 || !window.is_finite() {
            return;
        }
        let keep = (-window / HORIZON).exp();
        self.seconds = self.seconds * keep + window;
        for load in self.statements.values_mut() {
            load.calls *= keep;
            load.time_ms *= keep;
            load.rows *= keep;
        }
        for load in self.tables.values_mut() {
            load.seq_tup_read *= keep;
            load.seq_scan *= keep;
            load.scans *= keep;
            load.writes *= keep;
        }
        let sampled: HashMap<i64, &proto::metrics::StatementConstants> = detail
            .statement_constants
            .iter()
            .map(|s| (s.queryid, s))
            .collect();
        for s in &detail.top_statements {
            // A statement the collector did not sample has nothing to wait for.
            let sample = sampled.get(&s.queryid);
            let constants: Vec<(i32, SqlConstant)> = sample
                .iter()
                .flat_map(|c| &c.constants)
                .filter_map(|c| Some((c.parameter, SqlConstant::parse_literal(&c.literal)?)))
                .collect();
            let unsettled = sample.filter(|c| !c.settled);
            let new = !self.statements.contains_key(&s.queryid);
            let load = self
                .statements
                .entry(s.queryid)
                .or_insert_with(|| StatementLoad {
                    queryid: s.queryid,
                    parsed: Arc::default(),
                    constants: Vec::new(),
                    learning_since: None,
                    calls: 0.0,
                    time_ms: 0.0,
                    rows: 0.0,
                });
            if new || load.constants != constants {
                load.parsed = match statement::with_constants(&s.query, &constants) {
                    Some(text) => Parsed::of(&text),
                    None => Parsed::of(&s.query),
                };
                load.constants = constants;
            }
            load.learning_since = match unsettled {
                None => None,
                Some(_) if load.learning_since.is_some() => load.learning_since,
                Some(c) if equality_at_stake(&s.query, &c.constant_parameters) => Some(now),
                Some(_) => None,
            };
            load.calls += s.calls as f64;
            load.time_ms += s.total_time_ms;
            load.rows += s.rows as f64;
        }
        for t in &detail.tables {
            let load = self.tables.entry(t.qualified_name.clone()).or_default();
            load.seq_tup_read += t.seq_tup_read as f64;
            load.seq_scan += t.seq_scan as f64;
            load.scans += (t.seq_scan + t.idx_scan.unwrap_or(0)) as f64;
            load.writes += (t.n_tup_ins + t.n_tup_upd + t.n_tup_del) as f64;
            load.live_tuples = t.live_tuples;
            let mut indexes: Vec<String> = detail
                .indexes
                .iter()
                .filter(|i| i.qualified_table == t.qualified_name && i.is_valid)
                .map(|i| i.name.clone())
                .collect();
            indexes.sort();
            // The statements on a table whose indexes changed ran, until now, with the old ones:
            // their times say nothing of the new plans. They are measured again from the next
            // window (an index judged on times from before the last one would look too useful).
            if load.indexes.as_ref().is_some_and(|known| known != &indexes) {
                let on_table = |statement: &StatementLoad| {
                    statement.parsed.uses.as_ref().is_some_and(|uses| {
                        uses.iter().any(|u| {
                            u.table == t.name && (u.schema.is_empty() || u.schema == t.schema)
                        })
                    })
                };
                let before: f64 = self
                    .statements
                    .values()
                    .filter(|s| on_table(s))
                    .map(|s| s.time_ms)
                    .sum::<f64>()
                    / self.seconds;
                self.remeasuring
                    .insert(t.qualified_name.clone(), (now, before));
                self.statements.retain(|_, statement| !on_table(statement));
            }
            load.indexes = Some(indexes);
        }
        self.remeasuring
            .retain(|_, (since, _)| now.duration_since(*since) < REMEASURE);
        let floor = FORGET_BELOW * self.seconds;
        self.statements.retain(|_, l| l.calls >= floor);
        self.tables
            .retain(|_, l| l.scans + l.writes >= floor || l.seq_tup_read >= self.seconds);
    }

    /// A decayed sum as a rate per second.
    pub fn per_second(&self, sum: f64) -> f64 {
        if self.seconds > 0.0 {
            sum / self.seconds
        } else {
            0.0
        }
    }
}

/// Whether one of `parameters` of `normalised` is compared with a column by `=`: if it turns out
/// to be a constant, a partial index may serve the statement.
fn equality_at_stake(normalised: &str, parameters: &[i32]) -> bool {
    let placeholders: Vec<(i32, SqlConstant)> = parameters
        .iter()
        .map(|&p| (p, SqlConstant::Integer(0)))
        .collect();
    statement::with_constants(normalised, &placeholders)
        .and_then(|text| statement::analyse(&statement::parseable(&text)).ok())
        .is_some_and(|uses| uses.iter().any(|u| !u.equality_constants.is_empty()))
}

#[cfg(test)]
mod tests {
    use proto::metrics::{PostgresDetail, StatementStats, TableStats};

    use super::*;

    /// A window of `seconds` in which a slow statement ran `calls` times on a big table.
    fn window(seconds: f64, calls: i64) -> MetricSnapshot {
        MetricSnapshot {
            database_id: "db".into(),
            time_delta_seconds: Some(seconds),
            postgres: Some(PostgresDetail {
                top_statements: if calls > 0 {
                    vec![StatementStats {
                        queryid: 7,
                        query: "SELECT * FROM big WHERE k = $1".into(),
                        calls,
                        total_time_ms: calls as f64 * 400.0,
                        mean_time_ms: 400.0,
                        ..Default::default()
                    }]
                } else {
                    Vec::new()
                },
                tables: if calls > 0 {
                    vec![TableStats {
                        qualified_name: "public.big".into(),
                        schema: "public".into(),
                        name: "big".into(),
                        live_tuples: 2_000_000,
                        seq_scan: calls,
                        seq_tup_read: calls * 2_000_000,
                        ..Default::default()
                    }]
                } else {
                    Vec::new()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The statement runs once every 4 s for `total` seconds, seen through windows of `interval`.
    fn replay(interval: u32, total: u32) -> DatabaseWorkload {
        let mut workload = DatabaseWorkload::default();
        let mut t = 0;
        while t < total {
            let calls = (t..t + interval).filter(|s| s % 4 == 0).count() as i64;
            workload.observe(&window(f64::from(interval), calls));
            t += interval;
        }
        workload
    }

    #[test]
    fn the_same_workload_has_the_same_rates_at_any_interval() {
        for interval in [1, 2, 5, 10] {
            let w = replay(interval, 600);
            let statement = &w.statements[&7];
            let calls = w.per_second(statement.calls);
            let time = w.per_second(statement.time_ms) / 1000.0;
            let rows = w.per_second(w.tables["public.big"].seq_tup_read);
            assert!((calls - 0.25).abs() < 0.02, "{interval} s: {calls} calls/s");
            assert!((time - 0.1).abs() < 0.008, "{interval} s: {time} s/s");
            assert!(
                (rows - 500_000.0).abs() < 40_000.0,
                "{interval} s: {rows} rows/s"
            );
            assert!((statement.mean_time_ms() - 400.0).abs() < 1e-6);
        }
    }

    #[test]
    fn a_slow_statement_between_windows_keeps_its_share() {
        // 1 s windows: the statement ran in the first, not in the next three.
        let w = replay(1, 4);
        let time = w.per_second(w.statements[&7].time_ms) / 1000.0;
        assert!(time > 0.08, "{time} s/s");
        // The first window is what it saw.
        let mut first = DatabaseWorkload::default();
        first.observe(&window(10.0, 3));
        assert!((first.per_second(first.statements[&7].calls) - 0.3).abs() < 1e-9);
    }

    #[test]
    fn what_stopped_running_is_forgotten() {
        let mut w = replay(10, 60);
        // Twenty minutes without it.
        for _ in 0..120 {
            w.observe(&window(10.0, 0));
        }
        assert!(w.statements.is_empty() && w.tables.is_empty());
        assert!(w.seconds > 0.0);
    }

    #[test]
    fn a_new_index_on_a_table_forgets_the_times_its_statements_had_before() {
        let mut w = replay(10, 60);
        assert!(w.statements.contains_key(&7));
        let mut indexed = window(10.0, 3);
        let detail = indexed.postgres.as_mut().unwrap();
        detail.indexes = vec![proto::metrics::IndexStats {
            qualified_table: "public.big".into(),
            name: "idx_big_k".into(),
            is_valid: true,
            ..Default::default()
        }];
        let at = Instant::now();
        w.observe_at(&indexed, at);
        assert!(
            !w.statements.contains_key(&7),
            "measured again from the next window"
        );
        let (since, ms) = w.remeasuring["public.big"];
        assert_eq!(since, at);
        assert!((ms - 100.0).abs() < 15.0, "{ms} ms/s before the index");
        w.observe_at(&indexed, at + Duration::from_secs(10));
        assert_eq!(w.statements[&7].calls, 3.0);
        w.observe_at(&indexed, at + REMEASURE);
        assert!(
            w.remeasuring.is_empty(),
            "judged on the new times after {REMEASURE:?}"
        );
        // An index being built (INVALID) changes nothing yet.
        let mut building = window(10.0, 3);
        building.postgres.as_mut().unwrap().indexes = vec![proto::metrics::IndexStats {
            qualified_table: "public.big".into(),
            name: "idx_big_k2".into(),
            is_valid: false,
            ..Default::default()
        }];
        let mut w = replay(10, 60);
        w.observe(&building);
        assert!(w.statements.contains_key(&7));
    }

    #[test]
    fn a_snapshot_without_a_window_adds_nothing() {
        let mut w = DatabaseWorkload::default();
        let mut first = window(10.0, 3);
        first.time_delta_seconds = None;
        w.observe(&first);
        assert!(w.statements.is_empty() && w.seconds == 0.0);
    }

    #[test]
    fn only_a_constant_compared_by_equality_is_worth_waiting_for() {
        let s1 = "SELECT * FROM posts WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2";
        assert!(!equality_at_stake(s1, &[2]), "a LIMIT is no partial index");
        assert!(equality_at_stake(s1, &[1]));
        assert!(!equality_at_stake(
            "SELECT * FROM t WHERE at > now() - interval $1",
            &[1]
        ));
    }
}
