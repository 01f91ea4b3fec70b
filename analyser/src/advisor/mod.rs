//! The index advisor: which index would serve the statements that scan a table. Statements are
//! parsed with PostgreSQL's own parser (`pg_query`), never matched with regexes.
//!
//! For each table the collector saw sequentially scanned at least `sequential_scan_delta` times
//! in the window, with at least `index_min_table_rows` rows (smaller tables are read faster
//! without an index): `statement` finds how each of the window's top statements uses the table;
//! `candidates` turns that into index column lists a DBA would try; `coverage` drops those an
//! existing valid index already serves. Then one of two judges picks at most one index:
//!
//! * **HypoPG installed**: the planner's cost of every statement on the table, without and with
//!   each candidate as a hypothetical index (`planner`). A statement is served when its cost falls
//!   by at least `index_min_cost_reduction`; the candidate saving the most estimated time per day
//!   (calls per day × mean time × cost reduction) wins.
//! * **No HypoPG**: the parsed heuristic, said so in the evidence. The leading column must be
//!   selective by the planner's statistics (one value matches at most 5 % of the rows), or be the
//!   sort of an `ORDER BY … LIMIT`; a range-led candidate needs HypoPG's cost check.
//!
//! A write-heavy table (more rows written than scans in the window) raises the bar: the cost must
//! fall by half of what remains above the configured margin (0.3 → 0.65), and without HypoPG one
//! value must match at most 1 % of the rows. Results are remembered per table for ten minutes
//! while the statements, indexes and thresholds stay the same, so the planner is not asked every
//! cycle.

pub mod candidates;
pub mod coverage;
pub mod naming;
pub mod planner;
pub mod statement;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proto::metrics::{IndexStats, MetricSnapshot, StatementStats, TableStats};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use self::candidates::KeyColumn;
use self::planner::Planner;
use self::statement::TableUse;
use crate::thresholds::Thresholds;

/// How long a table's advice is reused while nothing it depends on changed.
const REMEMBER: Duration = Duration::from_secs(600);
/// How long to wait before trying a database again after it could not be reached.
const RETRY_UNREACHABLE: Duration = Duration::from_secs(60);
/// Without HypoPG: the largest share of the rows one value of the leading column may match.
const MAX_SELECTIVITY: f64 = 0.05;
const MAX_SELECTIVITY_WRITE_HEAVY: f64 = 0.01;
/// Without HypoPG, the cost reductions assumed: for a sort-led candidate under LIMIT; at most,
/// for a selective filter whose index also gives the ORDER BY's order under LIMIT; and at most for
/// one that still leaves a sort.
const SORT_LIMIT_REDUCTION: f64 = 0.9;
const MAX_HEURISTIC_REDUCTION: f64 = 0.99;
const FILTER_ONLY_REDUCTION: f64 = 0.95;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// How the chosen index was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    HypoPg,
    Heuristic,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::HypoPg => "hypopg",
            Method::Heuristic => "heuristic",
        }
    }
}

/// A statement the proposed index serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub queryid: i64,
    pub query: String,
    pub calls: i64,
    pub mean_time_ms: f64,
    /// Planner costs (HypoPG only).
    pub cost_before: Option<f64>,
    pub cost_after: Option<f64>,
    /// The fraction of the statement's time the index is expected to save.
    pub reduction: f64,
}

/// One proposed index.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    pub schema: String,
    pub table: String,
    pub columns: Vec<KeyColumn>,
    pub index_name: String,
    /// The exact `CREATE INDEX CONCURRENTLY` statement.
    pub statement: String,
    pub method: Method,
    pub served: Vec<Served>,
    pub saved_ms_per_day: f64,
    pub write_heavy: bool,
    /// Rows inserted, updated and deleted, and scans (sequential + index), over the window.
    pub writes: i64,
    pub reads: i64,
    /// The cost reduction (HypoPG) or selectivity (heuristic) the candidate had to meet.
    pub bar: f64,
    pub note: String,
}

pub struct Advisor {
    planner: Planner,
    remembered: Mutex<HashMap<(String, String), Remembered>>,
}

struct Remembered {
    fingerprint: String,
    at: Instant,
    ttl: Duration,
    advice: Option<Advice>,
}

/// A statement on the subject table: how it uses the table, and its own uncovered candidates.
type StatementUse<'a> = (&'a StatementStats, Vec<TableUse>, Vec<Vec<KeyColumn>>);

/// A table worth advising on, with what the judges need.
struct Subject<'a> {
    table: &'a TableStats,
    /// Each statement using the table, how it uses it, and its own uncovered candidates.
    statements: Vec<StatementUse<'a>>,
    candidates: Vec<Vec<KeyColumn>>,
    taken_names: Vec<String>,
    writes: i64,
    reads: i64,
}

impl Advisor {
    pub fn new(planner: Planner) -> Self {
        Self {
            planner,
            remembered: Mutex::new(HashMap::new()),
        }
    }

    /// At most one proposed index per table that needs one.
    pub async fn advise(&self, snapshot: &MetricSnapshot, thresholds: &Thresholds) -> Vec<Advice> {
        let Some(detail) = snapshot.postgres.as_ref() else {
            return Vec::new();
        };
        let window = snapshot.time_delta_seconds.unwrap_or(0.0);
        if window <= 0.0 {
            return Vec::new();
        }
        let hypopg = detail.capabilities.as_ref().is_some_and(|c| c.hypopg);
        let scanned: Vec<&TableStats> = detail
            .tables
            .iter()
            .filter(|t| {
                t.seq_scan as f64 >= thresholds.sequential_scan_delta
                    && t.live_tuples >= thresholds.index_min_table_rows
            })
            .collect();
        if scanned.is_empty() {
            // The usual cycle: nothing to advise on, so no statement is parsed.
            return Vec::new();
        }
        let parsed: Vec<(&StatementStats, Vec<TableUse>)> = detail
            .top_statements
            .iter()
            .filter_map(|s| statement::analyse(&s.query).ok().map(|uses| (s, uses)))
            .collect();
        let mut advice = Vec::new();
        for table in scanned {
            let Some(subject) = subject(table, &detail.tables, &detail.indexes, &parsed) else {
                debug!(table = %table.qualified_name, "sequential scans but no statement an index would serve");
                continue;
            };
            if let Some(found) = self
                .advise_table(&snapshot.database_id, &subject, thresholds, hypopg, window)
                .await
            {
                advice.push(found);
            }
        }
        advice
    }

    async fn advise_table(
        &self,
        database_id: &str,
        subject: &Subject<'_>,
        thresholds: &Thresholds,
        hypopg: bool,
        window: f64,
    ) -> Option<Advice> {
        let key = (database_id.to_owned(), subject.table.qualified_name.clone());
        let fingerprint = format!(
            "{hypopg}|{}|{:?}|{:?}|{:?}",
            thresholds.index_min_cost_reduction,
            subject.candidates,
            subject
                .statements
                .iter()
                .map(|(s, _, _)| s.queryid)
                .collect::<Vec<_>>(),
            subject.taken_names,
        );
        if let Some(known) = self.remembered.lock().await.get(&key)
            && known.fingerprint == fingerprint
            && known.at.elapsed() < known.ttl
        {
            return known.advice.clone();
        }
        let (advice, ttl) = match self
            .judge(database_id, subject, thresholds, hypopg, window)
            .await
        {
            Ok(advice) => (advice, REMEMBER),
            Err(error) => {
                warn!(database_id, table = %subject.table.qualified_name, %error, "index advisor could not ask the database");
                (None, RETRY_UNREACHABLE)
            }
        };
        self.remembered.lock().await.insert(
            key,
            Remembered {
                fingerprint,
                at: Instant::now(),
                ttl,
                advice: advice.clone(),
            },
        );
        advice
    }

    async fn judge(
        &self,
        database_id: &str,
        subject: &Subject<'_>,
        thresholds: &Thresholds,
        hypopg: bool,
        window: f64,
    ) -> Result<Option<Advice>, String> {
        let mut session = self.planner.session(database_id).await?;
        let table = subject.table;
        let write_heavy = subject.writes > subject.reads;
        let result = if hypopg {
            let bar = cost_bar(thresholds.index_min_cost_reduction, write_heavy);
            let texts: Vec<&str> = subject
                .statements
                .iter()
                .map(|(s, _, _)| s.query.as_str())
                .collect();
            let measured = async {
                let before = planner::plan_costs(&mut session, &texts, None).await?;
                let mut after = Vec::with_capacity(subject.candidates.len());
                for candidate in &subject.candidates {
                    let hypothetical = format!(
                        "CREATE INDEX ON {} ({})",
                        naming::qualified(&table.schema, &table.name),
                        naming::key_list(candidate)
                    );
                    after.push(
                        planner::plan_costs(&mut session, &texts, Some(&hypothetical)).await?,
                    );
                }
                Ok::<_, String>((before, after))
            }
            .await;
            measured.map(|(before, after)| {
                choose_by_cost(subject, &before, &after, bar, window).map(|(i, served)| {
                    let judged = Judged {
                        method: Method::HypoPg,
                        write_heavy,
                        bar,
                        window,
                        note: String::new(),
                    };
                    advice(subject, i, served, judged)
                })
            })
        } else {
            let bar = if write_heavy {
                MAX_SELECTIVITY_WRITE_HEAVY
            } else {
                MAX_SELECTIVITY
            };
            let columns: Vec<String> = subject
                .candidates
                .iter()
                .filter_map(|c| c.first().map(|k| k.name.clone()))
                .collect();
            planner::distinct_values(
                &mut session,
                &table.schema,
                &table.name,
                &columns,
                table.live_tuples,
            )
            .await
            .map(|distinct| {
                choose_by_heuristic(subject, &distinct, bar, window).map(|(i, served)| {
                    let note = "HypoPG is not installed in this database, so no planner cost was \
                                compared: the index was chosen from the parsed statements and the \
                                planner's statistics. CREATE EXTENSION hypopg enables the cost check."
                        .to_owned();
                    let judged = Judged { method: Method::Heuristic, write_heavy, bar, window, note };
                    advice(subject, i, served, judged)
                })
            })
        };
        if result.is_err() && !planner::healthy(&mut session).await {
            session.close_on_drop();
        }
        result
    }
}

/// Without HypoPG's numbers there is no evidence an index helps, so the bar on write-heavy tables
/// is raised by half of what is left: 0.3 → 0.65.
fn cost_bar(margin: f64, write_heavy: bool) -> f64 {
    if write_heavy {
        margin + (1.0 - margin) / 2.0
    } else {
        margin
    }
}

fn subject<'a>(
    table: &'a TableStats,
    all_tables: &[TableStats],
    indexes: &'a [IndexStats],
    parsed: &[(&'a StatementStats, Vec<TableUse>)],
) -> Option<Subject<'a>> {
    let own_indexes: Vec<&IndexStats> = indexes
        .iter()
        .filter(|i| i.qualified_table == table.qualified_name)
        .collect();
    let same_name_elsewhere = all_tables
        .iter()
        .any(|t| t.name == table.name && t.schema != table.schema);
    let mut statements = Vec::new();
    let mut all_candidates: Vec<Vec<KeyColumn>> = Vec::new();
    for (statement, uses) in parsed {
        let mut own = Vec::new();
        let table_uses: Vec<TableUse> = uses
            .iter()
            .filter(|u| {
                u.table == table.name
                    && (u.schema == table.schema
                        || (u.schema.is_empty()
                            && (table.schema == "public" || !same_name_elsewhere)))
            })
            .cloned()
            .collect();
        for table_use in &table_uses {
            for candidate in candidates::for_use(table_use) {
                if own_indexes.iter().any(|i| coverage::covers(i, &candidate)) {
                    continue;
                }
                if !all_candidates.contains(&candidate) {
                    all_candidates.push(candidate.clone());
                }
                own.push(candidate);
            }
        }
        if !own.is_empty() {
            statements.push((*statement, table_uses, own));
        }
    }
    if all_candidates.is_empty() {
        return None;
    }
    Some(Subject {
        table,
        statements,
        candidates: all_candidates,
        // Index names are unique per schema.
        taken_names: indexes
            .iter()
            .filter(|i| i.schema == table.schema)
            .map(|i| i.name.clone())
            .collect(),
        writes: table.n_tup_ins + table.n_tup_upd + table.n_tup_del,
        reads: table.seq_scan + table.idx_scan.unwrap_or(0),
    })
}

/// Estimated milliseconds saved per day: calls per day × mean time × reduction, summed.
fn saved_per_day(served: &[Served], window: f64) -> f64 {
    served
        .iter()
        .map(|s| s.calls as f64 / window * SECONDS_PER_DAY * s.mean_time_ms * s.reduction)
        .sum()
}

/// The candidate (by index) saving the most time, with the statements whose planner cost it cuts
/// by at least `bar`; at equal savings (within 1 %) the one with fewer columns.
fn choose_by_cost(
    subject: &Subject<'_>,
    before: &[Option<f64>],
    after: &[Vec<Option<f64>>],
    bar: f64,
    window: f64,
) -> Option<(usize, Vec<Served>)> {
    let mut best: Option<(usize, Vec<Served>, f64)> = None;
    for (i, costs) in after.iter().enumerate() {
        let mut served = Vec::new();
        for (j, (statement, _, _)) in subject.statements.iter().enumerate() {
            let (Some(Some(b)), Some(Some(a))) = (before.get(j), costs.get(j)) else {
                continue;
            };
            if *b <= 0.0 {
                continue;
            }
            let reduction = 1.0 - a / b;
            if reduction >= bar {
                served.push(Served {
                    queryid: statement.queryid,
                    query: statement.query.clone(),
                    calls: statement.calls,
                    mean_time_ms: statement.mean_time_ms,
                    cost_before: Some(*b),
                    cost_after: Some(*a),
                    reduction,
                });
            }
        }
        consider(&mut best, subject, i, served, window);
    }
    best.map(|(i, served, _)| (i, served))
}

/// The heuristic judge: see the module documentation.
fn choose_by_heuristic(
    subject: &Subject<'_>,
    distinct: &HashMap<String, f64>,
    bar: f64,
    window: f64,
) -> Option<(usize, Vec<Served>)> {
    let live = subject.table.live_tuples.max(1) as f64;
    let mut best: Option<(usize, Vec<Served>, f64)> = None;
    for (i, candidate) in subject.candidates.iter().enumerate() {
        let leading = &candidate[0];
        let mut served = Vec::new();
        for (statement, uses, own) in &subject.statements {
            if !own.contains(candidate) {
                continue;
            }
            let filters_on = uses
                .iter()
                .any(|u| u.equality.contains(&leading.name) || u.join.contains(&leading.name));
            let sorts_on = uses
                .iter()
                .any(|u| u.limit && u.order_by.first().is_some_and(|(c, _)| c == &leading.name));
            let reduction = if filters_on {
                let Some(values) = distinct.get(&leading.name) else {
                    continue; // no statistics: no evidence the column is selective
                };
                let selectivity = (1.0 / values).max(1.0 / live);
                if selectivity > bar {
                    continue;
                }
                // An index that also hands rows over in the ORDER BY's order lets LIMIT stop
                // after a few rows; one that does not still sorts every matching row.
                let sort_served = uses.iter().any(|u| {
                    u.limit
                        && !u.order_by.is_empty()
                        && candidate.ends_with(
                            &u.order_by
                                .iter()
                                .map(|(name, descending)| KeyColumn {
                                    name: name.clone(),
                                    descending: *descending,
                                })
                                .collect::<Vec<_>>(),
                        )
                });
                if sort_served {
                    MAX_HEURISTIC_REDUCTION
                } else {
                    (1.0 - selectivity).min(FILTER_ONLY_REDUCTION)
                }
            } else if sorts_on {
                SORT_LIMIT_REDUCTION
            } else {
                continue; // range-led: only HypoPG can tell
            };
            served.push(Served {
                queryid: statement.queryid,
                query: statement.query.clone(),
                calls: statement.calls,
                mean_time_ms: statement.mean_time_ms,
                cost_before: None,
                cost_after: None,
                reduction,
            });
        }
        consider(&mut best, subject, i, served, window);
    }
    best.map(|(i, served, _)| (i, served))
}

fn consider(
    best: &mut Option<(usize, Vec<Served>, f64)>,
    subject: &Subject<'_>,
    i: usize,
    served: Vec<Served>,
    window: f64,
) {
    if served.is_empty() {
        return;
    }
    let saved = saved_per_day(&served, window);
    let better = match best {
        None => true,
        Some((j, _, best_saved)) => {
            let fewer = subject.candidates[i].len() < subject.candidates[*j].len();
            saved > *best_saved * 1.01 || (fewer && saved >= *best_saved * 0.99)
        }
    };
    if better {
        *best = Some((i, served, saved));
    }
}

/// How a candidate was judged, for the advice's evidence.
struct Judged {
    method: Method,
    write_heavy: bool,
    bar: f64,
    window: f64,
    note: String,
}

fn advice(subject: &Subject<'_>, i: usize, served: Vec<Served>, judged: Judged) -> Advice {
    let table = subject.table;
    let columns = subject.candidates[i].clone();
    let index_name = naming::index_name(&table.name, &columns, &subject.taken_names);
    let statement = naming::create_statement(&table.schema, &table.name, &index_name, &columns);
    Advice {
        schema: table.schema.clone(),
        table: table.name.clone(),
        columns,
        index_name,
        statement,
        method: judged.method,
        saved_ms_per_day: saved_per_day(&served, judged.window),
        served,
        write_heavy: judged.write_heavy,
        writes: subject.writes,
        reads: subject.reads,
        bar: judged.bar,
        note: judged.note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, descending: bool) -> KeyColumn {
        KeyColumn {
            name: name.into(),
            descending,
        }
    }

    fn s1_subject<'a>(table: &'a TableStats, statement: &'a StatementStats) -> Subject<'a> {
        let uses = statement::analyse(&statement.query).unwrap();
        let candidates = candidates::for_use(&uses[0]);
        Subject {
            table,
            statements: vec![(statement, uses, candidates.clone())],
            candidates,
            taken_names: Vec::new(),
            writes: 0,
            reads: 100,
        }
    }

    fn posts() -> (TableStats, StatementStats) {
        (
            TableStats {
                qualified_name: "public.posts".into(),
                schema: "public".into(),
                name: "posts".into(),
                live_tuples: 100_000,
                seq_scan: 100,
                ..Default::default()
            },
            StatementStats {
                queryid: 1,
                query: "SELECT * FROM posts WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2"
                    .into(),
                calls: 100,
                mean_time_ms: 20.0,
                ..Default::default()
            },
        )
    }

    #[test]
    fn the_cheapest_plan_wins_and_time_saved_is_per_day() {
        let (table, statement) = posts();
        let subject = s1_subject(&table, &statement);
        assert_eq!(
            subject.candidates,
            [
                vec![key("user_id", false), key("created_at", true)],
                vec![key("user_id", false)]
            ]
        );
        // Costs as PostgreSQL 15 gave them for 100k rows: seq scan + sort, then each index.
        let before = [Some(2077.0)];
        let after = [vec![Some(38.6)], vec![Some(390.0)]];
        let (chosen, served) = choose_by_cost(&subject, &before, &after, 0.3, 10.0).unwrap();
        assert_eq!(chosen, 0);
        let reduction = 1.0 - 38.6 / 2077.0;
        assert!((served[0].reduction - reduction).abs() < 1e-9);
        // 100 calls in 10 s = 864,000 calls a day, 20 ms each.
        let expected = 864_000.0 * 20.0 * reduction;
        assert!((saved_per_day(&served, 10.0) - expected).abs() < 1e-6);
    }

    #[test]
    fn a_small_cost_cut_serves_nothing_and_write_heavy_tables_need_more() {
        let (table, statement) = posts();
        let subject = s1_subject(&table, &statement);
        let before = [Some(1000.0)];
        let modest = [vec![Some(800.0)], vec![Some(800.0)]];
        assert!(choose_by_cost(&subject, &before, &modest, 0.3, 10.0).is_none());
        let half = [vec![Some(500.0)], vec![Some(500.0)]];
        assert!(choose_by_cost(&subject, &before, &half, cost_bar(0.3, false), 10.0).is_some());
        assert!((cost_bar(0.3, true) - 0.65).abs() < 1e-9);
        assert!(choose_by_cost(&subject, &before, &half, cost_bar(0.3, true), 10.0).is_none());
    }

    #[test]
    fn heuristic_needs_a_selective_leading_column() {
        let (table, statement) = posts();
        let subject = s1_subject(&table, &statement);
        let selective = HashMap::from([("user_id".to_owned(), 1000.0)]);
        let (chosen, _) = choose_by_heuristic(&subject, &selective, MAX_SELECTIVITY, 10.0).unwrap();
        assert_eq!(chosen, 0, "the index that also serves ORDER BY … LIMIT");
        let four_values = HashMap::from([("user_id".to_owned(), 4.0)]);
        assert!(choose_by_heuristic(&subject, &four_values, MAX_SELECTIVITY, 10.0).is_none());
        assert!(
            choose_by_heuristic(&subject, &HashMap::new(), MAX_SELECTIVITY, 10.0).is_none(),
            "no statistics, no evidence"
        );
    }
}
