//! The statement history the Queries page reads (`GET /queries`): per database, what the
//! collector's `metrics` events said of its costliest statements (`top_statements`: at most 20
//! per cycle, one per queryid, literals removed), summed into time buckets of three widths, one
//! per window the page offers:
//!
//! | window | bucket | buckets |
//! |---|---|---|
//! | 1 h | 20 s | 180 |
//! | 24 h | 15 min | 96 |
//! | 7 d | 3 h | 56 |
//!
//! Memory is bounded by construction: a bucket is 24 bytes, so a statement costs at most
//! 332 × 24 B ≈ 8 KB; at most [`MAX_STATEMENTS`] statements per database (the one seen least
//! recently goes first) and [`MAX_DATABASES`] databases (likewise): about 40 MB in the worst case,
//! far less in practice. It lives in the gateway's memory only, so it starts empty when the
//! gateway starts: every window says how much of it the history covers.
//!
//! What can be known honestly: a statement is counted in the cycles where it was among the
//! costliest the collector sent, so its calls and time are lower bounds; pg_stat_statements has no
//! per-statement percentiles, so the "p95" is the 95th percentile of the statement's mean time
//! per bucket (the cycle means averaged over 20 s, 15 min or 3 h), not of single calls.

use std::collections::{HashMap, VecDeque};

use proto::events::StatementWindow;
use serde_json::Value;

/// Statements whose history is kept per database.
pub const MAX_STATEMENTS: usize = 50;
/// Databases whose statement history is kept.
pub const MAX_DATABASES: usize = 100;

/// A window the Queries page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
}

impl Window {
    pub const WORDS: &'static [&'static str] = &["1h", "24h", "7d"];

    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "1h" | "" => Some(Self::Hour),
            "24h" => Some(Self::Day),
            "7d" => Some(Self::Week),
            _ => None,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
        }
    }

    fn tier(self) -> usize {
        self as usize
    }

    pub fn seconds(self) -> i64 {
        TIERS[self.tier()].span
    }

    /// The width of the window's buckets, in seconds.
    pub fn bucket_seconds(self) -> i64 {
        TIERS[self.tier()].width
    }
}

struct Tier {
    width: i64,
    span: i64,
}

const TIERS: [Tier; 3] = [
    Tier {
        width: 20,
        span: 3_600,
    },
    Tier {
        width: 900,
        span: 86_400,
    },
    Tier {
        width: 10_800,
        span: 7 * 86_400,
    },
];

/// What happened in one bucket: sums over the cycles whose timestamp falls in it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bucket {
    /// Unix seconds, a multiple of the tier's width.
    pub start: i64,
    pub calls: u32,
    pub time_ms: f32,
    pub rows: u64,
}

impl Bucket {
    pub fn mean_ms(&self) -> Option<f64> {
        (self.calls > 0).then(|| f64::from(self.time_ms) / f64::from(self.calls))
    }
}

/// One series in the three tiers.
#[derive(Debug, Default)]
struct Series {
    tiers: [VecDeque<Bucket>; 3],
}

impl Series {
    fn add(&mut self, at: i64, calls: i64, time_ms: f64, rows: i64) {
        for (tier, buckets) in TIERS.iter().zip(self.tiers.iter_mut()) {
            let start = at - at.rem_euclid(tier.width);
            match buckets.back_mut() {
                Some(last) if last.start == start => {}
                Some(last) if last.start > start => continue, // out of order: dropped
                _ => buckets.push_back(Bucket {
                    start,
                    ..Default::default()
                }),
            }
            if let Some(last) = buckets.back_mut() {
                last.calls = last
                    .calls
                    .saturating_add(u32::try_from(calls.max(0)).unwrap_or(u32::MAX));
                last.time_ms += time_ms.max(0.0) as f32;
                last.rows = last.rows.saturating_add(rows.max(0) as u64);
            }
            while buckets.front().is_some_and(|b| b.start + tier.span < start) {
                buckets.pop_front();
            }
        }
    }

    /// The buckets of `window` that overlap `[until - window, until]`, oldest first.
    fn within(&self, window: Window, until: i64) -> impl Iterator<Item = &Bucket> {
        let from = until - window.seconds();
        self.tiers[window.tier()]
            .iter()
            .filter(move |b| b.start + window.bucket_seconds() > from && b.start <= until)
    }

    fn newest(&self) -> i64 {
        self.tiers[0].back().map_or(i64::MIN, |b| b.start)
    }
}

#[derive(Debug)]
struct Statement {
    query: String,
    /// The tables its text names, as PostgreSQL's parser reads them; `None` when the text does
    /// not parse (cut short by the collector).
    tables: Option<Vec<String>>,
    series: Series,
    last_seen: i64,
}

#[derive(Debug, Default)]
struct Database {
    /// Unix seconds of the first event heard (with or without statements).
    since: i64,
    last_seen: i64,
    /// Every statement of the database (pg_stat_statements' totals over each window).
    total: Series,
    statements: HashMap<i64, Statement>,
}

/// A statement's figures over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub queryid: i64,
    pub query: String,
    pub tables: Option<Vec<String>>,
    pub calls: u64,
    pub total_time_ms: f64,
    pub rows: u64,
    pub mean_ms: Option<f64>,
    /// The 95th percentile of its bucket means (nearest rank), over buckets with calls.
    pub p95_bucket_mean_ms: Option<f64>,
    /// Its share of every statement's time over the same buckets, when that total is known.
    pub share: Option<f64>,
    pub history: Vec<Bucket>,
}

/// A database's statements over a window, costliest first.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowReport {
    pub since: i64,
    pub total_calls: Option<u64>,
    pub total_time_ms: Option<f64>,
    pub statements: Vec<Figures>,
}

#[derive(Debug, Default)]
pub struct StatementHistory {
    databases: HashMap<String, Database>,
}

impl StatementHistory {
    /// Records one `metrics` event: its statements and its database's totals.
    pub fn record(&mut self, metrics: &Value) {
        let (Some(id), Some(at)) = (
            metrics["database_id"].as_str(),
            metrics["timestamp"].as_i64(),
        ) else {
            return;
        };
        if !self.databases.contains_key(id) && self.databases.len() >= MAX_DATABASES {
            let stalest = self
                .databases
                .iter()
                .min_by_key(|(_, d)| d.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(stalest) = stalest {
                self.databases.remove(&stalest);
            }
        }
        let database = self
            .databases
            .entry(id.to_owned())
            .or_insert_with(|| Database {
                since: at,
                ..Default::default()
            });
        database.last_seen = database.last_seen.max(at);
        let extended = &metrics["extended_metrics"];
        if let (Some(calls), Some(time_ms)) = (
            extended["pg.statements_calls"].as_f64(),
            extended["pg.statements_total_time_ms"].as_f64(),
        ) {
            database.total.add(at, calls as i64, time_ms, 0);
        }
        let statements: Vec<StatementWindow> =
            serde_json::from_value(metrics["top_statements"].clone()).unwrap_or_default();
        for s in statements {
            if !database.statements.contains_key(&s.queryid)
                && database.statements.len() >= MAX_STATEMENTS
            {
                let stalest = database
                    .statements
                    .iter()
                    .min_by_key(|(_, st)| st.last_seen)
                    .map(|(k, _)| *k);
                if let Some(stalest) = stalest {
                    database.statements.remove(&stalest);
                }
            }
            let entry = database
                .statements
                .entry(s.queryid)
                .or_insert_with(|| Statement {
                    tables: tables_named(&s.query),
                    query: s.query.clone(),
                    series: Series::default(),
                    last_seen: at,
                });
            entry.last_seen = entry.last_seen.max(at);
            entry.series.add(at, s.calls, s.total_time_ms, s.rows);
        }
        // Statements not seen for longer than the longest window are forgotten.
        let week = Window::Week.seconds();
        database
            .statements
            .retain(|_, s| s.series.newest() + week >= at);
    }

    /// The statements of `database_id` over `window` ending at `until`, costliest first, at most
    /// `limit`; `None` when nothing was heard of that database.
    pub fn window(
        &self,
        database_id: &str,
        window: Window,
        until: i64,
        limit: usize,
    ) -> Option<WindowReport> {
        let database = self.databases.get(database_id)?;
        let totals: Vec<&Bucket> = database.total.within(window, until).collect();
        let total_calls =
            (!totals.is_empty()).then(|| totals.iter().map(|b| u64::from(b.calls)).sum());
        let total_time_ms: Option<f64> =
            (!totals.is_empty()).then(|| totals.iter().map(|b| f64::from(b.time_ms)).sum());
        let mut statements: Vec<Figures> = database
            .statements
            .iter()
            .filter_map(|(queryid, s)| {
                let history: Vec<Bucket> = s.series.within(window, until).copied().collect();
                let calls: u64 = history.iter().map(|b| u64::from(b.calls)).sum();
                if calls == 0 {
                    return None;
                }
                let time: f64 = history.iter().map(|b| f64::from(b.time_ms)).sum();
                let mut means: Vec<f64> = history.iter().filter_map(Bucket::mean_ms).collect();
                means.sort_by(f64::total_cmp);
                Some(Figures {
                    queryid: *queryid,
                    query: s.query.clone(),
                    tables: s.tables.clone(),
                    calls,
                    total_time_ms: time,
                    rows: history.iter().map(|b| b.rows).sum(),
                    mean_ms: Some(time / calls as f64),
                    p95_bucket_mean_ms: nearest_rank(&means, 0.95),
                    // A total below the statement's own (a cycle without the totals) is no total.
                    share: total_time_ms
                        .filter(|t| *t > 0.0 && *t >= time * 0.999)
                        .map(|t| (time / t).min(1.0)),
                    history,
                })
            })
            .collect();
        statements.sort_by(|a, b| {
            b.total_time_ms
                .total_cmp(&a.total_time_ms)
                .then(a.queryid.cmp(&b.queryid))
        });
        statements.truncate(limit);
        Some(WindowReport {
            since: database.since,
            total_calls,
            total_time_ms,
            statements,
        })
    }
}

/// The `q` quantile of sorted values by nearest rank.
fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

/// The tables a statement's text names (PostgreSQL's parser, as written: `posts` or
/// `public.posts`), sorted; `None` when the text does not parse.
pub fn tables_named(query: &str) -> Option<Vec<String>> {
    let parsed = pg_query::parse(query, 0).ok()?;
    let mut tables = parsed.tables();
    tables.sort();
    Some(tables)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T0: i64 = 1_800_000_000;

    fn event(at: i64, statements: Value, total_ms: Option<f64>) -> Value {
        let mut extended = json!({});
        if let Some(ms) = total_ms {
            extended = json!({"pg.statements_calls": 100.0, "pg.statements_total_time_ms": ms});
        }
        json!({"database_id": "db", "timestamp": at, "extended_metrics": extended,
               "top_statements": statements})
    }

    fn statement(queryid: i64, calls: i64, ms: f64) -> Value {
        json!({"queryid": queryid, "query": "SELECT * FROM posts p JOIN public.users u ON u.id = p.user_id WHERE p.user_id = $1",
               "calls": calls, "total_time_ms": ms, "rows": calls * 2})
    }

    #[test]
    fn a_windows_figures_are_sums_over_its_buckets_with_share_and_bucket_mean_p95() {
        let mut history = StatementHistory::default();
        let start = T0 - T0.rem_euclid(10_800);
        // Cycles of 5 s: statement 1 at 2 ms a call for 20, then at 0.2 ms for 10; statement 2 small.
        for n in 0..30 {
            let at = start + n * 5;
            let mean = if n < 20 { 2.0 } else { 0.2 };
            history.record(&event(
                at,
                json!([statement(1, 10, 10.0 * mean), statement(2, 1, 1.0)]),
                Some(10.0 * mean + 1.0 + 4.0),
            ));
        }
        let report = history.window("db", Window::Hour, start + 150, 10).unwrap();
        assert_eq!(report.since, start);
        let first = &report.statements[0];
        assert_eq!(first.queryid, 1);
        assert_eq!(first.calls, 300);
        assert!((first.total_time_ms - (20.0 * 20.0 + 10.0 * 2.0)).abs() < 1e-3);
        assert_eq!(first.rows, 600);
        assert!((first.mean_ms.unwrap() - 420.0 / 300.0).abs() < 1e-6);
        // 20-s buckets of 4 cycles: 5 at 2 ms, then 3 at 0.2 ms.
        assert_eq!(first.history.len(), 8);
        assert_eq!(first.p95_bucket_mean_ms, Some(2.0));
        let total = report.total_time_ms.unwrap();
        assert!((first.share.unwrap() - 420.0 / total).abs() < 1e-6);
        assert_eq!(
            first.tables.as_deref(),
            Some(&["posts".to_owned(), "public.users".to_owned()][..])
        );
        assert_eq!(report.statements[1].queryid, 2);
        assert_eq!(
            history
                .window("db", Window::Hour, start + 150, 1)
                .unwrap()
                .statements
                .len(),
            1
        );
        assert!(history.window("other", Window::Hour, start, 10).is_none());
    }

    #[test]
    fn each_tier_keeps_only_its_span_so_old_cycles_leave_the_hour_but_stay_in_the_week() {
        let mut history = StatementHistory::default();
        let start = T0 - T0.rem_euclid(10_800);
        // One cycle every 5 minutes for 3 days.
        let cycles = 3 * 24 * 12;
        for n in 0..cycles {
            history.record(&event(start + n * 300, json!([statement(7, 1, 1.0)]), None));
        }
        let now = start + (cycles - 1) * 300;
        let database = &history.databases["db"];
        let series = &database.statements[&7].series;
        assert!(
            series.tiers[0].len() <= 3_600 / 20 + 1,
            "{}",
            series.tiers[0].len()
        );
        assert!(
            series.tiers[1].len() <= 86_400 / 900 + 1,
            "{}",
            series.tiers[1].len()
        );
        assert_eq!(series.tiers[2].len(), 24, "3 days of 3-h buckets");
        let hour = history.window("db", Window::Hour, now, 10).unwrap();
        assert_eq!(
            hour.statements[0].calls,
            12 + 1,
            "an hour and its edge: 13 cycles"
        );
        let day = history.window("db", Window::Day, now, 10).unwrap();
        assert!(
            (288..=291).contains(&day.statements[0].calls),
            "{}",
            day.statements[0].calls
        );
        let week = history.window("db", Window::Week, now, 10).unwrap();
        assert_eq!(week.statements[0].calls, cycles as u64);
        assert!(week.statements[0].share.is_none(), "no totals were heard");
    }

    #[test]
    fn statements_and_databases_kept_are_bounded_and_the_stalest_go_first() {
        let mut history = StatementHistory::default();
        for n in 0..(MAX_STATEMENTS as i64 + 10) {
            history.record(&event(T0 + n, json!([statement(n, 1, 1.0)]), None));
        }
        let kept = &history.databases["db"].statements;
        assert_eq!(kept.len(), MAX_STATEMENTS);
        assert!(!kept.contains_key(&0) && kept.contains_key(&(MAX_STATEMENTS as i64 + 9)));
        for n in 0..(MAX_DATABASES as i64 + 5) {
            history
                .record(&json!({"database_id": format!("other{n}"), "timestamp": T0 + 1_000 + n}));
        }
        assert_eq!(history.databases.len(), MAX_DATABASES);
        assert!(
            !history.databases.contains_key("db"),
            "heard from least recently"
        );
    }

    #[test]
    fn a_statement_unseen_for_a_week_is_forgotten() {
        let mut history = StatementHistory::default();
        history.record(&event(T0, json!([statement(1, 1, 1.0)]), None));
        history.record(&event(T0 + 8 * 86_400, json!([statement(2, 1, 1.0)]), None));
        let kept = &history.databases["db"].statements;
        assert!(!kept.contains_key(&1) && kept.contains_key(&2));
    }

    #[test]
    fn a_text_that_does_not_parse_names_no_tables() {
        assert_eq!(
            tables_named("SELECT * FROM posts WHERE a = $1"),
            Some(vec!["posts".into()])
        );
        assert_eq!(tables_named("SELECT * FROM posts WHERE a = '"), None);
        assert_eq!(
            tables_named("INSERT INTO t (a) VALUES ($1)"),
            Some(vec!["t".into()])
        );
    }
}
