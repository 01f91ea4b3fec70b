//! The index advisor: which indexes would serve the statements that cost a table the most time.
//! Statements are parsed with PostgreSQL's own parser (`pg_query`), never matched with regexes.
//!
//! **What is looked at** is decided by cost, as rates over the recent workload (`workload`: sums
//! that decay with a one-minute time constant, so the same workload gives the same rates at any
//! collection interval). A table with at least `index_min_table_rows` rows is considered when the
//! statements that read it without a usable index take at least
//! `index_min_statement_seconds_per_second` of database time per second, or when its sequential
//! scans read at least `index_min_rows_read_per_second` rows per second. A big table read by one
//! slow statement every few seconds qualifies; a tiny table scanned often does not. (A count of
//! scans per window did the opposite, and PostgreSQL counts each parallel worker's scan.)
//!
//! For such a table every recent statement on it is parsed (`statement`); `candidates` turns each
//! use into index key lists a DBA would try (equality, then sort or range), plus a covering
//! variant (`INCLUDE`) where a statement reads only a few more columns; `coverage` drops those an
//! existing valid index already serves. Then one of two judges decides:
//!
//! * **HypoPG installed** — whole-workload choice: the planner's cost of every statement on the
//!   table with sets of hypothetical indexes in place at once (`planner`). Greedily, the index
//!   whose addition to the set chosen so far saves the most time per second, net of the write cost
//!   it adds to the table's inserts, updates and deletes, joins the set; among savings within 1 %
//!   the smaller index (HypoPG's size estimate) wins. An index joins only if it cuts some
//!   statement's cost by at least `index_min_cost_reduction` beyond what the set already does, and
//!   saves more than it costs. The set's first index is proposed; the rest are listed in its
//!   evidence and proposed one at a time once the one before is built and verified (the real
//!   index then replaces the hypothetical one in the planner's view, and verification measures
//!   each alone). At most
//!   `index_max_new_per_table_per_hour` different indexes are proposed per table per hour.
//! * **No HypoPG**: the parsed heuristic, said so in the evidence. The leading column must be
//!   selective by the planner's statistics (one value matches at most 5 % of the rows), or be the
//!   sort of an `ORDER BY … LIMIT`; range-led and covering candidates need HypoPG's cost check.
//!
//! A write-heavy table (more rows written per second than scans) raises the bar: the cost must
//! fall by half of what remains above the configured margin (0.3 → 0.65), and without HypoPG one
//! value must match at most 1 % of the rows. Results are remembered per table for ten minutes
//! while the statements, indexes and thresholds stay the same, so the planner is not asked every
//! cycle.
//!
//! Partial indexes: pg_stat_statements replaces every constant with `$n`, so its text never shows
//! that a statement always filters on the same value. The collector learns which parameters
//! always hold one value from live samples (its `constants` module); the workload puts those
//! literals back into the text (`statement::with_constants`), the planner then sees the real
//! values (a range `now() - interval '1 minute'` at its real size), and an equality with a
//! constant yields a partial candidate (`candidates::partial`) that HypoPG judges like any other,
//! its size estimated for the rows it holds.

pub mod candidates;
pub mod coverage;
pub mod naming;
pub mod planner;
pub mod statement;
pub mod workload;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proto::metrics::{IndexStats, MetricSnapshot, TableStats};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use self::candidates::{Candidate, KeyColumn};
use self::planner::{Planner, PlannerError, Probe};
use self::statement::TableUse;
use self::workload::DatabaseWorkload;
use crate::thresholds::Thresholds;

/// How long a table's advice is reused while nothing it depends on changed.
const REMEMBER: Duration = Duration::from_secs(600);
/// How long to wait before trying a database again after it could not be reached.
const RETRY_UNREACHABLE: Duration = Duration::from_secs(60);
/// The window of `index_max_new_per_table_per_hour`.
const HOUR: Duration = Duration::from_secs(3600);
/// Without HypoPG: the largest share of the rows one value of the leading column may match.
const MAX_SELECTIVITY: f64 = 0.05;
const MAX_SELECTIVITY_WRITE_HEAVY: f64 = 0.01;
/// Without HypoPG, the cost reductions assumed: for a sort-led candidate under LIMIT; at most,
/// for a selective filter whose index also gives the ORDER BY's order under LIMIT; and at most for
/// one that still leaves a sort.
const SORT_LIMIT_REDUCTION: f64 = 0.9;
const MAX_HEURISTIC_REDUCTION: f64 = 0.99;
const FILTER_ONLY_REDUCTION: f64 = 0.95;
/// The database time one more index is assumed to add per row inserted, updated or deleted: a
/// b-tree insertion that misses the cache, on the high side so the net saving is not overstated
/// (an update that stays HOT adds nothing). Verification measures the real write cost after.
const WRITE_MS_PER_ROW_PER_INDEX: f64 = 0.02;
/// Candidates probed per table (those of the statements taking the most time first), and the
/// largest set chosen for one table.
const MAX_CANDIDATES: usize = 12;
const MAX_SET: usize = 4;
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

/// A statement the proposed index serves, with its recent rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub queryid: i64,
    pub query: String,
    pub calls_per_second: f64,
    pub mean_time_ms: f64,
    /// Planner costs (HypoPG only): before (with the indexes that exist, and those chosen before
    /// this one in the set) and with this index added.
    pub cost_before: Option<f64>,
    pub cost_after: Option<f64>,
    /// The fraction of the statement's time the index is expected to save.
    pub reduction: f64,
    pub basis: CostBasis,
}

/// Where a served statement's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostBasis {
    /// The planner's generic plan of the statement (parameters unknown).
    GenericPlan,
    /// The planner's plan of a range of the size the statement was seen to return (its rows per
    /// call): a generic plan guesses a third of the table for `col > $1`, whatever `$1` is.
    ObservedRows,
    /// The parsed heuristic, without HypoPG.
    Heuristic,
}

impl CostBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            CostBasis::GenericPlan => "generic_plan",
            CostBasis::ObservedRows => "observed_rows",
            CostBasis::Heuristic => "heuristic",
        }
    }
}

impl Served {
    pub fn saved_ms_per_second(&self) -> f64 {
        self.calls_per_second * self.mean_time_ms * self.reduction
    }
}

/// Why a table was put before the advisor: rates over the recent workload.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Trigger {
    /// Database time per second of the statements reading the table without a usable index.
    pub statement_seconds_per_second: f64,
    /// Rows per second read by sequential scans of the table.
    pub rows_read_per_second: f64,
    /// The (decayed) seconds of workload the rates are measured over.
    pub seconds_observed: f64,
}

/// One proposed index.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    pub schema: String,
    pub table: String,
    pub candidate: Candidate,
    pub index_name: String,
    /// The exact `CREATE INDEX CONCURRENTLY` statement.
    pub statement: String,
    pub method: Method,
    pub served: Vec<Served>,
    /// Statement time saved per day, before the write cost.
    pub saved_ms_per_day: f64,
    /// The database time per day the index is assumed to add to the table's writes.
    pub write_cost_ms_per_day: f64,
    /// HypoPG's estimate of the index's size.
    pub size_bytes: Option<i64>,
    pub write_heavy: bool,
    /// Rows inserted, updated and deleted per second, and scans (sequential + index) per second.
    pub writes_per_second: f64,
    pub reads_per_second: f64,
    /// The cost reduction (HypoPG) or selectivity (heuristic) the candidate had to meet.
    pub bar: f64,
    pub trigger: Trigger,
    /// The rest of the set chosen for the table's workload (`CREATE INDEX` statements), proposed
    /// one at a time once this one exists.
    pub then: Vec<String>,
    /// The database time per second (ms) of the statements the whole set serves (this index
    /// and `then`), each once: what the set is expected to explain.
    pub explains_ms_per_second: f64,
    pub note: String,
}

/// What the advisor has to say after one snapshot.
#[derive(Debug, Default)]
pub struct Advised {
    /// At most one index per table.
    pub proposed: Vec<Advice>,
    /// Database time per second (ms) of statements whose index question is open: on tables held
    /// back while the collector settles which of their parameters are constants (at most
    /// `workload::LEARNING_WAIT`), on tables whose indexes just changed and whose statements are
    /// being measured again (`workload::REMEASURE`), or served by an index that waits for its
    /// table's turn. An index may be about to explain it.
    pub pending_ms_per_second: f64,
}

pub struct Advisor {
    planner: Planner,
    workloads: Mutex<HashMap<String, DatabaseWorkload>>,
    remembered: Mutex<HashMap<TableKey, Remembered>>,
    proposed: Mutex<HourlyLimit>,
}

/// A table of a database: (database id, `schema.table`).
type TableKey = (String, String);

/// `index_max_new_per_table_per_hour`: per table, the indexes this analyser proposed in the last
/// hour, and which of them were built. Built ones count against the limit; a proposal that was
/// never built (superseded as more of the workload was seen, rejected) does not, but while one is
/// waiting (at most [`REMEMBER`]) no other index is proposed for its table, so two builds never
/// queue on one table. An index is known by its candidate (keys and included columns), not its
/// name: while it is being built its name is taken, and the same index would be named anew.
#[derive(Default)]
struct HourlyLimit {
    proposed: HashMap<TableKey, Vec<Proposed>>,
}

struct Proposed {
    at: Instant,
    candidate: Candidate,
    /// The name it was first proposed under: built when an index of that name exists.
    name: String,
}

impl HourlyLimit {
    /// Whether `candidate` (named `name`) may be proposed for `table` at `now`, given the
    /// table's `existing` index names: it already was within the hour, or none is waiting and
    /// fewer than `limit` were built.
    fn admit(
        &mut self,
        table: TableKey,
        candidate: &Candidate,
        name: &str,
        existing: &[&str],
        limit: i64,
        now: Instant,
    ) -> bool {
        let recent = self.proposed.entry(table).or_default();
        recent.retain(|p| now.duration_since(p.at) < HOUR);
        if recent.iter().any(|p| &p.candidate == candidate) {
            return true;
        }
        let built = |p: &Proposed| existing.contains(&p.name.as_str());
        let waiting = recent
            .iter()
            .any(|p| !built(p) && now.duration_since(p.at) < REMEMBER);
        if waiting || recent.iter().filter(|p| built(p)).count() as i64 >= limit {
            return false;
        }
        recent.push(Proposed {
            at: now,
            candidate: candidate.clone(),
            name: name.to_owned(),
        });
        true
    }
}

struct Remembered {
    fingerprint: String,
    at: Instant,
    ttl: Duration,
    advice: Option<Advice>,
}

/// A statement on the subject table, at its recent rate.
#[derive(Debug, Clone)]
struct Demand {
    queryid: i64,
    query: String,
    calls_per_second: f64,
    mean_time_ms: f64,
    rows_per_call: f64,
    /// Where its planner costs come from (set by the judge before it asks the planner).
    basis: CostBasis,
    /// How it uses the table, and its own candidates no existing index serves.
    uses: Vec<TableUse>,
    own: Vec<Candidate>,
}

impl Demand {
    fn ms_per_second(&self) -> f64 {
        self.calls_per_second * self.mean_time_ms
    }
}

/// A table worth advising on, with what the judges need.
#[derive(Debug, Clone)]
struct Subject {
    schema: String,
    name: String,
    qualified_name: String,
    live_tuples: i64,
    statements: Vec<Demand>,
    candidates: Vec<Candidate>,
    taken_names: Vec<String>,
    /// The table's valid indexes: an answer judged before one became valid is not reused.
    valid_indexes: Vec<String>,
    writes_per_second: f64,
    reads_per_second: f64,
    trigger: Trigger,
}

impl Subject {
    fn write_heavy(&self) -> bool {
        self.writes_per_second > self.reads_per_second
    }
}

impl Advisor {
    pub fn new(planner: Planner) -> Self {
        Self {
            planner,
            workloads: Mutex::new(HashMap::new()),
            remembered: Mutex::new(HashMap::new()),
            proposed: Mutex::new(HourlyLimit::default()),
        }
    }

    /// At most one proposed index per table that needs one; every snapshot also feeds the
    /// database's recent workload. A table in `verifying` (`schema.table`: an index of it is
    /// being verified) gets no new index until that verdict, so each is measured alone.
    pub async fn advise(
        &self,
        snapshot: &MetricSnapshot,
        thresholds: &Thresholds,
        verifying: &[String],
    ) -> Advised {
        let mut advised = Advised::default();
        let Some(detail) = snapshot.postgres.as_ref() else {
            return advised;
        };
        let subjects: Vec<Subject> = {
            let mut workloads = self.workloads.lock().await;
            let workload = workloads.entry(snapshot.database_id.clone()).or_default();
            let now = Instant::now();
            workload.observe_at(snapshot, now);
            if workload.seconds <= 0.0 {
                return advised;
            }
            let big = |u: &TableUse| {
                detail.tables.iter().any(|t| {
                    t.live_tuples >= thresholds.index_min_table_rows
                        && t.name == u.table
                        && (u.schema.is_empty() || u.schema == t.schema)
                })
            };
            let learning: f64 = workload
                .statements
                .values()
                .filter(|s| s.learning(now))
                .filter(|s| s.parsed.uses.iter().flatten().any(big))
                .map(|s| workload.per_second(s.time_ms))
                .sum();
            let remeasuring: f64 = workload.remeasuring.values().map(|(_, ms)| ms).sum();
            advised.pending_ms_per_second = learning + remeasuring;
            detail
                .tables
                .iter()
                .filter(|t| t.live_tuples >= thresholds.index_min_table_rows)
                .filter_map(|t| subject(t, &detail.tables, &detail.indexes, workload, now))
                .filter(|s| {
                    s.trigger.statement_seconds_per_second
                        >= thresholds.index_min_statement_seconds_per_second
                        || s.trigger.rows_read_per_second
                            >= thresholds.index_min_rows_read_per_second
                })
                .collect()
        };
        let hypopg = detail.capabilities.as_ref().is_some_and(|c| c.hypopg);
        let advice = &mut advised.proposed;
        for subject in subjects {
            let Some(found) = self
                .advise_table(&snapshot.database_id, &subject, thresholds, hypopg)
                .await
            else {
                continue;
            };
            let table = (snapshot.database_id.clone(), subject.qualified_name.clone());
            // Built means valid: while CREATE INDEX CONCURRENTLY runs, the index exists but is
            // INVALID, and the table's next proposal waits for it.
            let existing: Vec<&str> = detail
                .indexes
                .iter()
                .filter(|i| i.qualified_table == subject.qualified_name && i.is_valid)
                .map(|i| i.name.as_str())
                .collect();
            let admitted = !verifying.contains(&subject.qualified_name)
                && self.proposed.lock().await.admit(
                    table,
                    &found.candidate,
                    &found.index_name,
                    &existing,
                    thresholds.index_max_new_per_table_per_hour,
                    Instant::now(),
                );
            if admitted {
                advice.push(found);
            } else {
                // Another index of the table is being built or verified, or the hour's are
                // built: what this one would explain is still an index question.
                advised.pending_ms_per_second += found.explains_ms_per_second;
                debug!(
                    database_id = %snapshot.database_id,
                    statement = %found.statement,
                    "index waits: another of its table's is being built or verified, or it had its new indexes for this hour"
                );
            }
        }
        advised
    }

    async fn advise_table(
        &self,
        database_id: &str,
        subject: &Subject,
        thresholds: &Thresholds,
        hypopg: bool,
    ) -> Option<Advice> {
        let key = (database_id.to_owned(), subject.qualified_name.clone());
        // What the answer depends on, in an order that does not change with the statements'
        // rates from one cycle to the next.
        let sorted = |mut items: Vec<String>| {
            items.sort();
            items
        };
        let fingerprint = format!(
            "{hypopg}|{}|{:?}|{:?}|{:?}|{:?}",
            thresholds.index_min_cost_reduction,
            sorted(
                subject
                    .candidates
                    .iter()
                    .map(|c| format!("{c:?}"))
                    .collect()
            ),
            sorted(
                subject
                    .statements
                    .iter()
                    .map(|s| format!("{}:{:x}", s.queryid, proto::sql::fnv1a(&s.query)))
                    .collect()
            ),
            sorted(subject.taken_names.clone()),
            sorted(subject.valid_indexes.clone()),
        );
        if let Some(known) = self.remembered.lock().await.get(&key)
            && known.fingerprint == fingerprint
            && known.at.elapsed() < known.ttl
        {
            return known.advice.clone();
        }
        let started = Instant::now();
        let (advice, ttl) = match self.judge(database_id, subject, thresholds, hypopg).await {
            Ok(advice) => {
                debug!(
                    database_id,
                    table = %subject.qualified_name,
                    statements = subject.statements.len(),
                    candidates = subject.candidates.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    proposed = advice.as_ref().map_or("nothing", |a| a.statement.as_str()),
                    "index advisor judged a table"
                );
                (advice, REMEMBER)
            }
            Err(error) => {
                warn!(database_id, table = %subject.qualified_name, %error, "index advisor could not ask the database");
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
        subject: &Subject,
        thresholds: &Thresholds,
        hypopg: bool,
    ) -> Result<Option<Advice>, PlannerError> {
        let mut session = self.planner.session(database_id).await?;
        let write_heavy = subject.write_heavy();
        let result = if hypopg {
            let bar = cost_bar(thresholds.index_min_cost_reduction, write_heavy);
            let mut subject = subject.clone();
            let mut probed = Vec::with_capacity(subject.statements.len());
            for j in 0..subject.statements.len() {
                let proxy = range_proxy(&mut session, &subject, &subject.statements[j]).await?;
                if proxy.is_some() {
                    subject.statements[j].basis = CostBasis::ObservedRows;
                }
                probed.push(proxy.unwrap_or_else(|| subject.statements[j].query.clone()));
            }
            let texts: Vec<&str> = probed.iter().map(String::as_str).collect();
            let definitions: Vec<String> = subject
                .candidates
                .iter()
                .map(|c| {
                    format!(
                        "CREATE INDEX ON {}",
                        naming::definition(&subject.schema, &subject.name, c)
                    )
                })
                .collect();
            let probe = Hypothetical {
                session: &mut session,
                statements: &texts,
                definitions: &definitions,
            };
            choose_set(&subject, bar, probe).await.map(|steps| {
                let then: Vec<String> = steps
                    .iter()
                    .skip(1)
                    .map(|step| statement_for(&subject, step.candidate))
                    .collect();
                let explains = explained_ms_per_second(steps.iter().flat_map(|s| &s.served));
                steps.into_iter().next().map(|first| {
                    let judged = Judged {
                        method: Method::HypoPg,
                        bar,
                        note: String::new(),
                    };
                    advice(&subject, first, then, explains, judged)
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
                .filter_map(|c| c.keys.first().map(|k| k.name.clone()))
                .collect();
            planner::distinct_values(
                &mut session,
                &subject.schema,
                &subject.name,
                &columns,
                subject.live_tuples,
            )
            .await
            .map(|distinct| {
                choose_by_heuristic(subject, &distinct, bar).map(|step| {
                    let note = "HypoPG is not installed in this database, so no planner cost was \
                                compared: the index was chosen from the parsed statements and the \
                                planner's statistics. CREATE EXTENSION hypopg enables the cost check \
                                and the choice of a set of indexes for the whole workload."
                        .to_owned();
                    let judged = Judged {
                        method: Method::Heuristic,
                        bar,
                        note,
                    };
                    let explains = explained_ms_per_second(&step.served);
                    advice(subject, step, Vec::new(), explains, judged)
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

/// The table as the advisor sees it: its recent statements with their uncovered candidates, and
/// the rates that decide whether it is worth a look; `None` when no statement leaves a candidate.
fn subject(
    table: &TableStats,
    all_tables: &[TableStats],
    indexes: &[IndexStats],
    workload: &DatabaseWorkload,
    now: Instant,
) -> Option<Subject> {
    let own_indexes: Vec<&IndexStats> = indexes
        .iter()
        .filter(|i| i.qualified_table == table.qualified_name)
        .collect();
    let same_name_elsewhere = all_tables
        .iter()
        .any(|t| t.name == table.name && t.schema != table.schema);
    let mut statements = Vec::new();
    for load in workload.statements.values() {
        let Some(uses) = load.parsed.uses.as_ref() else {
            continue;
        };
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
        if !table_uses.is_empty() && load.learning(now) {
            // Judged once the collector knows which of its parameters are constants.
            return None;
        }
        let mut own: Vec<Candidate> = Vec::new();
        for table_use in &table_uses {
            for candidate in candidates::uncovered(table_use, &own_indexes) {
                if !own.contains(&candidate) {
                    own.push(candidate);
                }
            }
        }
        if !own.is_empty() {
            statements.push(Demand {
                queryid: load.queryid,
                query: load.parsed.query.clone(),
                calls_per_second: workload.per_second(load.calls),
                mean_time_ms: load.mean_time_ms(),
                rows_per_call: load.rows_per_call(),
                basis: CostBasis::GenericPlan,
                uses: table_uses,
                own,
            });
        }
    }
    if statements.is_empty() {
        return None;
    }
    // The statements taking the most time first, so their candidates are probed first.
    statements.sort_by(|a, b| {
        b.ms_per_second()
            .total_cmp(&a.ms_per_second())
            .then(a.queryid.cmp(&b.queryid))
    });
    let mut all_candidates: Vec<Candidate> = Vec::new();
    for candidate in statements.iter().flat_map(|s| &s.own) {
        if !all_candidates.contains(candidate) && all_candidates.len() < MAX_CANDIDATES {
            all_candidates.push(candidate.clone());
        }
    }
    let load = workload
        .tables
        .get(&table.qualified_name)
        .cloned()
        .unwrap_or_default();
    let trigger = Trigger {
        statement_seconds_per_second: statements.iter().map(Demand::ms_per_second).sum::<f64>()
            / 1000.0,
        rows_read_per_second: workload.per_second(load.seq_tup_read),
        seconds_observed: workload.seconds,
    };
    Some(Subject {
        schema: table.schema.clone(),
        name: table.name.clone(),
        qualified_name: table.qualified_name.clone(),
        live_tuples: table.live_tuples,
        statements,
        candidates: all_candidates,
        valid_indexes: own_indexes
            .iter()
            .filter(|i| i.is_valid)
            .map(|i| i.name.clone())
            .collect(),
        // Index names are unique per schema.
        taken_names: indexes
            .iter()
            .filter(|i| i.schema == table.schema)
            .map(|i| i.name.clone())
            .collect(),
        writes_per_second: workload.per_second(load.writes),
        reads_per_second: workload.per_second(load.scans),
        trigger,
    })
}

/// One index of the chosen set: which candidate, the statements it serves beyond the indexes
/// chosen before it, its size and what it costs the table's writes.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    candidate: usize,
    served: Vec<Served>,
    size_bytes: Option<i64>,
    write_ms_per_second: f64,
    /// The statements' costs with this index and those before it in place.
    costs: Vec<Option<f64>>,
}

impl Step {
    fn saved_ms_per_second(&self) -> f64 {
        self.served.iter().map(Served::saved_ms_per_second).sum()
    }

    fn net_ms_per_second(&self) -> f64 {
        self.saved_ms_per_second() - self.write_ms_per_second
    }
}

/// The planner's costs of the subject's statements with a set of its candidates (by position)
/// in place.
trait SetCosts {
    fn probe(&mut self, set: &[usize]) -> impl Future<Output = Result<Probe, PlannerError>> + Send;
}

/// The real one: HypoPG's hypothetical indexes in the advisor's read-only session.
struct Hypothetical<'a> {
    session: &'a mut sqlx::PgConnection,
    statements: &'a [&'a str],
    /// Each candidate's `CREATE INDEX` statement.
    definitions: &'a [String],
}

impl SetCosts for Hypothetical<'_> {
    fn probe(&mut self, set: &[usize]) -> impl Future<Output = Result<Probe, PlannerError>> + Send {
        let set: Vec<String> = set.iter().map(|&i| self.definitions[i].clone()).collect();
        async move { planner::plan_costs(self.session, self.statements, &set).await }
    }
}

/// The greedy whole-workload choice (see the module documentation).
async fn choose_set(
    subject: &Subject,
    bar: f64,
    mut costs: impl SetCosts,
) -> Result<Vec<Step>, PlannerError> {
    let base = costs.probe(&[]).await?.costs;
    if base.iter().all(Option::is_none) {
        // Not an answer to remember: the planner could not be asked (a timeout on a busy
        // server, say), so the table is tried again shortly.
        return Err(PlannerError::NoCost);
    }
    let write_ms_per_second = subject.writes_per_second * WRITE_MS_PER_ROW_PER_INDEX;
    let mut chosen: Vec<usize> = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut current = base.clone();
    while steps.len() < MAX_SET {
        let mut best: Option<Step> = None;
        // An index whose keys lead a chosen one's would duplicate it (a covering variant of a
        // chosen index, or its prefix).
        let duplicates = |i: usize| {
            chosen.iter().any(|&c| {
                subject.candidates[c]
                    .keys
                    .starts_with(&subject.candidates[i].keys)
            })
        };
        for i in (0..subject.candidates.len()).filter(|&i| !duplicates(i)) {
            let mut set = chosen.clone();
            set.push(i);
            let with = costs.probe(&set).await?;
            let served = served_by(subject, &base, &current, &with.costs, bar);
            if served.is_empty() {
                continue;
            }
            let step = Step {
                candidate: i,
                served,
                size_bytes: with.sizes.last().copied().flatten(),
                write_ms_per_second,
                costs: with.costs,
            };
            if step.net_ms_per_second() <= 0.0 {
                continue;
            }
            if best.as_ref().is_none_or(|b| better(subject, &step, b)) {
                best = Some(step);
            }
        }
        let Some(step) = best else {
            break;
        };
        chosen.push(step.candidate);
        current = step.costs.clone();
        steps.push(step);
    }
    // A b-tree serves any left prefix of its keys: an index whose keys lead a longer one in the
    // set is what the longer gives already. Only the longer is kept, in the shorter's place, so
    // it is built first and the shorter never stands beside it; the set is measured again.
    let longer_of = |i: usize| {
        chosen
            .iter()
            .copied()
            .filter(|&j| {
                let (short, long) = (&subject.candidates[i].keys, &subject.candidates[j].keys);
                long.len() > short.len() && long.starts_with(short)
            })
            .max_by_key(|&j| subject.candidates[j].keys.len())
            .unwrap_or(i)
    };
    let mut merged: Vec<usize> = Vec::new();
    for &i in &chosen {
        let kept = longer_of(i);
        if !merged.contains(&kept) {
            merged.push(kept);
        }
    }
    if merged == chosen {
        return Ok(steps);
    }
    let mut steps = Vec::new();
    let mut current = base.clone();
    for k in 0..merged.len() {
        let with = costs.probe(&merged[..=k]).await?;
        let served = served_by(subject, &base, &current, &with.costs, bar);
        let step = Step {
            candidate: merged[k],
            served,
            size_bytes: with.sizes.last().copied().flatten(),
            write_ms_per_second,
            costs: with.costs,
        };
        current = step.costs.clone();
        if !step.served.is_empty() && step.net_ms_per_second() > 0.0 {
            steps.push(step);
        }
    }
    Ok(steps)
}

/// For a plain range filter on the table (it returns the rows that match, with no equality or
/// join to narrow it), a statement the planner can judge in its place: the same columns read
/// through a range of the size the statement was seen to return, its bound taken from the
/// column's histogram. `None` for every other statement, for a range wider than
/// `MAX_SELECTIVITY` of the rows (an index would not pay), and without a histogram.
async fn range_proxy(
    session: &mut sqlx::PgConnection,
    subject: &Subject,
    statement: &Demand,
) -> Result<Option<String>, PlannerError> {
    let [table_use] = statement.uses.as_slice() else {
        return Ok(None);
    };
    let Some(column) = table_use.range.first() else {
        return Ok(None);
    };
    if !table_use.returns_matching_rows
        || !table_use.equality.is_empty()
        || !table_use.join.is_empty()
    {
        return Ok(None);
    }
    let live = subject.live_tuples.max(1) as f64;
    let share = (statement.rows_per_call / live).max(1.0 / live);
    if share > MAX_SELECTIVITY {
        return Ok(None);
    }
    let Some(bound) =
        planner::upper_quantile(session, &subject.schema, &subject.name, column, share).await?
    else {
        return Ok(None);
    };
    let read = match &table_use.read_columns {
        Some(columns) if !columns.is_empty() => columns
            .iter()
            .map(|c| naming::quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "*".to_owned(),
    };
    // `bound` was quoted by PostgreSQL's quote_literal; every identifier is quoted here.
    Ok(Some(format!(
        "SELECT {read} FROM {} WHERE {} >= {bound}",
        naming::qualified(&subject.schema, &subject.name),
        naming::quote_ident(column)
    )))
}

/// The statements whose cost `after` cuts by at least `bar` from `current`, each with the share
/// of its original (`base`) cost saved.
fn served_by(
    subject: &Subject,
    base: &[Option<f64>],
    current: &[Option<f64>],
    after: &[Option<f64>],
    bar: f64,
) -> Vec<Served> {
    let mut served = Vec::new();
    for (j, statement) in subject.statements.iter().enumerate() {
        let (Some(Some(b)), Some(Some(c)), Some(Some(a))) =
            (base.get(j), current.get(j), after.get(j))
        else {
            continue;
        };
        if *b <= 0.0 || *c <= 0.0 {
            continue;
        }
        if 1.0 - a / c >= bar {
            served.push(Served {
                queryid: statement.queryid,
                query: statement.query.clone(),
                calls_per_second: statement.calls_per_second,
                mean_time_ms: statement.mean_time_ms,
                cost_before: Some(*c),
                cost_after: Some(*a),
                reduction: ((c - a) / b).clamp(0.0, 1.0),
                basis: statement.basis,
            });
        }
    }
    served
}

/// Whether `step` beats `best`: more net time saved by over 1 %, or as much (within 1 %) for
/// less storage (fewer key and included columns when HypoPG gave no size).
fn better(subject: &Subject, step: &Step, best: &Step) -> bool {
    let (saved, best_saved) = (step.net_ms_per_second(), best.net_ms_per_second());
    if saved > best_saved * 1.01 {
        return true;
    }
    if saved < best_saved * 0.99 {
        return false;
    }
    match (step.size_bytes, best.size_bytes) {
        (Some(a), Some(b)) if a != b => a < b,
        _ => {
            let width = |i: usize| {
                let c = &subject.candidates[i];
                c.keys.len() + c.include.len()
            };
            width(step.candidate) < width(best.candidate)
        }
    }
}

/// The heuristic judge: see the module documentation. Covering candidates are HypoPG's to judge.
fn choose_by_heuristic(
    subject: &Subject,
    distinct: &HashMap<String, f64>,
    bar: f64,
) -> Option<Step> {
    let live = subject.live_tuples.max(1) as f64;
    let mut best: Option<Step> = None;
    for (i, candidate) in subject.candidates.iter().enumerate() {
        if !candidate.include.is_empty() {
            continue;
        }
        let leading = &candidate.keys[0];
        let mut served = Vec::new();
        for statement in &subject.statements {
            if !statement.own.contains(candidate) {
                continue;
            }
            let uses = &statement.uses;
            let filters_on = uses.iter().any(|u| match leading.function {
                None => u.equality.contains(&leading.name) || u.join.contains(&leading.name),
                Some(_) => candidates::for_use(u)
                    .iter()
                    .any(|c| c.first() == Some(leading)),
            });
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
                        && candidate.keys.ends_with(
                            &u.order_by
                                .iter()
                                .map(|(name, descending)| KeyColumn::column(name, *descending))
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
                calls_per_second: statement.calls_per_second,
                mean_time_ms: statement.mean_time_ms,
                cost_before: None,
                cost_after: None,
                reduction,
                basis: CostBasis::Heuristic,
            });
        }
        if served.is_empty() {
            continue;
        }
        let step = Step {
            candidate: i,
            served,
            size_bytes: None,
            write_ms_per_second: subject.writes_per_second * WRITE_MS_PER_ROW_PER_INDEX,
            costs: Vec::new(),
        };
        if step.net_ms_per_second() > 0.0 && best.as_ref().is_none_or(|b| better(subject, &step, b))
        {
            best = Some(step);
        }
    }
    best
}

/// How a candidate was judged, for the advice's evidence.
struct Judged {
    method: Method,
    bar: f64,
    note: String,
}

fn statement_for(subject: &Subject, i: usize) -> String {
    let candidate = &subject.candidates[i];
    let name = naming::index_name(&subject.name, candidate, &subject.taken_names);
    naming::create_statement(&subject.schema, &subject.name, &name, candidate)
}

/// The database time per second (ms) of the distinct statements `served` lists.
fn explained_ms_per_second<'a>(served: impl IntoIterator<Item = &'a Served>) -> f64 {
    let mut seen = Vec::new();
    served
        .into_iter()
        .filter(|s| {
            let first = !seen.contains(&s.queryid);
            seen.push(s.queryid);
            first
        })
        .map(|s| s.calls_per_second * s.mean_time_ms)
        .sum()
}

fn advice(
    subject: &Subject,
    step: Step,
    then: Vec<String>,
    explains_ms_per_second: f64,
    judged: Judged,
) -> Advice {
    let candidate = subject.candidates[step.candidate].clone();
    let index_name = naming::index_name(&subject.name, &candidate, &subject.taken_names);
    let statement =
        naming::create_statement(&subject.schema, &subject.name, &index_name, &candidate);
    Advice {
        schema: subject.schema.clone(),
        table: subject.name.clone(),
        candidate,
        index_name,
        statement,
        method: judged.method,
        saved_ms_per_day: step.saved_ms_per_second() * SECONDS_PER_DAY,
        write_cost_ms_per_day: step.write_ms_per_second * SECONDS_PER_DAY,
        size_bytes: step.size_bytes,
        served: step.served,
        write_heavy: subject.write_heavy(),
        writes_per_second: subject.writes_per_second,
        reads_per_second: subject.reads_per_second,
        bar: judged.bar,
        trigger: subject.trigger,
        then,
        explains_ms_per_second,
        note: judged.note,
    }
}

#[cfg(test)]
mod tests {
    use proto::metrics::{PostgresDetail, StatementStats};

    use super::*;

    fn key(name: &str, descending: bool) -> KeyColumn {
        KeyColumn::column(name, descending)
    }

    fn table(name: &str, live_tuples: i64) -> TableStats {
        TableStats {
            qualified_name: format!("public.{name}"),
            schema: "public".into(),
            name: name.into(),
            live_tuples,
            ..Default::default()
        }
    }

    /// A window of `seconds` in which each statement ran its calls, each with its mean time.
    fn window(
        seconds: f64,
        tables: Vec<TableStats>,
        statements: &[(i64, &str, i64, f64)],
    ) -> MetricSnapshot {
        MetricSnapshot {
            database_id: "db".into(),
            time_delta_seconds: Some(seconds),
            postgres: Some(PostgresDetail {
                tables,
                top_statements: statements
                    .iter()
                    .filter(|(_, _, calls, _)| *calls > 0)
                    .map(|(queryid, query, calls, mean)| StatementStats {
                        queryid: *queryid,
                        query: (*query).into(),
                        calls: *calls,
                        total_time_ms: *calls as f64 * mean,
                        mean_time_ms: *mean,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The subject `table` makes after one 10 s window of `statements`.
    fn subject_of(table: &TableStats, statements: &[(i64, &str, i64, f64)]) -> Subject {
        subject_after(&[window(10.0, vec![table.clone()], statements)], table).unwrap()
    }

    fn subject_after(snapshots: &[MetricSnapshot], table: &TableStats) -> Option<Subject> {
        let mut workload = DatabaseWorkload::default();
        for s in snapshots {
            workload.observe(s);
        }
        subject(
            table,
            std::slice::from_ref(table),
            &[],
            &workload,
            Instant::now(),
        )
    }

    const S1: &str = "SELECT * FROM posts WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2";

    /// Planner costs for the tests: per candidate set (by key text), each statement's cost; an
    /// index's size grows with its columns.
    struct Fake<'a, F> {
        subject: &'a Subject,
        costs: F,
    }

    impl<F: Fn(&[String]) -> Vec<f64> + Send> SetCosts for Fake<'_, F> {
        fn probe(
            &mut self,
            set: &[usize],
        ) -> impl Future<Output = Result<Probe, PlannerError>> + Send {
            let names: Vec<String> = set
                .iter()
                .map(|&i| {
                    let c = &self.subject.candidates[i];
                    let mut text = naming::key_list(&c.keys);
                    if !c.include.is_empty() {
                        text.push_str(&format!(" INCLUDE {:?}", c.include));
                    }
                    text
                })
                .collect();
            let sizes = set
                .iter()
                .map(|&i| {
                    let c = &self.subject.candidates[i];
                    Some(1000 * (1 + (c.keys.len() + c.include.len()) as i64))
                })
                .collect();
            std::future::ready(Ok(Probe {
                costs: (self.costs)(&names).into_iter().map(Some).collect(),
                sizes,
            }))
        }
    }

    fn fake_probe<F: Fn(&[String]) -> Vec<f64> + Send>(subject: &Subject, costs: F) -> Fake<'_, F> {
        Fake { subject, costs }
    }

    #[tokio::test]
    async fn the_cheapest_plan_wins_and_time_saved_is_per_day() {
        let posts = table("posts", 100_000);
        let subject = subject_of(&posts, &[(1, S1, 100, 20.0)]);
        assert_eq!(
            subject.candidates,
            [
                Candidate::plain(vec![key("user_id", false), key("created_at", true)]),
                Candidate::plain(vec![key("user_id", false)])
            ]
        );
        // Costs as PostgreSQL 15 gave them for 100k rows: seq scan + sort, then each index.
        let costs = |set: &[String]| -> Vec<f64> {
            if set.iter().any(|s| s.contains("created_at")) {
                vec![38.6]
            } else if set.is_empty() {
                vec![2077.0]
            } else {
                vec![390.0]
            }
        };
        let steps = choose_set(&subject, 0.3, fake_probe(&subject, costs))
            .await
            .unwrap();
        assert_eq!(
            steps.len(),
            1,
            "the second index serves nothing more: {steps:?}"
        );
        assert_eq!(steps[0].candidate, 0);
        let reduction = 1.0 - 38.6 / 2077.0;
        assert!((steps[0].served[0].reduction - reduction).abs() < 1e-9);
        // 100 calls in 10 s = 864,000 calls a day, 20 ms each.
        let advice = advice(
            &subject,
            steps[0].clone(),
            Vec::new(),
            explained_ms_per_second(&steps[0].served),
            Judged {
                method: Method::HypoPg,
                bar: 0.3,
                note: String::new(),
            },
        );
        assert!((advice.saved_ms_per_day - 864_000.0 * 20.0 * reduction).abs() < 1e-3);
        assert!((advice.explains_ms_per_second - 10.0 * 20.0).abs() < 1e-9);
        assert_eq!(advice.write_cost_ms_per_day, 0.0);
    }

    #[tokio::test]
    async fn two_statement_families_get_one_index_each() {
        let orders = table("orders", 1_000_000);
        let by_customer = "SELECT * FROM orders WHERE customer_id = $1";
        let by_status_date =
            "SELECT * FROM orders WHERE status = $1 AND created_at > now() - interval '1 day'";
        let subject = subject_of(
            &orders,
            &[(1, by_customer, 50, 80.0), (2, by_status_date, 20, 120.0)],
        );
        let costs = |set: &[String]| -> Vec<f64> {
            let has = |k: &str| set.iter().any(|s| s.starts_with(k));
            vec![
                if has("\"customer_id\"") {
                    8.0
                } else {
                    20_000.0
                },
                if has("\"status\", \"created_at\"") {
                    30.0
                } else if has("\"status\"") {
                    9_000.0
                } else {
                    20_000.0
                },
            ]
        };
        let steps = choose_set(&subject, 0.3, fake_probe(&subject, costs))
            .await
            .unwrap();
        let chosen: Vec<String> = steps
            .iter()
            .map(|s| naming::key_list(&subject.candidates[s.candidate].keys))
            .collect();
        // The bigger saving first (50/s × 80 ms against 20/s × 120 ms), then the other family's.
        assert_eq!(chosen, [r#""customer_id""#, r#""status", "created_at""#]);
        assert_eq!(steps[1].served.len(), 1);
        assert_eq!(steps[1].served[0].queryid, 2);
    }

    #[tokio::test]
    async fn one_column_order_serving_two_statements_beats_two_indexes() {
        let events = table("events", 500_000);
        let filter = "SELECT * FROM events WHERE account_id = $1 AND kind = $2";
        let sorted = "SELECT * FROM events WHERE account_id = $1 ORDER BY kind LIMIT 20";
        let subject = subject_of(&events, &[(1, filter, 40, 50.0), (2, sorted, 40, 50.0)]);
        // (account_id, kind) serves both; (account_id) alone serves the filter less well.
        let costs = |set: &[String]| -> Vec<f64> {
            if set.iter().any(|s| s.starts_with(r#""account_id", "kind""#)) {
                vec![5.0, 6.0]
            } else if set.iter().any(|s| s == r#""account_id""#) {
                vec![40.0, 300.0]
            } else {
                vec![9_000.0, 9_500.0]
            }
        };
        let steps = choose_set(&subject, 0.3, fake_probe(&subject, costs))
            .await
            .unwrap();
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert_eq!(
            naming::key_list(&subject.candidates[steps[0].candidate].keys),
            r#""account_id", "kind""#
        );
        assert_eq!(steps[0].served.len(), 2);
    }

    #[tokio::test]
    async fn an_index_leading_a_longer_one_of_the_set_is_not_built_beside_it() {
        let events = table("events", 1_000_000);
        let by_customer = "SELECT * FROM events WHERE customer_id = $1";
        let latest =
            "SELECT * FROM events WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 10";
        let subject = subject_of(
            &events,
            &[(1, by_customer, 100, 40.0), (2, latest, 50, 40.0)],
        );
        // (customer_id) serves the filter as well as the longer index does, and is smaller, so
        // the greedy choice takes it first and the longer one for the sort after it.
        let costs = |set: &[String]| -> Vec<f64> {
            let long = set.iter().any(|s| s.contains("created_at"));
            let short = set.iter().any(|s| s == r#""customer_id""#);
            vec![
                if long || short { 12.0 } else { 20_000.0 },
                if long {
                    9.0
                } else if short {
                    60.0
                } else {
                    21_000.0
                },
            ]
        };
        let steps = choose_set(&subject, 0.3, fake_probe(&subject, costs))
            .await
            .unwrap();
        let chosen: Vec<String> = steps
            .iter()
            .map(|s| naming::key_list(&subject.candidates[s.candidate].keys))
            .collect();
        assert_eq!(chosen, [r#""customer_id", "created_at" DESC"#], "{steps:?}");
        assert_eq!(steps[0].served.len(), 2, "it serves both: {steps:?}");
    }

    #[tokio::test]
    async fn an_index_that_costs_writes_more_than_it_saves_is_not_chosen() {
        let log = table("log", 200_000);
        let mut written = log.clone();
        written.n_tup_ins = 200_000; // 20,000 rows a second
        let subject = subject_after(
            &[window(
                10.0,
                vec![written],
                &[(1, "SELECT * FROM log WHERE request_id = $1", 1, 200.0)],
            )],
            &log,
        )
        .unwrap();
        let costs =
            |set: &[String]| -> Vec<f64> { vec![if set.is_empty() { 5_000.0 } else { 5.0 }] };
        // 0.1 call/s × 200 ms = 20 ms/s saved; 20,000 rows/s × 0.02 ms = 400 ms/s of writes.
        let steps = choose_set(&subject, 0.3, fake_probe(&subject, costs))
            .await
            .unwrap();
        assert!(steps.is_empty(), "{steps:?}");
    }

    #[tokio::test]
    async fn a_covering_index_is_chosen_only_when_it_saves_more_than_the_plain_one() {
        let orders = table("orders", 1_000_000);
        let q = "SELECT id, total FROM orders WHERE customer_id = $1";
        let subject = subject_of(&orders, &[(1, q, 100, 30.0)]);
        assert!(
            subject
                .candidates
                .iter()
                .any(|c| c.include == ["id", "total"]),
            "{:?}",
            subject.candidates
        );
        // Without an index the statement costs `none`; the plain index 40, the covering one 4.
        let costs_from = |none: f64| {
            move |set: &[String]| -> Vec<f64> {
                vec![match () {
                    _ if set.iter().any(|s| s.contains("INCLUDE")) => 4.0,
                    _ if set.is_empty() => none,
                    _ => 40.0,
                }]
            }
        };
        let steps = choose_set(&subject, 0.3, fake_probe(&subject, costs_from(20_000.0)))
            .await
            .unwrap();
        // The covering index saves 0.18 % more of the statement's time than the plain one: within
        // 1 %, so the smaller plain index is chosen, and the covering variant, which would
        // duplicate it, is not added after it.
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(subject.candidates[steps[0].candidate].include.is_empty());
        // Where the heap visits are most of the remaining cost, the covering index wins.
        let steps = choose_set(&subject, 0.3, fake_probe(&subject, costs_from(500.0)))
            .await
            .unwrap();
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert_eq!(
            subject.candidates[steps[0].candidate].include,
            ["id", "total"]
        );
    }

    #[tokio::test]
    async fn a_small_cost_cut_serves_nothing_and_write_heavy_tables_need_more() {
        let posts = table("posts", 100_000);
        let subject = subject_of(&posts, &[(1, S1, 100, 20.0)]);
        let modest =
            |set: &[String]| -> Vec<f64> { vec![if set.is_empty() { 1000.0 } else { 800.0 }] };
        assert!(
            choose_set(&subject, 0.3, fake_probe(&subject, modest))
                .await
                .unwrap()
                .is_empty()
        );
        let half =
            |set: &[String]| -> Vec<f64> { vec![if set.is_empty() { 1000.0 } else { 500.0 }] };
        assert!(
            !choose_set(&subject, cost_bar(0.3, false), fake_probe(&subject, half))
                .await
                .unwrap()
                .is_empty()
        );
        assert!((cost_bar(0.3, true) - 0.65).abs() < 1e-9);
        assert!(
            choose_set(&subject, cost_bar(0.3, true), fake_probe(&subject, half))
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// One slow statement (400 ms) on a 2M-row table every 4 s, seen at `interval`.
    fn slow_and_infrequent(interval: u32, total: u32) -> Option<Subject> {
        let big = table("big", 2_000_000);
        let q = "SELECT * FROM big WHERE created_at > now() - interval '1 day'";
        let snapshots: Vec<MetricSnapshot> = (0..total / interval)
            .map(|w| {
                let start = w * interval;
                let calls = (start..start + interval).filter(|s| s % 4 == 0).count() as i64;
                let mut scanned = big.clone();
                scanned.seq_scan = calls;
                scanned.seq_tup_read = calls * 2_000_000;
                window(f64::from(interval), vec![scanned], &[(9, q, calls, 400.0)])
            })
            .collect();
        subject_after(&snapshots, &big)
    }

    #[test]
    fn a_big_table_read_by_a_slow_infrequent_statement_is_considered_at_any_interval() {
        let t = crate::detectors::fixtures::thresholds();
        for interval in [1, 5, 10] {
            let subject = slow_and_infrequent(interval, 120).expect("a range candidate");
            let trigger = subject.trigger;
            // 0.25 calls/s × 400 ms = 0.1 s of database time per second, 500,000 rows/s.
            assert!(
                (trigger.statement_seconds_per_second - 0.1).abs() < 0.01,
                "{interval} s: {trigger:?}"
            );
            assert!(
                trigger.statement_seconds_per_second >= t.index_min_statement_seconds_per_second
            );
            assert!(trigger.rows_read_per_second >= t.index_min_rows_read_per_second);
            assert_eq!(
                subject.candidates,
                [Candidate::plain(vec![key("created_at", false)])]
            );
        }
        // Within two 10 s cycles the rates are already there.
        let early = slow_and_infrequent(10, 20).unwrap().trigger;
        assert!(early.statement_seconds_per_second >= t.index_min_statement_seconds_per_second);
    }

    #[test]
    fn a_statement_an_existing_index_serves_makes_no_subject() {
        let posts = table("posts", 100_000);
        let mut workload = DatabaseWorkload::default();
        workload.observe(&window(10.0, vec![posts.clone()], &[(1, S1, 100, 20.0)]));
        let existing = IndexStats {
            qualified_table: "public.posts".into(),
            schema: "public".into(),
            name: "posts_user_created".into(),
            definition: "CREATE INDEX posts_user_created ON public.posts USING btree (user_id, created_at DESC)".into(),
            columns: vec!["user_id".into(), "created_at DESC".into()],
            is_valid: true,
            ..Default::default()
        };
        let now = Instant::now();
        let tables = std::slice::from_ref(&posts);
        assert!(subject(&posts, tables, &[existing], &workload, now).is_none());
    }

    #[test]
    fn a_constant_the_collector_settled_yields_a_partial_candidate_and_waits_until_then() {
        use proto::metrics::{FixedConstant, StatementConstants};
        let tasks = table("tasks", 500_000);
        let pending =
            "SELECT id, created_at FROM tasks WHERE status = $1 ORDER BY created_at LIMIT $2";
        let sampled = |settled: bool| {
            let mut w = window(1.0, vec![tasks.clone()], &[(5, pending, 10, 40.0)]);
            w.postgres.as_mut().unwrap().statement_constants = vec![StatementConstants {
                queryid: 5,
                constants: if settled {
                    vec![
                        FixedConstant {
                            parameter: 1,
                            literal: "'pending'".into(),
                        },
                        FixedConstant {
                            parameter: 2,
                            literal: "20".into(),
                        },
                    ]
                } else {
                    Vec::new()
                },
                samples: if settled { 3 } else { 2 },
                settled,
                constant_parameters: vec![1, 2],
            }];
            w
        };
        let start = Instant::now();
        let mut workload = DatabaseWorkload::default();
        workload.observe_at(&sampled(false), start);
        let tables = std::slice::from_ref(&tasks);
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        assert!(
            subject(&tasks, tables, &[], &workload, at(1)).is_none(),
            "its constants are still being learnt"
        );
        let waited = subject(&tasks, tables, &[], &workload, at(121)).unwrap();
        assert!(
            waited.candidates.iter().all(|c| c.predicate.is_none()),
            "judged without them after the wait"
        );
        workload.observe_at(&sampled(true), at(3));
        let settled = subject(&tasks, tables, &[], &workload, at(3)).unwrap();
        assert_eq!(
            settled.statements[0].query,
            "SELECT id, created_at FROM tasks WHERE status = 'pending' ORDER BY created_at LIMIT 20"
        );
        let partial: Vec<String> = settled
            .candidates
            .iter()
            .filter(|c| c.predicate.is_some())
            .map(|c| naming::definition("public", "tasks", c))
            .collect();
        assert_eq!(
            partial,
            [
                r#""public"."tasks" ("created_at") WHERE "status" = 'pending'"#,
                r#""public"."tasks" ("created_at") INCLUDE ("id") WHERE "status" = 'pending'"#
            ]
        );
    }

    #[test]
    fn at_most_the_configured_number_of_new_indexes_per_table_per_hour() {
        let mut limit = HourlyLimit::default();
        let table = || ("db".to_owned(), "public.orders".to_owned());
        let index = |column: &str| Candidate::plain(vec![key(column, false)]);
        let at = |minutes: u64| Instant::now() + Duration::from_secs(60 * minutes);
        assert!(limit.admit(table(), &index("a"), "idx_a", &[], 2, at(0)));
        // The same index again is admitted, under another name too (its own is taken while it
        // is being built); another waits while "a" is not built.
        assert!(limit.admit(table(), &index("a"), "idx_a_2", &["idx_a"], 2, at(1)));
        assert!(!limit.admit(table(), &index("b"), "idx_b", &[], 2, at(1)));
        // A proposal never built (superseded) stops holding the table after ten minutes, and
        // does not count.
        assert!(limit.admit(table(), &index("b"), "idx_b", &[], 2, at(11)));
        assert!(limit.admit(table(), &index("c"), "idx_c", &["idx_b"], 2, at(12)));
        // Two built this hour: a third waits for the hour.
        let built = ["idx_b", "idx_c"];
        assert!(!limit.admit(table(), &index("d"), "idx_d", &built, 2, at(13)));
        assert!(limit.admit(table(), &index("d"), "idx_d", &built, 2, at(73)));
        // Another table has its own hour.
        let users = ("db".to_owned(), "public.users".to_owned());
        assert!(limit.admit(users, &index("d"), "idx_d", &[], 2, at(13)));
    }

    #[test]
    fn heuristic_needs_a_selective_leading_column() {
        let posts = table("posts", 100_000);
        let subject = subject_of(&posts, &[(1, S1, 100, 20.0)]);
        let selective = HashMap::from([("user_id".to_owned(), 1000.0)]);
        let step = choose_by_heuristic(&subject, &selective, MAX_SELECTIVITY).unwrap();
        assert_eq!(
            step.candidate, 0,
            "the index that also serves ORDER BY … LIMIT"
        );
        let four_values = HashMap::from([("user_id".to_owned(), 4.0)]);
        assert!(choose_by_heuristic(&subject, &four_values, MAX_SELECTIVITY).is_none());
        assert!(
            choose_by_heuristic(&subject, &HashMap::new(), MAX_SELECTIVITY).is_none(),
            "no statistics, no evidence"
        );
    }
}
