//! NATS subject names, exactly as the original used them.

/// Collector -> gateway: one `NormalisedMetrics` per database per cycle.
pub const METRICS: &str = "metrics";
/// Analyser -> executor, gateway: a new (non-duplicate) `Detection`.
pub const DETECTIONS: &str = "detections";
/// Executor -> gateway: every `ActionResult` status transition.
pub const ACTIONS_STATUS: &str = "actions.status";
/// Executor -> analyser: an action finished with status `completed` (`ActionCompletedEvent`).
pub const ACTIONS_COMPLETED: &str = "actions.completed";
/// Analyser -> executor: verification found a regression (`RollbackRequest`).
pub const ROLLBACK_REQUESTED: &str = "rollback.requested";
/// Gateway -> executor: the operator approved a pending action (`ActionDecision`).
pub const ACTIONS_APPROVE: &str = "actions.approve";
/// Gateway -> executor: the operator rejected a pending action (`ActionDecision`).
pub const ACTIONS_REJECT: &str = "actions.reject";
/// Gateway -> executor: the operator asked to undo a completed action (`ActionDecision`).
/// The original published here with no subscriber; the executor subscribes this time.
pub const ACTIONS_ROLLBACK: &str = "actions.rollback";

/// Every subject, for stream definitions and tests.
pub const ALL: [&str; 8] = [
    METRICS,
    DETECTIONS,
    ACTIONS_STATUS,
    ACTIONS_COMPLETED,
    ROLLBACK_REQUESTED,
    ACTIONS_APPROVE,
    ACTIONS_REJECT,
    ACTIONS_ROLLBACK,
];

/// The JetStream stream that keeps `detections` until the executor has acted on them.
pub const DETECTIONS_STREAM: &str = "DETECTIONS";
/// The JetStream stream that keeps `actions.completed` for verification.
pub const ACTIONS_STREAM: &str = "ACTIONS";
/// How long a stream keeps a message nobody acknowledged.
pub const STREAM_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// The executor's durable consumer on `DETECTIONS`.
pub const EXECUTOR_CONSUMER: &str = "executor";
