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
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use lifecycle::Shutdown;
use proto::events::{ActionCompletedEvent, RollbackRequest};
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use proto::knowledge::{
    Action, GetActionRequest, GetDetectionRequest, LedgerEntry, ListLedgerRequest,
    ResolveDetectionRequest, VerificationSettings,
};
use proto::metrics::MetricSnapshot;
use proto::status::Resolution;
use proto::subjects;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tonic::transport::Channel;
use tracing::{info, warn};

use self::judge::{Figures, Load, Rules, Verdict};
use crate::advisor::statement;

const RPC_DEADLINE: Duration = Duration::from_secs(5);
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

/// One cycle of a database, kept for baselines.
#[derive(Debug, Clone)]
struct Cycle {
    end: i64,
    snapshot: Arc<MetricSnapshot>,
}

pub struct Verifier {
    knowledge: KnowledgeServiceClient<Channel>,
    nats: async_nats::Client,
    tracked: Mutex<Option<HashMap<String, Tracking>>>,
    recent: Mutex<HashMap<String, VecDeque<Cycle>>>,
}

impl Verifier {
    pub fn new(knowledge: KnowledgeServiceClient<Channel>, nats: async_nats::Client) -> Self {
        Self {
            knowledge,
            nats,
            tracked: Mutex::new(None),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Consumes `actions.completed` until shutdown, reconnecting whenever NATS is back.
    pub async fn consume(self: Arc<Self>, jetstream: jetstream::Context, shutdown: Shutdown) {
        let mut wait = Duration::from_millis(500);
        loop {
            let attempt = async {
                let stream = jetstream
                    .get_or_create_stream(jetstream::stream::Config {
                        name: subjects::ACTIONS_STREAM.into(),
                        subjects: vec![subjects::ACTIONS_COMPLETED.into()],
                        max_age: subjects::STREAM_MAX_AGE,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                let consumer = stream
                    .get_or_create_consumer(
                        CONSUMER,
                        pull::Config {
                            durable_name: Some(CONSUMER.into()),
                            ack_policy: jetstream::consumer::AckPolicy::Explicit,
                            ack_wait: Duration::from_secs(60),
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
                while let Some(message) = messages.next().await {
                    let message = message.map_err(|e| e.to_string())?;
                    let event: ActionCompletedEvent = match serde_json::from_slice(&message.payload)
                    {
                        Ok(event) => event,
                        Err(error) => {
                            warn!(%error, "malformed actions.completed dropped");
                            let _ = message.ack_with(AckKind::Term).await;
                            continue;
                        }
                    };
                    match self.start(&event).await {
                        Ok(()) => {
                            let _ = message.double_ack().await;
                        }
                        Err(error) => {
                            warn!(action_id = %event.action_id, %error, "verification not started yet");
                            let _ = message
                                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                                .await;
                        }
                    }
                }
                Err::<(), String>("the actions.completed subscription ended".into())
            };
            tokio::select! {
                () = shutdown.wait() => return,
                result = attempt => if let Err(error) = result {
                    warn!(%error, "verification intake interrupted; retrying");
                }
            }
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    /// Starts following a completed action (idempotent: a ledger entry that exists is kept).
    pub async fn start(&self, event: &ActionCompletedEvent) -> Result<(), String> {
        let mut tracked = self.tracked().await?;
        if tracked.contains_key(&event.action_id) {
            return Ok(());
        }
        let mut knowledge = self.knowledge.clone();
        if let Ok(Ok(existing)) = tokio::time::timeout(
            RPC_DEADLINE,
            knowledge.get_ledger_entry(proto::knowledge::GetLedgerEntryRequest {
                action_id: event.action_id.clone(),
            }),
        )
        .await
            && existing.get_ref().found
        {
            return Ok(());
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
        let result: Value = serde_json::from_str(&action.result_json).unwrap_or(Value::Null);
        let params: Value = serde_json::from_str(&action.params_json).unwrap_or(Value::Null);
        let plan = &params["plan"];
        let table = match (plan["schema"].as_str(), plan["table"].as_str()) {
            (Some(schema), Some(table)) => Some((schema.to_owned(), table.to_owned())),
            _ => None,
        };
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
            table,
            served,
            can_rollback: action.can_rollback,
            started_at,
            completed_at,
            deadline: completed_at + settings.timeout_seconds.max(60),
            before: Figures::default(),
            after: Figures::default(),
            storage_bytes: result["size_bytes"].as_i64().unwrap_or(0),
            dead_before: result["dead_tuples_before"].as_i64(),
        };
        self.baseline(&mut tracking, &evidence).await;
        let entry = self.entry(
            &tracking,
            "verifying",
            "measuring the cycles after the action",
            None,
        );
        self.save(entry).await?;
        info!(action_id = %tracking.action_id, action_type = %tracking.action_type, "verifying");
        tracked.insert(tracking.action_id.clone(), tracking);
        Ok(())
    }

    /// Takes one snapshot: remembers it for baselines and advances every verification of its
    /// database, deciding those that have seen enough.
    pub async fn observe(&self, snapshot: &MetricSnapshot) {
        let seconds = snapshot.time_delta_seconds.unwrap_or(0.0);
        if seconds > 0.0 {
            let mut recent = self.recent.lock().await;
            let cycles = recent.entry(snapshot.database_id.clone()).or_default();
            cycles.push_back(Cycle {
                end: snapshot.timestamp,
                snapshot: Arc::new(snapshot.clone()),
            });
            while cycles.len() > RECENT {
                cycles.pop_front();
            }
        }
        let Ok(mut tracked) = self.tracked().await else {
            return;
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
        let Ok(settings) = self.settings().await else {
            return;
        };
        for id in ids {
            let Some(tracking) = tracked.get_mut(&id) else {
                continue;
            };
            // Only cycles that began after the action completed.
            let began = snapshot.timestamp - seconds.ceil() as i64;
            if seconds > 0.0 && began >= tracking.completed_at {
                let (served, table) = (tracking.served.clone(), tracking.table.clone());
                accumulate(&mut tracking.after, &served, table.as_ref(), snapshot);
            }
            match decide(tracking, snapshot, &settings) {
                Some((state, reason, verdict)) => {
                    let entry = self.entry(tracking, state, &reason, verdict.as_ref());
                    if self.save(entry).await.is_ok() {
                        self.act(tracking, state, &reason, &settings).await;
                        info!(action_id = %id, state, %reason, "verified");
                        tracked.remove(&id);
                    }
                }
                None => {
                    let entry = self.entry(
                        tracking,
                        "verifying",
                        "measuring the cycles after the action",
                        None,
                    );
                    let _ = self.save(entry).await;
                }
            }
        }
    }

    /// Carries a decision out: resolves the detection, or asks the executor to roll back.
    async fn act(
        &self,
        tracking: &Tracking,
        state: &str,
        reason: &str,
        settings: &VerificationSettings,
    ) {
        let rollback = match state {
            "rolled_back" => true,
            "no_effect" => settings.rollback_on_no_effect && tracking.can_rollback,
            _ => false,
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
            if let Ok(payload) = serde_json::to_vec(&request) {
                let _ = self
                    .nats
                    .publish(subjects::ROLLBACK_REQUESTED, payload.into())
                    .await;
                let _ = self.nats.flush().await;
            }
            return;
        }
        if tracking.detection_id.is_empty() {
            return;
        }
        let resolution = match state {
            "kept" => Resolution::Verified,
            "no_effect" => Resolution::NoEffect,
            _ => Resolution::Fixed,
        };
        let mut knowledge = self.knowledge.clone();
        let _ = tokio::time::timeout(
            RPC_DEADLINE,
            knowledge.mark_detection_resolved(ResolveDetectionRequest {
                detection_id: tracking.detection_id.clone(),
                solution: format!("{state}: {reason}"),
                reason: resolution.to_string(),
                cooldown_seconds: 0,
            }),
        )
        .await;
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
            accumulate(
                &mut tracking.before,
                &served,
                table.as_ref(),
                &cycle.snapshot,
            );
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
        state: &str,
        reason: &str,
        verdict: Option<&Verdict>,
    ) -> LedgerEntry {
        LedgerEntry {
            action_id: t.action_id.clone(),
            database_id: t.database_id.clone(),
            detection_id: t.detection_id.clone(),
            detection_key: t.detection_key.clone(),
            action_type: t.action_type.clone(),
            state: state.into(),
            reason: reason.into(),
            started_at: t.completed_at,
            decided_at: if state == "verifying" { 0 } else { now() },
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

    async fn save(&self, entry: LedgerEntry) -> Result<(), String> {
        let mut knowledge = self.knowledge.clone();
        tokio::time::timeout(RPC_DEADLINE, knowledge.save_ledger_entry(entry))
            .await
            .map_err(|_| "knowledge did not answer SaveLedgerEntry".to_owned())?
            .map_err(|s| format!("SaveLedgerEntry: {}", s.message()))?;
        Ok(())
    }

    /// The verifications in progress, loaded from knowledge on first use (after a restart).
    async fn tracked(
        &self,
    ) -> Result<tokio::sync::MappedMutexGuard<'_, HashMap<String, Tracking>>, String> {
        let mut guard = self.tracked.lock().await;
        if guard.is_none() {
            let mut knowledge = self.knowledge.clone();
            let entries = tokio::time::timeout(
                RPC_DEADLINE,
                knowledge.list_ledger(ListLedgerRequest {
                    database_id: String::new(),
                    state: "verifying".into(),
                    limit: 1000,
                }),
            )
            .await
            .map_err(|_| "knowledge did not answer ListLedger".to_owned())?
            .map_err(|s| format!("ListLedger: {}", s.message()))?
            .into_inner()
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
    async fn action(&self, id: &str) -> Result<Option<Action>, String> {
        let mut knowledge = self.knowledge.clone();
        let reply = tokio::time::timeout(
            RPC_DEADLINE,
            knowledge.get_action(GetActionRequest {
                action_id: id.into(),
            }),
        )
        .await
        .map_err(|_| "knowledge did not answer GetAction".to_owned())?;
        match reply {
            Ok(reply) => {
                let reply = reply.into_inner();
                Ok(reply.action.filter(|_| reply.found))
            }
            Err(status) if status.code() == tonic::Code::InvalidArgument => Ok(None),
            Err(status) => Err(status.message().to_owned()),
        }
    }

    async fn evidence(&self, detection_id: &str) -> Value {
        if detection_id.is_empty() {
            return Value::Null;
        }
        let mut knowledge = self.knowledge.clone();
        match tokio::time::timeout(
            RPC_DEADLINE,
            knowledge.get_detection(GetDetectionRequest {
                detection_id: detection_id.into(),
            }),
        )
        .await
        {
            Ok(Ok(reply)) => reply
                .into_inner()
                .detection
                .and_then(|d| serde_json::from_str(&d.evidence_json).ok())
                .unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    async fn settings(&self) -> Result<VerificationSettings, String> {
        let config = proto::clients::system_config(&self.knowledge, RPC_DEADLINE)
            .await
            .map_err(|e| e.to_string())?;
        Ok(config.verification.unwrap_or_default())
    }
}

/// The decision once the cycles and calls are there; `None` to keep measuring.
fn decide(
    tracking: &Tracking,
    snapshot: &MetricSnapshot,
    settings: &VerificationSettings,
) -> Option<(&'static str, String, Option<Verdict>)> {
    let rules = Rules {
        min_calls: settings.min_calls,
        improvement_threshold: settings.improvement_threshold,
        regression_tolerance: settings.regression_tolerance,
    };
    let enough_cycles = tracking.after.cycles >= settings.cycles.max(1) as u32;
    let expired = snapshot.timestamp >= tracking.deadline;
    let verdict = match tracking.action_type.as_str() {
        "create_index" => {
            judge::judge_index(&tracking.served, &tracking.before, &tracking.after, rules)
        }
        "tune_config_high_latency" => judge::judge_config(&tracking.before, &tracking.after, rules),
        "vacuum_table" => {
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
                "kept"
            } else {
                "no_effect"
            };
            return Some((state, reason, None));
        }
        other => {
            if tracking.after.cycles == 0 {
                return None;
            }
            return Some((
                "not_judged",
                format!("{other} is not measured by verification; its result records what it did"),
                None,
            ));
        }
    };
    match verdict {
        Some(verdict) if enough_cycles => {
            let state = verdict.decision.state();
            let reason = verdict.reason.clone();
            Some((state, reason, Some(verdict)))
        }
        _ if expired => Some((
            "not_judged",
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
    snapshot: &MetricSnapshot,
) {
    let Some(detail) = snapshot.postgres.as_ref() else {
        return;
    };
    for s in &detail.top_statements {
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
                    query: s.query.clone(),
                    calls: s.calls,
                    total_ms: s.total_time_ms,
                    writes,
                },
            );
        }
    }
    figures.seconds += snapshot.time_delta_seconds.unwrap_or(0.0);
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
        assert_eq!(state, "not_judged");
        assert!(
            reason.contains("too few calls") && reason.contains("the change stays"),
            "{reason}"
        );
        let (state, _, verdict) = decide(&tracking(60), &snapshot(200), &settings).unwrap();
        assert_eq!(state, "kept");
        assert!(verdict.unwrap().time_saved_ms_per_day > 0.0);
    }
}
