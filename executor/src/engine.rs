//! The executor's core: a detection becomes an action in knowledge according to the execution
//! mode, and an action moves through its states only by compare-and-set in knowledge, so it
//! never runs twice — not on a redelivered detection, a double approval or a restart.
//!
//! * One action per detection, id `act-<detection id>`: a redelivered detection finds it.
//! * observe → `suggested` (never run); approval (or ENABLE_AUTO_EXECUTION=false) →
//!   `pending_approval`; autonomous → `queued` and run.
//! * Run: `queued|approved → executing` (CAS), the plan under the action's time limit,
//!   `executing → completed|failed` with the result; `actions.status` after every transition,
//!   `actions.completed` (JetStream, with the detection's key) after success.
//! * Approve: `pending_approval → approved`, then run. Reject: `pending_approval → rejected`
//!   (knowledge resolves the detection with a cool-down). Rollback: the plan's undo, then
//!   `completed → rolled_back`.
//! * At start: actions left `executing` by a stopped executor are cleaned up (an index build's
//!   INVALID leftover dropped) and closed; `queued` and `approved` ones run.
//! * At shutdown ([`Engine::drain`]): no action starts; running ones finish within the drain
//!   deadline or are stopped — their statement cancelled, an INVALID index dropped — and
//!   recorded `failed`, "cancelled by shutdown" (docs/decisions/0008).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::clients::Knowledge;
use proto::error::{Error, ErrorKind};
use proto::events::{ActionCompletedEvent, ActionResult, Detection, rfc3339};
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use proto::knowledge::{
    Action, DatabaseFilterRequest, GetActionRequest, GetDetectionRequest, ListActionsRequest,
    RegisterActionRequest, UpdateActionRequest,
};
use proto::status::{ActionStatus, ExecutionMode};

use lifecycle::Shutdown;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::actions::deploy::Deploy;
use crate::actions::{
    ActionOutcome, Context, Outcome, Plan, PlanError, PlanExt, StoredAction, terminate::Policy,
};
use crate::databases::Databases;
pub use crate::error::EngineError;
use crate::error::{ActionError, DatabaseError};
use crate::metrics::{ActionMetrics, Ending};
use proto::actions::{Claim, TerminateOutcome};
use proto::status::ActionType;

/// How long JetStream may take to acknowledge `actions.completed`.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(5);
/// Beyond the action's own limit (which PostgreSQL enforces), time to clean up.
const CLEANUP_GRACE: Duration = Duration::from_secs(30);
/// After the drain deadline, how long stopped actions get to cancel their statements, clean up
/// and record their state.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Idle-transaction terminations of one role in a day before its timeout is proposed.
pub const REPEAT_OFFENCES: usize = 2;

/// A new action to record.
struct NewAction<'a> {
    id: &'a str,
    detection_id: &'a str,
    database_id: &'a str,
    action_type: &'a str,
    detection_key: &'a str,
    plan: Option<&'a Plan>,
    status: ActionStatus,
    message: String,
}

pub struct Settings {
    /// This executor's name: recorded on the actions it starts, so at start it closes only its
    /// own interrupted actions, never another executor's running ones.
    pub executor_id: String,
    pub max_concurrent_actions: usize,
    pub action_timeout: Duration,
    pub auto_execution: bool,
    pub state_dir: PathBuf,
    pub policy: Policy,
}

pub struct Engine {
    knowledge: Knowledge,
    databases: Databases,
    nats: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    permits: Semaphore,
    settings: Settings,
    /// Where deployed helpers run.
    deploy: Deploy,
    /// Actions this process is running (a second run is refused by knowledge anyway).
    running: Mutex<HashSet<String>>,
    /// Every task running an action or a decision, waited for at shutdown.
    tasks: TaskTracker,
    /// Shutdown started: no action starts any more (queued ones run at the next start).
    draining: Shutdown,
    /// The drain deadline passed: running actions cancel their statements and clean up.
    stop: Shutdown,
    /// What `/metrics` shows of the actions run here.
    pub metrics: ActionMetrics,
}

pub fn action_id(detection_id: &str) -> String {
    format!("act-{detection_id}")
}

impl Engine {
    /// An engine that deploys helpers as local processes.
    pub fn new(
        knowledge: KnowledgeServiceClient<Channel>,
        nats: async_nats::Client,
        settings: Settings,
    ) -> Arc<Self> {
        Self::with_deploy(knowledge, nats, settings, Deploy::Process)
    }

    /// An engine that deploys helpers with `deploy`.
    pub fn with_deploy(
        knowledge: KnowledgeServiceClient<Channel>,
        nats: async_nats::Client,
        settings: Settings,
        deploy: Deploy,
    ) -> Arc<Self> {
        let knowledge = Knowledge::new(knowledge);
        Arc::new(Self {
            databases: Databases::new(knowledge.clone()),
            knowledge,
            jetstream: async_nats::jetstream::new(nats.clone()),
            nats,
            permits: Semaphore::new(settings.max_concurrent_actions),
            settings,
            deploy,
            running: Mutex::new(HashSet::new()),
            tasks: TaskTracker::new(),
            draining: Shutdown::new(),
            stop: Shutdown::new(),
            metrics: ActionMetrics::default(),
        })
    }

    /// Handles one detection. An error of kind `InvalidInput` means it never can be handled
    /// (knowledge refuses what it carries); any other, "try again later": nothing durable
    /// happened yet, so the message must not be acknowledged.
    pub async fn on_detection(self: &Arc<Self>, detection: Detection) -> Result<(), Error> {
        if detection.id.is_empty() || detection.database_id.is_empty() {
            warn!(key = %detection.key, "detection without id or database; ignored");
            return Ok(());
        }
        let id = action_id(&detection.id);
        if let Some(existing) = self.lookup(&id).await? {
            // A redelivery: the action exists. Resume it if it never started.
            if matches!(
                existing.parsed_status(),
                Ok(ActionStatus::Queued | ActionStatus::Approved)
            ) {
                self.spawn_run(id);
            }
            return Ok(());
        }
        if !self.still_active(&detection.id).await? {
            info!(detection_id = %detection.id, "detection no longer active; no action");
            return Ok(());
        }
        let mode = self.mode().await?;
        let (plan, problem) = match Plan::from_detection(&detection) {
            Ok(plan) => (Some(plan), None),
            Err(error) => (None, Some(error)),
        };
        let status = match (&problem, mode) {
            (Some(PlanError::NotImplemented(_)), _) => ActionStatus::PendingImplementation,
            (Some(PlanError::Invalid(_)), _) => ActionStatus::Queued, // failed right below
            (None, mode) => self.initial_status(mode),
        };
        let message = match (&plan, status) {
            (_, ActionStatus::PendingImplementation) => problem.as_ref().unwrap().to_string(),
            (Some(plan), ActionStatus::Suggested) => {
                format!("Suggested (observe mode): {}", plan.describe())
            }
            (Some(plan), ActionStatus::PendingApproval) => {
                format!("Waiting for approval: {}", plan.describe())
            }
            (Some(plan), _) => format!("Queued: {}", plan.describe()),
            (None, _) => "Queued".into(),
        };
        self.register(NewAction {
            id: &id,
            detection_id: &detection.id,
            database_id: &detection.database_id,
            action_type: &detection.action_type,
            detection_key: &detection.key,
            plan: plan.as_ref(),
            status,
            message,
        })
        .await?;
        if let Some(PlanError::Invalid(reason)) = &problem {
            let _ = self
                .transition(&id, ActionStatus::Failed, &[ActionStatus::Queued], |u| {
                    u.message = "Cannot act on this detection".into();
                    u.error = reason.clone();
                })
                .await;
        } else {
            self.announce(&id).await;
        }
        if status == ActionStatus::Queued && problem.is_none() {
            self.spawn_run(id);
        }
        Ok(())
    }

    /// The status a new action starts in under `mode`.
    fn initial_status(&self, mode: ExecutionMode) -> ActionStatus {
        match mode {
            ExecutionMode::Observe => ActionStatus::Suggested,
            ExecutionMode::Approval => ActionStatus::PendingApproval,
            ExecutionMode::Autonomous if !self.settings.auto_execution => {
                ActionStatus::PendingApproval
            }
            ExecutionMode::Autonomous => ActionStatus::Queued,
        }
    }

    /// Records a new action with its plan (registering an id that exists is a no-op).
    async fn register(&self, new: NewAction<'_>) -> Result<(), Error> {
        let request = RegisterActionRequest {
            id: new.id.to_owned(),
            detection_id: new.detection_id.to_owned(),
            action_type: new.action_type.to_owned(),
            database_id: new.database_id.to_owned(),
            created_at: 0,
            status: new.status.to_string(),
            message: new.message,
            params_json: new
                .plan
                .map(|plan| {
                    StoredAction {
                        plan: plan.clone(),
                        detection_key: new.detection_key.to_owned(),
                        description: plan.describe(),
                    }
                    .to_params_json()
                })
                .unwrap_or_default(),
            can_rollback: new.plan.is_some_and(Plan::can_rollback),
        };
        self.knowledge
            .call("RegisterAction", |mut k| async move {
                k.register_action(request).await
            })
            .await?;
        Ok(())
    }

    pub async fn approve(self: &Arc<Self>, id: &str, by: &str) -> Result<Action, EngineError> {
        self.require(id).await?;
        self.transition(
            id,
            ActionStatus::Approved,
            &[ActionStatus::PendingApproval],
            |u| u.message = decided("Approved", by, ""),
        )
        .await?;
        self.spawn_run(id.to_owned());
        self.require(id).await
    }

    pub async fn reject(&self, id: &str, by: &str, reason: &str) -> Result<Action, EngineError> {
        self.require(id).await?;
        self.transition(
            id,
            ActionStatus::Rejected,
            &[ActionStatus::PendingApproval],
            |u| u.message = decided("Rejected", by, reason),
        )
        .await?;
        self.require(id).await
    }

    pub async fn rollback(&self, id: &str, by: &str, reason: &str) -> Result<Action, EngineError> {
        let action = self.require(id).await?;
        if action.parsed_status() != Ok(ActionStatus::Completed) {
            return Err(EngineError::Conflict(format!(
                "action {id} is {}; only a completed action can be rolled back",
                action.status
            )));
        }
        if !action.can_rollback {
            return Err(EngineError::Conflict(format!(
                "action {id} ({}) cannot be rolled back",
                action.action_type
            )));
        }
        let stored = stored(&action)
            .map_err(|e| EngineError::Conflict(format!("the stored action cannot be read: {e}")))?;
        let mut recorded =
            ActionOutcome::from_result_json(stored.plan.action_type(), &action.result_json)
                .map_err(|e| {
                    EngineError::Conflict(format!("the action's result cannot be read: {e}"))
                })?;
        let failed = |source| EngineError::Action {
            doing: "rollback failed",
            source,
        };
        let context = self
            .context(&action, &stored.plan)
            .await
            .map_err(|e| failed(e.into()))?;
        let undone = stored
            .plan
            .rollback(&context, &recorded.outcome)
            .await
            .map_err(failed)?;
        recorded.rollback = Some(undone);
        self.transition(
            id,
            ActionStatus::RolledBack,
            &[ActionStatus::Completed],
            |u| {
                u.message = decided("Rolled back", by, reason);
                u.result_json = recorded.to_result_json();
            },
        )
        .await?;
        self.require(id).await
    }

    /// An operator's explicit request (`POST /api/deploy-redis`): runs whatever the execution
    /// mode, as the original did; returns the new action's id.
    pub async fn deploy_redis(
        self: &Arc<Self>,
        database_id: &str,
        max_memory: &str,
        eviction_policy: &str,
    ) -> Result<String, EngineError> {
        if !proto::sql::valid_identifier(database_id) || database_id.contains(char::is_whitespace) {
            return Err(EngineError::Invalid(format!(
                "database_id {database_id:?} is required (1-63 characters, no spaces)"
            )));
        }
        let plan = Plan::DeployRedis(
            proto::actions::DeployRedis::new(database_id, max_memory, eviction_policy)
                .map_err(|e| EngineError::Invalid(e.to_string()))?,
        );
        let id = format!(
            "act-redis-{}",
            crate::actions::processes::secret().map_err(|source| EngineError::Action {
                doing: "no id for the action",
                source,
            })?
        );
        self.register(NewAction {
            id: &id,
            detection_id: "",
            database_id,
            action_type: plan.action_type().as_str(),
            detection_key: "",
            plan: Some(&plan),
            status: ActionStatus::Queued,
            message: format!("Requested: {}", plan.describe()),
        })
        .await?;
        self.announce(&id).await;
        self.spawn_run(id.clone());
        Ok(id)
    }

    pub async fn get(&self, id: &str) -> Result<Option<Action>, EngineError> {
        Ok(self.lookup(id).await?)
    }

    /// The action `id`, telling a refused id from an unreachable knowledge.
    async fn lookup(&self, id: &str) -> Result<Option<Action>, Error> {
        let request = GetActionRequest {
            action_id: id.to_owned(),
        };
        let reply = self
            .knowledge
            .call(
                "GetAction",
                |mut k| async move { k.get_action(request).await },
            )
            .await?;
        Ok(reply.action.filter(|_| reply.found))
    }

    async fn require(&self, id: &str) -> Result<Action, EngineError> {
        self.get(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))
    }

    /// Closes what a stopped executor left running and starts what was waiting.
    pub async fn recover(self: &Arc<Self>) -> Result<(), Error> {
        let pending = self
            .knowledge
            .call("GetPendingActions", |mut k| async move {
                k.get_pending_actions(DatabaseFilterRequest {
                    database_id: String::new(),
                })
                .await
            })
            .await?
            .actions;
        for action in pending {
            match action.parsed_status() {
                Ok(ActionStatus::Queued | ActionStatus::Approved) => {
                    self.spawn_run(action.id.clone())
                }
                Ok(ActionStatus::Executing) if self.started_here(&action) => {
                    self.close_interrupted(&action).await
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether this executor (by its id) started `action`; actions from before executors had
    /// ids count as ours.
    fn started_here(&self, action: &Action) -> bool {
        match Claim::from_result_json(&action.result_json) {
            Some(claim) => claim.executor == self.settings.executor_id,
            None => true,
        }
    }

    async fn close_interrupted(&self, action: &Action) {
        let outcome = match stored(action) {
            Ok(stored) => match self.context(action, &stored.plan).await {
                Ok(context) => stored.plan.recover(&context).await,
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(ActionError::Invalid(format!(
                "the stored action cannot be read: {e}"
            ))),
        };
        let result = match outcome {
            Ok(Some(result)) => {
                let _ = self
                    .transition(
                        &action.id,
                        ActionStatus::Completed,
                        &[ActionStatus::Executing],
                        |u| {
                            u.message = "Completed (confirmed after an executor restart)".into();
                            u.result_json = result.to_value().to_string();
                        },
                    )
                    .await;
                return;
            }
            Ok(None) => {
                "the executor stopped during the action; its leftovers were cleaned up".to_owned()
            }
            Err(e) => format!("the executor stopped during the action; cleanup failed: {e}"),
        };
        let _ = self
            .transition(
                &action.id,
                ActionStatus::Failed,
                &[ActionStatus::Executing],
                |u| {
                    u.message = "Interrupted".into();
                    u.error = result;
                },
            )
            .await;
    }

    /// Runs `task` as one the executor waits for at shutdown (a decision carried out).
    pub fn track<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    fn spawn_run(self: &Arc<Self>, id: String) {
        if self.draining.is_triggered() {
            info!(action_id = %id, "shutting down; the action runs at the next start");
            return;
        }
        let engine = self.clone();
        self.tasks.spawn(async move { engine.run(id).await });
    }

    /// Shutdown: no new action starts; running ones get `deadline` to finish, then are stopped
    /// (a statement cancelled, an INVALID index dropped) and recorded `failed` with the reason
    /// "cancelled by shutdown". Returns once every action task has ended, or [`STOP_GRACE`] after
    /// the deadline (what is still running then is closed by the next start's recovery).
    pub async fn drain(&self, deadline: Duration) {
        self.draining.trigger();
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_ok()
        {
            return;
        }
        let running: Vec<String> = self.running.lock().await.iter().cloned().collect();
        warn!(
            ?deadline,
            ?running,
            "drain deadline passed; stopping the running actions"
        );
        self.stop.trigger();
        if tokio::time::timeout(STOP_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            warn!("actions did not stop in time; the next start closes them");
        }
    }

    async fn run(self: Arc<Self>, id: String) {
        if !self.running.lock().await.insert(id.clone()) {
            return;
        }
        let _permit = tokio::select! {
            permit = self.permits.acquire() => permit,
            () = self.draining.wait() => {
                self.running.lock().await.remove(&id);
                return;
            }
        };
        let outcome = if self.draining.is_triggered() {
            // Shutdown began while it waited for a permit: it stays queued for the next start.
            Ok(None)
        } else {
            self.run_once(&id).await
        };
        self.running.lock().await.remove(&id);
        match outcome {
            Ok(Some(next)) => self.spawn_run(next),
            Ok(None) => {}
            Err(error) => warn!(action_id = %id, %error, "action not run"),
        }
    }

    /// Runs one action; `Ok(Some(id))` names a follow-up action queued to run.
    async fn run_once(&self, id: &str) -> Result<Option<String>, EngineError> {
        let action = self.require(id).await?;
        let stored = match stored(&action) {
            Ok(stored) => stored,
            Err(error) => {
                let error = format!("the stored action cannot be read: {error}");
                return self
                    .transition(
                        id,
                        ActionStatus::Failed,
                        &[ActionStatus::Queued, ActionStatus::Approved],
                        |u| {
                            u.message = "Cannot run".into();
                            u.error = error.clone();
                        },
                    )
                    .await
                    .map(|()| None);
            }
        };
        self.transition(
            id,
            ActionStatus::Executing,
            &[ActionStatus::Queued, ActionStatus::Approved],
            |u| {
                u.message = format!("Executing: {}", stored.description);
                u.result_json = serde_json::to_string(&Claim {
                    executor: self.settings.executor_id.clone(),
                })
                .unwrap_or_default();
            },
        )
        .await?;
        info!(action_id = %id, action = %stored.description, "executing");
        let started = std::time::Instant::now();
        let outcome = match self.context(&action, &stored.plan).await {
            Ok(context) => {
                let limit = self.settings.action_timeout + CLEANUP_GRACE;
                match tokio::time::timeout(limit, stored.plan.execute(&context)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(ActionError::TimedOut(
                        self.settings.action_timeout.as_secs(),
                    )),
                }
            }
            Err(error) => Err(error.into()),
        };
        let ending = match &outcome {
            Ok(_) => Ending::Completed,
            Err(ActionError::Cancelled(_)) => Ending::Cancelled,
            Err(_) => Ending::Failed,
        };
        self.metrics
            .ended(&action.action_type, ending, started.elapsed().as_secs_f64());
        match outcome {
            Ok(result) => {
                self.transition(
                    id,
                    ActionStatus::Completed,
                    &[ActionStatus::Executing],
                    |u| {
                        u.message = format!("Completed: {}", stored.description);
                        u.result_json = result.to_value().to_string();
                    },
                )
                .await?;
                info!(action_id = %id, "completed");
                self.publish_completed(&action, &stored).await;
                if let Plan::Terminate(terminate) = &stored.plan
                    && !terminate.graceful
                    && matches!(&result, Outcome::Terminated(t) if t.outcome == TerminateOutcome::Terminated)
                    && !terminate.username.is_empty()
                {
                    return Ok(self
                        .propose_role_timeout(&action, &terminate.username)
                        .await);
                }
                Ok(None)
            }
            Err(error) => {
                warn!(action_id = %id, %error, "failed");
                let message = match error {
                    ActionError::Cancelled(_) => "Cancelled by shutdown",
                    _ => "Failed",
                };
                self.transition(id, ActionStatus::Failed, &[ActionStatus::Executing], |u| {
                    u.message = format!("{message}: {}", stored.description);
                    u.error = error.to_string();
                })
                .await
                .map(|()| None)
            }
        }
    }

    /// After the same role's idle transaction was terminated [`REPEAT_OFFENCES`] times in a
    /// day in one database, proposes (once per role and database) that PostgreSQL end such
    /// transactions itself: the role's `idle_in_transaction_session_timeout` set to the
    /// analyser's idle threshold.
    /// Returns the proposal's id when it is queued to run.
    async fn propose_role_timeout(&self, terminated: &Action, role: &str) -> Option<String> {
        let request = ListActionsRequest {
            database_id: terminated.database_id.clone(),
            status: ActionStatus::Completed.to_string(),
            limit: 500,
        };
        let Ok(history) = self
            .knowledge
            .call("ListActions", |mut k| async move {
                k.list_actions(request).await
            })
            .await
        else {
            return None;
        };
        let day_ago = unix_now() - 86_400;
        let offences = history
            .actions
            .iter()
            .filter(|a| {
                a.parsed_action_type() == Ok(ActionType::TerminateQuery)
                    && a.completed_at >= day_ago
            })
            .filter(|a| {
                let terminated_idle = stored(a).is_ok_and(
                    |s| matches!(&s.plan, Plan::Terminate(t) if !t.graceful && t.username == role),
                );
                let terminated = ActionOutcome::from_result_json(
                    ActionType::TerminateQuery,
                    &a.result_json,
                )
                .is_ok_and(|r| {
                    matches!(r.outcome, Outcome::Terminated(t) if t.outcome == TerminateOutcome::Terminated)
                });
                terminated_idle && terminated
            })
            .count();
        if offences < REPEAT_OFFENCES {
            return None;
        }
        let id = format!(
            "act-timeout-{:016x}",
            proto::sql::fnv1a(&format!("{}\0{role}", terminated.database_id))
        );
        if matches!(self.get(&id).await, Ok(Some(_)) | Err(_)) {
            return None;
        }
        let (Ok(mode), Ok(idle_seconds)) = (self.mode().await, self.idle_threshold().await) else {
            return None;
        };
        let reason = format!(
            "role {role}'s transactions were left idle and terminated {offences} times in a day"
        );
        let Ok(plan) = proto::actions::RoleTimeout::new(
            role,
            "idle_in_transaction_session_timeout",
            (idle_seconds * 1000.0) as i64,
            reason.clone(),
        ) else {
            return None;
        };
        let plan = Plan::RoleTimeout(plan);
        let status = self.initial_status(mode);
        let registered = self
            .register(NewAction {
                id: &id,
                detection_id: "",
                database_id: &terminated.database_id,
                action_type: plan.action_type().as_str(),
                detection_key: "",
                plan: Some(&plan),
                status,
                message: format!("Proposed: {} ({reason})", plan.describe()),
            })
            .await;
        match registered {
            Ok(()) => {
                info!(action_id = %id, role, offences, "role timeout proposed");
                self.announce(&id).await;
                (status == ActionStatus::Queued).then_some(id)
            }
            Err(_) => None,
        }
    }

    /// The analyser's idle-transaction threshold in seconds (knowledge's configuration).
    async fn idle_threshold(&self) -> Result<f64, Error> {
        let config = self.knowledge.system_config().await?;
        Ok(config
            .thresholds
            .map(|t| t.idle_transaction_seconds)
            .filter(|s| *s > 0.0)
            .unwrap_or(300.0))
    }

    async fn context(&self, action: &Action, plan: &Plan) -> Result<Context, DatabaseError> {
        let database = if plan.needs_database() {
            Some(self.databases.get(&action.database_id).await?)
        } else {
            None
        };
        Ok(Context {
            database,
            timeout: self.settings.action_timeout,
            state_dir: self.settings.state_dir.clone(),
            deploy: self.deploy.clone(),
            action_id: action.id.clone(),
            policy: self.settings.policy,
            stop: self.stop.clone(),
        })
    }

    /// A compare-and-set status change in knowledge, then `actions.status`.
    async fn transition(
        &self,
        id: &str,
        to: ActionStatus,
        from: &[ActionStatus],
        fill: impl FnOnce(&mut UpdateActionRequest),
    ) -> Result<(), EngineError> {
        let mut update = UpdateActionRequest {
            action_id: id.to_owned(),
            status: to.to_string(),
            expected_status: from.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        fill(&mut update);
        // Knowledge refuses a transition the action's status does not allow with
        // FAILED_PRECONDITION: it stays a conflict through every door.
        let reply = self
            .knowledge
            .call("UpdateActionStatus", |mut k| async move {
                k.update_action_status(update).await
            })
            .await?;
        if !reply.success {
            return Err(EngineError::NotFound(reply.message));
        }
        self.announce(id).await;
        Ok(())
    }

    /// `actions.status` with the action as knowledge now has it (best effort: knowledge holds
    /// the state; this is for live views).
    async fn announce(&self, id: &str) {
        let Ok(Some(action)) = self.get(id).await else {
            return;
        };
        let Ok(status) = action.status.parse::<ActionStatus>() else {
            return;
        };
        let stamp = |s: i64| (s > 0).then(|| rfc3339(s));
        let event = ActionResult {
            action_id: action.id.clone(),
            detection_id: action.detection_id.clone(),
            action_type: action.action_type.clone(),
            database_id: action.database_id.clone(),
            status,
            message: action.message.clone(),
            created_at: rfc3339(action.created_at),
            started: stamp(action.started_at),
            completed: stamp(action.completed_at),
            execution_time_ms: if action.completed_at > 0 && action.started_at > 0 {
                (action.completed_at - action.started_at) * 1000
            } else {
                0
            },
            changes: serde_json::from_str(&action.result_json).ok(),
            error: (!action.error.is_empty()).then(|| action.error.clone()),
            can_rollback: action.can_rollback,
            rolledback: status == ActionStatus::RolledBack,
            rollback_error: None,
        };
        if let Ok(payload) = serde_json::to_vec(&event) {
            let _ = self
                .nats
                .publish(proto::subjects::ACTIONS_STATUS, payload.into())
                .await;
        }
    }

    async fn publish_completed(&self, action: &Action, stored: &StoredAction) {
        let event = ActionCompletedEvent {
            action_id: action.id.clone(),
            detection_id: action.detection_id.clone(),
            detection_key: stored.detection_key.clone(),
            action_type: action.action_type.clone(),
            database_id: action.database_id.clone(),
            status: ActionStatus::Completed.to_string(),
            solution: stored.description.clone(),
            message: format!("Completed: {}", stored.description),
            timestamp: unix_now(),
        };
        let Ok(payload) = serde_json::to_vec(&event) else {
            return;
        };
        let published = async {
            match self
                .jetstream
                .publish(proto::subjects::ACTIONS_COMPLETED, payload.into())
                .await
            {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        match tokio::time::timeout(PUBLISH_DEADLINE, published).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                warn!(action_id = %action.id, %error, "actions.completed not published")
            }
            Err(_) => warn!(action_id = %action.id, "actions.completed not acknowledged in time"),
        }
    }

    async fn mode(&self) -> Result<ExecutionMode, Error> {
        let config = self.knowledge.system_config().await?;
        if config.execution_mode.is_empty() {
            return Ok(ExecutionMode::Autonomous);
        }
        // Knowledge's configuration names a mode we do not know: ours to fix, not the caller's.
        config
            .execution_mode
            .parse()
            .map_err(|e: proto::status::UnknownWord| {
                Error::with_source(ErrorKind::Internal, e.to_string(), e)
            })
    }

    async fn still_active(&self, detection_id: &str) -> Result<bool, Error> {
        let request = GetDetectionRequest {
            detection_id: detection_id.to_owned(),
        };
        let reply = self
            .knowledge
            .call("GetDetection", |mut k| async move {
                k.get_detection(request).await
            })
            .await?;
        Ok(reply.found
            && reply
                .detection
                .is_some_and(|d| d.state == proto::status::DetectionState::Active.as_str()))
    }
}

fn stored(action: &Action) -> Result<StoredAction, serde_json::Error> {
    StoredAction::from_params_json(&action.params_json)
}

/// "Rejected by dashboard: not now" — who decided, and why when given.
fn decided(what: &str, by: &str, reason: &str) -> String {
    let by = if by.is_empty() { "an operator" } else { by };
    if reason.is_empty() {
        format!("{what} by {by}")
    } else {
        format!("{what} by {by}: {reason}")
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
