//! Verification: after an action completes, the next cycles of its database are measured and
//! compared with the cycles before it, and the action is kept, rolled back (`rollback.requested`,
//! which the executor carries out) or found to have no effect (`judge` decides). Everything it
//! knows lives in the action's ledger entry in knowledge, saved every cycle, so an analyser
//! that restarts in the middle continues where it was and reaches the same decision.
//!
//! Intake is the durable JetStream consumer `analyser` on `actions.completed`, acknowledged once
//! the ledger entry exists. Baselines come from the last cycles this analyser saw before the
//! action started; when it saw none (it was restarted), from the detection's own evidence.

pub mod judge;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock};

use async_nats::jetstream;
use lifecycle::Shutdown;
use lifecycle::consumer::{DurableConsumer, Failure};
use proto::actions::{ActionOutcome, StoredAction};
use proto::clients::Knowledge;
use proto::error::{Error, ErrorKind};
use proto::events::{ActionCompletedEvent, RollbackRequest};
use proto::knowledge::{
    Action, GetActionRequest, GetDetectionRequest, LedgerEntry, ListLedgerRequest,
    ResolveDetectionRequest, VerificationSettings,
};
use proto::metrics::MetricSnapshot;
use proto::status::{ActionType, LedgerState, Resolution};
use proto::subjects;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use self::judge::{Figures, Load, Rules, Verdict};
use crate::advisor::statement;
use crate::interned::Interned;

/// Cycles kept per database for baselines.
const RECENT: usize = 12;
/// Cycles before an action that make its baseline.
const BASELINE_CYCLES: usize = 5;
pub const CONSUMER: &str = "analyser";

/// What one verification follows; saved as the ledger entry's `tracking_json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tracking {
    pub action_id: String,
    pub database_id: String,
    pub detection_id: String,
    pub detection_key: String,
    pub action_type: String,
    /// `schema.table` for table actions.
    pub table: Option<(String, String)>,
    /// The statements the action was for (queryids as text).
    pub served: Vec<String>,
    pub can_rollback: bool,
    /// Unix seconds: the action ran from `started_at` to `completed_at`.
    pub started_at: i64,
    pub completed_at: i64,
    pub deadline: i64,
    pub before: Figures,
    pub after: Figures,
    pub storage_bytes: i64,
    /// VACUUM: dead tuples just before it ran.
    pub dead_before: Option<i64>,
}

/// What the executor stored with an action that verification needs: the table its plan names,
/// the index's size and the dead tuples before a VACUUM.
///
/// The one reader of the executor's `params_json` (`{plan, detection_key, description}`) and
/// `result_json`, until they are typed in `proto::actions`.
#[derive(Debug, Clone, Default, PartialEq)]
struct ActionFacts {
    table: Option<(String, String)>,
    storage_bytes: i64,
    dead_before: Option<i64>,
}

impl ActionFacts {
    /// Read through the contract's types (`proto::actions`); what they cannot read is absent.
    fn of(action: &Action) -> Self {
        let table = StoredAction::from_params_json(&action.params_json)
            .ok()
            .and_then(|stored| {
                stored
                    .plan
                    .table()
                    .map(|(schema, table)| (schema.to_owned(), table.to_owned()))
            });
        let outcome = action
            .parsed_action_type()
            .ok()
            .and_then(|kind| ActionOutcome::from_result_json(kind, &action.result_json).ok());
        Self {
            table,
            storage_bytes: outcome
                .as_ref()
                .and_then(ActionOutcome::size_bytes)
                .unwrap_or(0),
            dead_before: outcome.as_ref().and_then(ActionOutcome::dead_tuples_before),
        }
    }
}

/// Verification's durable consumer `analyser` on the `ACTIONS` stream (`actions.completed`).
pub fn completed_consumer() -> DurableConsumer {
    DurableConsumer::new(
        jetstream::stream::Config {
            name: subjects::ACTIONS_STREAM.into(),
            subjects: vec![subjects::ACTIONS_COMPLETED.into()],
            max_age: subjects::STREAM_MAX_AGE,
            ..Default::default()
        },
        CONSUMER,
    )
}

/// One cycle of a database as verification reads it: each statement's calls and time, not the
/// whole snapshot (a database's tables, indexes and sessions are not needed for a baseline, and
/// twelve whole snapshots of a thousand databases would not fit in a small analyser).
#[derive(Debug, Clone, Default)]
struct Cycle {
    end: i64,
    seconds: f64,
    statements: Vec<Ran>,
}

/// A statement's work in one cycle; its text is shared with every cycle and database that ran
/// the same (`TEXTS`), its figures as small as a cycle's figures need (a cycle's calls fit in
/// 32 bits, its milliseconds in a float's seven digits).
#[derive(Debug, Clone)]
struct Ran {
    queryid: i64,
    query: Arc<str>,
    calls: u32,
    total_ms: f32,
}

/// The statement texts of every cycle kept.
static TEXTS: LazyLock<Interned<str>> = LazyLock::new(Interned::new);

impl Cycle {
    /// `snapshot`'s cycle, reusing the texts of `previous` where they are the same.
    fn of(snapshot: &MetricSnapshot, previous: Option<&Cycle>) -> Self {
        let known: HashMap<i64, &Arc<str>> = previous
            .map(|c| c.statements.iter().map(|r| (r.queryid, &r.query)).collect())
            .unwrap_or_default();
        let statements = snapshot
            .postgres
            .as_ref()
            .map(|detail| {
                detail
                    .top_statements
                    .iter()
                    .map(|s| Ran {
                        queryid: s.queryid,
                        query: match known.get(&s.queryid) {
                            Some(text) if ***text == *s.query => Arc::clone(text),
                            _ => TEXTS.get(&s.query, |text| Arc::from(text)),
                        },
                        calls: u32::try_from(s.calls.max(0)).unwrap_or(u32::MAX),
                        total_ms: s.total_time_ms as f32,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            end: snapshot.timestamp,
            seconds: snapshot.time_delta_seconds.unwrap_or(0.0),
            statements,
        }
    }
}

pub struct Verifier {
    knowledge: Knowledge,
    nats: async_nats::Client,
    tracked: Mutex<Option<HashMap<String, Tracking>>>,
    recent: Mutex<HashMap<String, VecDeque<Cycle>>>,
}

impl Verifier {
    pub fn new(knowledge: Knowledge, nats: async_nats::Client) -> Self {
        Self {
            knowledge,
            nats,
            tracked: Mutex::new(None),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Follows `actions.completed` with the durable consumer `analyser` until shutdown: an event
    /// that does not decode, or names an action knowledge refuses, is dropped; one that could not
    /// be started (knowledge down) is offered again.
    pub async fn consume(self: Arc<Self>, jetstream: jetstream::Context, shutdown: Shutdown) {
        completed_consumer()
            .run(jetstream, shutdown, |event: ActionCompletedEvent| {
                let verifier = self.clone();
                async move {
                    verifier.start(&event).await.map_err(|error| {
                        warn!(action_id = %event.action_id, %error, "verification not started yet");
                        if error.kind() == ErrorKind::InvalidInput {
                            Failure::poison(error)
                        } else {
                            Failure::retry(error)
                        }
                    })
                }
            })
            .await;
    }

    /// Starts following a completed action (idempotent: a ledger entry that exists is kept).
    pub async fn start(&self, event: &ActionCompletedEvent) -> Result<(), Error> {
        let mut tracked = self.tracked().await?;
        if tracked.contains_key(&event.action_id) {
            return Ok(());
        }
        let request = proto::knowledge::GetLedgerEntryRequest {
            action_id: event.action_id.clone(),
        };
        match self
            .knowledge
            .call("GetLedgerEntry", |mut k| async move {
                k.get_ledger_entry(request).await
            })
            .await
        {
            Ok(existing) if existing.found => return Ok(()),
            Ok(_) => {}
            // Knowledge down: offered again later.
            Err(error) if error.kind().is_transient() => return Err(error),
            // An id knowledge refuses (it cannot hold an action either: `action` says so).
            Err(error) => debug!(action_id = %event.action_id, %error, "no ledger entry read"),
        }
        let Some(action) = self.action(&event.action_id).await? else {
            // Published by mistake or by someone else, or flushed since: there is nothing to
            // verify, and asking again would get the same answer for the stream's lifetime.
            let shown: String = event.action_id.chars().take(128).collect();
            warn!(action_id = %shown, "completed action unknown to knowledge; not verified");
            return Ok(());
        };
        let evidence = self.evidence(&action.detection_id).await;
        let settings = self.settings().await?;
        let facts = ActionFacts::of(&action);
        let served: Vec<String> = evidence["statements"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|s| s["queryid"].as_i64().map(|q| q.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let completed_at = if action.completed_at > 0 {
            action.completed_at
        } else {
            event.timestamp
        };
        let started_at = if action.started_at > 0 {
            action.started_at
        } else {
            completed_at
        };
        let mut tracking = Tracking {
            action_id: action.id.clone(),
            database_id: action.database_id.clone(),
            detection_id: action.detection_id.clone(),
            detection_key: event.detection_key.clone(),
            action_type: action.action_type.clone(),
            table: facts.table,
            served,
            can_rollback: action.can_rollback,
            started_at,
            completed_at,
            deadline: completed_at + settings.timeout_seconds.max(60),
            before: Figures::default(),
            after: Figures::default(),
            storage_bytes: facts.storage_bytes,
            dead_before: facts.dead_before,
        };
        self.baseline(&mut tracking, &evidence).await;
        let entry = self.entry(
            &tracking,
            LedgerState::Verifying,
            "measuring the cycles after the action",
            None,
        );
        self.save(entry).await?;
        info!(action_id = %tracking.action_id, action_type = %tracking.action_type, "verifying");
        tracked.insert(tracking.action_id.clone(), tracking);
        Ok(())
    }

    /// The tables (`schema.table`) of `database_id` with an index being verified: what it does
    /// to the database's latency is still being measured, and tuning now, or building another
    /// index on the same table, would blur that measurement.
    pub async fn tables_being_verified(&self, database_id: &str) -> Vec<String> {
        let tracked = self.tracked.lock().await;
        let mut tables: Vec<String> = tracked
            .iter()
            .flat_map(|tracked| tracked.values())
            .filter(|t| {
                t.database_id == database_id
                    && t.action_type.parse::<ActionType>() == Ok(ActionType::CreateIndex)
            })
            .filter_map(|t| {
                t.table
                    .as_ref()
                    .map(|(schema, table)| format!("{schema}.{table}"))
            })
            .collect();
        tables.sort();
        tables.dedup();
        tables
    }

    /// Takes one snapshot: remembers it for baselines and advances every verification of its
    /// database, deciding those that have seen enough.
    pub async fn observe(&self, snapshot: &MetricSnapshot) {
        let seconds = snapshot.time_delta_seconds.unwrap_or(0.0);
        let cycle = {
            let mut recent = self.recent.lock().await;
            let cycles = recent.entry(snapshot.database_id.clone()).or_default();
            let cycle = Cycle::of(snapshot, cycles.back());
            if seconds > 0.0 {
                cycles.push_back(cycle.clone());
                while cycles.len() > RECENT {
                    cycles.pop_front();
                }
            }
            cycle
        };
        let mut tracked = match self.tracked().await {
            Ok(tracked) => tracked,
            Err(error) => {
                debug!(%error, "verifications in progress not loaded yet");
                return;
            }
        };
        let ids: Vec<String> = tracked
            .values()
            .filter(|t| t.database_id == snapshot.database_id)
            .map(|t| t.action_id.clone())
            .collect();
        if ids.is_empty() {
            // Nothing to verify on this database: no configuration read either.
            return;
        }
        let settings = match self.settings().await {
            Ok(settings) => settings,
            Err(error) => {
                warn!(%error, "verification settings not read; this cycle is not counted");
                return;
            }
        };
        for id in ids {
            let Some(tracking) = tracked.get_mut(&id) else {
                continue;
            };
            // Only cycles that began after the action completed.
            let began = snapshot.timestamp - seconds.ceil() as i64;
            if seconds > 0.0 && began >= tracking.completed_at {
                let (served, table) = (tracking.served.clone(), tracking.table.clone());
                accumulate(&mut tracking.after, &served, table.as_ref(), &cycle);
            }
            match decide(tracking, snapshot, &settings) {
                Some((state, reason, verdict)) => {
                    let entry = self.entry(tracking, state, &reason, verdict.as_ref());
                    match self.save(entry).await {
                        Ok(()) => {
                            self.act(tracking, state, &reason, &settings).await;
                            info!(action_id = %id, %state, %reason, "verified");
                            tracked.remove(&id);
                        }
                        Err(error) => {
                            warn!(action_id = %id, %state, %error, "decision not saved; decided again next cycle");
                        }
                    }
                }
                None => {
                    let entry = self.entry(
                        tracking,
                        LedgerState::Verifying,
                        "measuring the cycles after the action",
                        None,
                    );
                    if let Err(error) = self.save(entry).await {
                        warn!(action_id = %id, %error, "verification progress not saved");
                    }
                }
            }
        }
    }

    /// Carries a decision out: resolves the detection, or asks the executor to roll back.
    async fn act(
        &self,
        tracking: &Tracking,
        state: LedgerState,
        reason: &str,
        settings: &VerificationSettings,
    ) {
        let rollback = match state {
            LedgerState::RolledBack => true,
            LedgerState::NoEffect => settings.rollback_on_no_effect && tracking.can_rollback,
            LedgerState::Verifying | LedgerState::Kept | LedgerState::NotJudged => false,
        };
        if rollback && tracking.can_rollback {
            let request = RollbackRequest {
                action_id: tracking.action_id.clone(),
                detection_id: tracking.detection_id.clone(),
                action_type: tracking.action_type.clone(),
                database_id: tracking.database_id.clone(),
                reason: format!("verification: {reason}"),
                timestamp: now(),
            };
            let payload = match serde_json::to_vec(&request) {
                Ok(payload) => payload,
                Err(error) => {
                    warn!(action_id = %tracking.action_id, %error, "rollback request not encoded");
                    return;
                }
            };
            if let Err(error) = self
                .nats
                .publish(subjects::ROLLBACK_REQUESTED, payload.into())
                .await
            {
                warn!(action_id = %tracking.action_id, %error, "rollback request not sent");
            } else if let Err(error) = self.nats.flush().await {
                warn!(action_id = %tracking.action_id, %error, "rollback request not flushed");
            }
            return;
        }
        if tracking.detection_id.is_empty() {
            return;
        }
        // A regression that cannot be undone leaves the change in place: the problem counts
        // as fixed, as when it was not judged.
        let resolution = match state {
            LedgerState::Kept => Resolution::Verified,
            LedgerState::NoEffect => Resolution::NoEffect,
            LedgerState::Verifying | LedgerState::RolledBack | LedgerState::NotJudged => {
                Resolution::Fixed
            }
        };
        let request = ResolveDetectionRequest {
            detection_id: tracking.detection_id.clone(),
            solution: format!("{state}: {reason}"),
            reason: resolution.to_string(),
            cooldown_seconds: 0,
        };
        if let Err(error) = self
            .knowledge
            .call("MarkDetectionResolved", |mut k| async move {
                k.mark_detection_resolved(request).await
            })
            .await
        {
            warn!(detection_id = %tracking.detection_id, %error, "detection not resolved after verification");
        }
    }

    /// Baseline: the cycles this analyser saw before the action started, for the statements
    /// that touch the table (or all, for configuration); else the detection's evidence.
    async fn baseline(&self, tracking: &mut Tracking, evidence: &Value) {
        let recent = self.recent.lock().await;
        let before: Vec<&Cycle> = recent
            .get(&tracking.database_id)
            .map(|cycles| {
                cycles
                    .iter()
                    .filter(|c| c.end <= tracking.started_at)
                    .collect()
            })
            .unwrap_or_default();
        let (served, table) = (tracking.served.clone(), tracking.table.clone());
        for cycle in before.iter().rev().take(BASELINE_CYCLES) {
            accumulate(&mut tracking.before, &served, table.as_ref(), cycle);
        }
        if tracking.before.statements.is_empty()
            && let Some(list) = evidence["statements"].as_array()
        {
            let seconds = evidence["time_delta_seconds"].as_f64().unwrap_or(1.0);
            tracking.before.seconds = seconds;
            for s in list {
                if let Some(queryid) = s["queryid"].as_i64() {
                    let calls = s["calls"].as_i64().unwrap_or(0);
                    let mean = s["mean_time_ms"].as_f64().unwrap_or(0.0);
                    tracking.before.add(
                        queryid,
                        Load {
                            query: s["query"].as_str().unwrap_or_default().to_owned(),
                            calls,
                            total_ms: calls as f64 * mean,
                            writes: false,
                        },
                    );
                }
            }
        }
    }

    fn entry(
        &self,
        t: &Tracking,
        state: LedgerState,
        reason: &str,
        verdict: Option<&Verdict>,
    ) -> LedgerEntry {
        LedgerEntry {
            action_id: t.action_id.clone(),
            database_id: t.database_id.clone(),
            detection_id: t.detection_id.clone(),
            detection_key: t.detection_key.clone(),
            action_type: t.action_type.clone(),
            state: state.as_str().into(),
            reason: reason.into(),
            started_at: t.completed_at,
            decided_at: if state.is_final() { now() } else { 0 },
            cycles: t.after.cycles as i32,
            before_json: summary(&t.before, &t.served).to_string(),
            after_json: verdict
                .map(|v| v.after.clone())
                .unwrap_or_else(|| summary(&t.after, &t.served))
                .to_string(),
            time_saved_ms_per_day: verdict.map_or(0.0, |v| v.time_saved_ms_per_day),
            write_cost_ms_per_day: verdict.map_or(0.0, |v| v.write_cost_ms_per_day),
            storage_bytes: t.storage_bytes,
            tracking_json: serde_json::to_string(t).unwrap_or_default(),
            updated_at: 0,
        }
    }

    async fn save(&self, entry: LedgerEntry) -> Result<(), Error> {
        self.knowledge
            .call("SaveLedgerEntry", |mut k| async move {
                k.save_ledger_entry(entry).await
            })
            .await?;
        Ok(())
    }

    /// The verifications in progress, loaded from knowledge on first use (after a restart).
    async fn tracked(
        &self,
    ) -> Result<tokio::sync::MappedMutexGuard<'_, HashMap<String, Tracking>>, Error> {
        let mut guard = self.tracked.lock().await;
        if guard.is_none() {
            let request = ListLedgerRequest {
                database_id: String::new(),
                state: LedgerState::Verifying.as_str().into(),
                limit: 1000,
            };
            let entries = self
                .knowledge
                .call(
                    "ListLedger",
                    |mut k| async move { k.list_ledger(request).await },
                )
                .await?
                .entries;
            let resumed: HashMap<String, Tracking> = entries
                .iter()
                .filter_map(|e| serde_json::from_str::<Tracking>(&e.tracking_json).ok())
                .map(|t| (t.action_id.clone(), t))
                .collect();
            if !resumed.is_empty() {
                info!(count = resumed.len(), "verifications resumed");
            }
            *guard = Some(resumed);
        }
        Ok(tokio::sync::MutexGuard::map(guard, |g| {
            g.as_mut().expect("loaded above")
        }))
    }

    /// The action `id`; `None` when knowledge has none (or refuses the id: it cannot hold one).
    async fn action(&self, id: &str) -> Result<Option<Action>, Error> {
        let request = GetActionRequest {
            action_id: id.into(),
        };
        let reply = self
            .knowledge
            .call(
                "GetAction",
                |mut k| async move { k.get_action(request).await },
            )
            .await;
        match reply {
            Ok(reply) => Ok(reply.action.filter(|_| reply.found)),
            Err(error) if error.kind() == ErrorKind::InvalidInput => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn evidence(&self, detection_id: &str) -> Value {
        if detection_id.is_empty() {
            return Value::Null;
        }
        let request = GetDetectionRequest {
            detection_id: detection_id.into(),
        };
        match self
            .knowledge
            .call("GetDetection", |mut k| async move {
                k.get_detection(request).await
            })
            .await
        {
            Ok(reply) => reply
                .detection
                .and_then(|d| serde_json::from_str(&d.evidence_json).ok())
                .unwrap_or(Value::Null),
            Err(error) => {
                debug!(detection_id, %error, "detection evidence not read; baseline from cycles only");
                Value::Null
            }
        }
    }

    async fn settings(&self) -> Result<VerificationSettings, Error> {
        let config = self.knowledge.system_config().await?;
        Ok(config.verification.unwrap_or_default())
    }
}

/// The decision once the cycles and calls are there; `None` to keep measuring.
fn decide(
    tracking: &Tracking,
    snapshot: &MetricSnapshot,
    settings: &VerificationSettings,
) -> Option<(LedgerState, String, Option<Verdict>)> {
    let rules = Rules {
        min_calls: settings.min_calls,
        improvement_threshold: settings.improvement_threshold,
        regression_tolerance: settings.regression_tolerance,
    };
    let enough_cycles = tracking.after.cycles >= settings.cycles.max(1) as u32;
    let expired = snapshot.timestamp >= tracking.deadline;
    let verdict = match tracking.action_type.parse::<ActionType>() {
        Ok(ActionType::CreateIndex) => {
            judge::judge_index(&tracking.served, &tracking.before, &tracking.after, rules)
        }
        Ok(ActionType::TuneConfigHighLatency) => {
            judge::judge_config(&tracking.before, &tracking.after, rules)
        }
        Ok(ActionType::VacuumTable) => {
            if tracking.after.cycles == 0 {
                return None;
            }
            let (schema, table) = tracking.table.clone()?;
            let dead_now = snapshot
                .postgres
                .as_ref()?
                .tables
                .iter()
                .find(|t| t.schema == schema && t.name == table)
                .map(|t| t.dead_tuples);
            let before = tracking.dead_before.unwrap_or(0);
            let reason = match dead_now {
                Some(now) => format!(
                    "dead tuples went from {before} to {now} ({} reclaimed)",
                    (before - now).max(0)
                ),
                None => format!(
                    "{before} dead tuples before; the table is no longer among the collected ones"
                ),
            };
            let state = if dead_now.is_some_and(|now| now < before) || dead_now.is_none() {
                LedgerState::Kept
            } else {
                LedgerState::NoEffect
            };
            return Some((state, reason, None));
        }
        // Named one by one, so a new action type must be given a rule here or listed.
        Ok(
            ActionType::TerminateQuery
            | ActionType::CacheRecommendation
            | ActionType::ConnectionRecommendation
            | ActionType::DeployConnectionPooler
            | ActionType::DeployRedis
            | ActionType::SetRoleTimeout,
        )
        | Err(_) => {
            if tracking.after.cycles == 0 {
                return None;
            }
            return Some((
                LedgerState::NotJudged,
                format!(
                    "{} is not measured by verification; its result records what it did",
                    tracking.action_type
                ),
                None,
            ));
        }
    };
    match verdict {
        Some(verdict) if enough_cycles => {
            let state = verdict.decision;
            let reason = verdict.reason.clone();
            Some((state, reason, Some(verdict)))
        }
        _ if expired => Some((
            LedgerState::NotJudged,
            format!(
                "too few calls to judge within {} s (the served statements ran {} times; {} needed); the change stays",
                tracking.deadline - tracking.completed_at,
                tracking
                    .after
                    .statements
                    .values()
                    .map(|l| l.calls)
                    .sum::<i64>(),
                settings.min_calls
            ),
            None,
        )),
        _ => None,
    }
}

/// Adds one cycle's statements that concern the action (those it served, those on its table,
/// or all of them for a database-wide change) to `figures`.
fn accumulate(
    figures: &mut Figures,
    served: &[String],
    table: Option<&(String, String)>,
    cycle: &Cycle,
) {
    for s in &cycle.statements {
        let queryid = s.queryid.to_string();
        let (concerns, writes) = match table {
            _ if served.contains(&queryid) => (true, false),
            Some((schema, table)) => {
                let uses = statement::analyse(&s.query).unwrap_or_default();
                let on_table = uses
                    .iter()
                    .any(|u| &u.table == table && (u.schema.is_empty() || &u.schema == schema));
                let upper = s.query.trim_start().to_ascii_uppercase();
                let writes = ["INSERT", "UPDATE", "DELETE"]
                    .iter()
                    .any(|w| upper.starts_with(w));
                (on_table, writes)
            }
            None => (true, false),
        };
        if concerns {
            figures.add(
                s.queryid,
                Load {
                    query: s.query.to_string(),
                    calls: i64::from(s.calls),
                    total_ms: f64::from(s.total_ms),
                    writes,
                },
            );
        }
    }
    figures.seconds += cycle.seconds;
    figures.cycles += 1;
}

/// The ledger's view of some figures: the served statements together, then each statement.
fn summary(figures: &Figures, served: &[String]) -> Value {
    let mut calls = 0;
    let mut total = 0.0;
    for id in served {
        if let Some(l) = figures.statements.get(id) {
            calls += l.calls;
            total += l.total_ms;
        }
    }
    json!({
        "served": {"calls": calls, "mean_ms": if calls > 0 { total / calls as f64 } else { 0.0 }},
        "statements": figures.statements,
        "seconds": figures.seconds,
        "cycles": figures.cycles,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;

    fn tracking(after_calls: i64) -> Tracking {
        let mut before = Figures::default();
        before.add(
            1,
            Load {
                query: "q".into(),
                calls: 100,
                total_ms: 1000.0,
                writes: false,
            },
        );
        let mut after = Figures {
            seconds: 6.0,
            cycles: 3,
            ..Default::default()
        };
        after.add(
            1,
            Load {
                query: "q".into(),
                calls: after_calls,
                total_ms: after_calls as f64 * 0.1,
                writes: false,
            },
        );
        Tracking {
            action_id: "a".into(),
            database_id: "db".into(),
            detection_id: "d".into(),
            detection_key: "k".into(),
            action_type: "create_index".into(),
            table: Some(("public".into(), "posts".into())),
            served: vec!["1".into()],
            can_rollback: true,
            started_at: 100,
            completed_at: 101,
            deadline: 701,
            before,
            after,
            storage_bytes: 0,
            dead_before: None,
        }
    }

    fn snapshot(at: i64) -> MetricSnapshot {
        MetricSnapshot {
            database_id: "db".into(),
            timestamp: at,
            ..Default::default()
        }
    }

    #[test]
    fn a_kept_cycle_holds_each_statements_figures_and_shares_a_text_seen_before() {
        let with = |at: i64, calls: i64| {
            let mut s = snapshot(at);
            s.time_delta_seconds = Some(10.0);
            s.postgres = Some(proto::metrics::PostgresDetail {
                top_statements: vec![proto::metrics::StatementStats {
                    queryid: 7,
                    query: "SELECT * FROM orders WHERE customer_id = $1".into(),
                    calls,
                    total_time_ms: calls as f64 * 2.0,
                    ..Default::default()
                }],
                tables: vec![proto::metrics::TableStats::default(); 100],
                ..Default::default()
            });
            s
        };
        let first = Cycle::of(&with(10, 5), None);
        let second = Cycle::of(&with(20, 8), Some(&first));
        assert!(Arc::ptr_eq(
            &first.statements[0].query,
            &second.statements[0].query
        ));
        assert_eq!(
            (second.end, second.seconds, second.statements.len()),
            (20, 10.0, 1)
        );
        assert_eq!(
            (second.statements[0].calls, second.statements[0].total_ms),
            (8, 16.0)
        );
        let mut figures = Figures::default();
        accumulate(&mut figures, &["7".into()], None, &second);
        assert_eq!(figures.statements["7"].calls, 8);
        assert_eq!((figures.seconds, figures.cycles), (10.0, 1));
    }

    /// A verifier whose knowledge does not answer, on a real NATS server.
    async fn verifier(nats: &testkit::NatsServer) -> Arc<Verifier> {
        let closed = format!("127.0.0.1:{}", testkit::free_port());
        let client = async_nats::connect(nats.url()).await.unwrap();
        Arc::new(Verifier::new(Knowledge::connect(&closed).unwrap(), client))
    }

    #[tokio::test]
    async fn a_regression_and_an_ineffective_change_when_so_configured_ask_for_a_rollback() {
        let nats = testkit::NatsServer::start();
        let verifier = verifier(&nats).await;
        let listener = async_nats::connect(nats.url()).await.unwrap();
        let mut requests = listener
            .subscribe(subjects::ROLLBACK_REQUESTED)
            .await
            .unwrap();
        // A flush only writes the subscription out; a request's answer (here: no one answers)
        // comes after the server has taken it, so the verifier's message cannot overtake it.
        let barrier = listener.request("barrier", "".into()).await;
        assert!(barrier.is_err(), "nobody answers on `barrier`");
        let settings = VerificationSettings {
            rollback_on_no_effect: true,
            ..Default::default()
        };
        for (state, reason) in [
            (LedgerState::RolledBack, "another statement got slower"),
            (LedgerState::NoEffect, "no faster"),
        ] {
            verifier.act(&tracking(60), state, reason, &settings).await;
            let message = tokio::time::timeout(Duration::from_secs(5), requests.next())
                .await
                .expect("a rollback request within 5 s")
                .unwrap();
            let request: RollbackRequest = serde_json::from_slice(&message.payload).unwrap();
            assert_eq!(
                (
                    request.action_id.as_str(),
                    request.detection_id.as_str(),
                    request.action_type.as_str(),
                    request.database_id.as_str()
                ),
                ("a", "d", "create_index", "db")
            );
            assert_eq!(request.reason, format!("verification: {reason}"));
        }
    }

    #[tokio::test]
    async fn intake_drops_a_malformed_event_and_redelivers_one_knowledge_could_not_take() {
        let nats = testkit::NatsServer::start();
        let verifier = verifier(&nats).await;
        let client = async_nats::connect(nats.url()).await.unwrap();
        let jetstream = jetstream::new(client);
        let shutdown = Shutdown::new();
        let intake = tokio::spawn(verifier.consume(jetstream.clone(), shutdown.clone()));
        // The intake creates the stream; publish once it exists.
        let stream = loop {
            if let Ok(stream) = jetstream.get_stream(subjects::ACTIONS_STREAM).await {
                break stream;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let event = ActionCompletedEvent {
            action_id: "act-1".into(),
            database_id: "db".into(),
            ..Default::default()
        };
        for payload in [b"{not json".to_vec(), serde_json::to_vec(&event).unwrap()] {
            jetstream
                .publish(subjects::ACTIONS_COMPLETED, payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        // Knowledge is down: the event is refused with a delay and offered again; the malformed
        // one was terminated, so only the event is still pending.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let info = stream.consumer_info(CONSUMER).await.unwrap();
            if info.num_redelivered >= 1 && info.delivered.stream_sequence >= 2 {
                assert_eq!(info.num_ack_pending, 1, "{info:?}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never redelivered: {info:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), intake)
            .await
            .expect("the intake stops on shutdown")
            .unwrap();
    }

    #[test]
    fn the_table_size_and_dead_tuples_are_read_from_what_the_executor_stored() {
        // As the executor stores them (proto::actions): an index and a VACUUM.
        let index = Action {
            action_type: "create_index".into(),
            params_json: r#"{"plan": {"kind": "create_index", "schema": "public", "table": "posts",
                             "index_name": "posts_user_id_idx", "columns": [{"name": "user_id", "descending": false}]},
                             "detection_key": "k", "description": "d"}"#
                .into(),
            result_json: r#"{"index_name": "posts_user_id_idx", "schema": "public", "table_name": "posts",
                             "statement": "CREATE INDEX CONCURRENTLY …", "index_oid": 16400,
                             "size_bytes": 8192, "concurrent": true}"#
                .into(),
            ..Default::default()
        };
        assert_eq!(
            ActionFacts::of(&index),
            ActionFacts {
                table: Some(("public".into(), "posts".into())),
                storage_bytes: 8192,
                dead_before: None,
            }
        );
        let vacuum = Action {
            action_type: "vacuum_table".into(),
            params_json: r#"{"plan": {"kind": "vacuum", "schema": "public", "table": "events"},
                             "detection_key": "k", "description": "d"}"#
                .into(),
            result_json: r#"{"schema": "public", "table_name": "events", "operation": "VACUUM",
                             "statement": "VACUUM (ANALYZE) \"public\".\"events\"",
                             "dead_tuples_before": 6666, "dead_tuples_after": 0, "tuples_reclaimed": 6666,
                             "live_tuples": 10, "duration_ms": 5}"#
                .into(),
            ..Default::default()
        };
        assert_eq!(
            ActionFacts::of(&vacuum),
            ActionFacts {
                table: Some(("public".into(), "events".into())),
                storage_bytes: 0,
                dead_before: Some(6666),
            }
        );
        // A session's termination names no table; nothing stored is nothing known.
        assert_eq!(ActionFacts::of(&Action::default()), ActionFacts::default());
    }

    #[test]
    fn a_vacuum_is_kept_when_dead_tuples_fell_and_found_ineffective_when_not() {
        let settings = VerificationSettings {
            cycles: 3,
            ..Default::default()
        };
        let mut vacuum = tracking(0);
        vacuum.action_type = ActionType::VacuumTable.as_str().into();
        vacuum.dead_before = Some(1000);
        let with_dead = |dead: i64| {
            let mut s = snapshot(200);
            s.postgres = Some(proto::metrics::PostgresDetail {
                tables: vec![proto::metrics::TableStats {
                    schema: "public".into(),
                    name: "posts".into(),
                    dead_tuples: dead,
                    ..Default::default()
                }],
                ..Default::default()
            });
            s
        };
        let (state, reason, _) = decide(&vacuum, &with_dead(10), &settings).unwrap();
        assert_eq!(state, LedgerState::Kept);
        assert!(reason.contains("990 reclaimed"), "{reason}");
        let (state, _, _) = decide(&vacuum, &with_dead(1000), &settings).unwrap();
        assert_eq!(state, LedgerState::NoEffect);
        // Before a cycle after it, nothing is decided.
        vacuum.after.cycles = 0;
        assert_eq!(decide(&vacuum, &with_dead(10), &settings), None);
    }

    #[test]
    fn an_action_verification_does_not_measure_is_recorded_not_judged() {
        let mut terminate = tracking(60);
        terminate.action_type = ActionType::TerminateQuery.as_str().into();
        let (state, reason, verdict) =
            decide(&terminate, &snapshot(200), &VerificationSettings::default()).unwrap();
        assert_eq!(state, LedgerState::NotJudged);
        assert!(
            reason.starts_with("terminate_query is not measured"),
            "{reason}"
        );
        assert!(verdict.is_none());
    }

    #[test]
    fn too_few_calls_wait_until_the_time_limit_and_are_then_not_judged() {
        let settings = VerificationSettings {
            cycles: 3,
            min_calls: 50,
            improvement_threshold: 0.1,
            regression_tolerance: 0.1,
            ..Default::default()
        };
        assert_eq!(
            decide(&tracking(10), &snapshot(200), &settings),
            None,
            "waits for calls"
        );
        let (state, reason, _) = decide(&tracking(10), &snapshot(701), &settings).unwrap();
        assert_eq!(state, LedgerState::NotJudged);
        assert!(
            reason.contains("too few calls") && reason.contains("the change stays"),
            "{reason}"
        );
        let (state, _, verdict) = decide(&tracking(60), &snapshot(200), &settings).unwrap();
        assert_eq!(state, LedgerState::Kept);
        assert!(verdict.unwrap().time_saved_ms_per_day > 0.0);
    }
}
