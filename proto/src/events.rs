//! JSON payloads carried on NATS, with the original's field names (spec section 3), so a consumer
//! written against the original reads ours unchanged.
//!
//! Unknown fields are ignored on input; optional fields are omitted on output when empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::status::ActionStatus;

/// Subject `metrics`: one database's snapshot, normalised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NormalisedMetrics {
    pub database_id: String,
    pub database_type: String,
    /// Unix seconds.
    pub timestamp: i64,
    pub health_score: f64,
    pub connection_health: f64,
    pub query_health: f64,
    pub storage_health: f64,
    pub cache_health: f64,
    #[serde(default)]
    pub available_metrics: Option<Vec<String>>,
    #[serde(default)]
    pub measurements: Measurements,
    #[serde(default)]
    pub metric_deltas: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_delta_seconds: Option<f64>,
    #[serde(default)]
    pub extended_metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The named measurements of a snapshot; each is absent when it could not be measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_connections: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_connections: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_connections: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_query_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_query_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_query_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_query_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_query_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential_scans: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_storage_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_storage_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_storage_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hit_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hit_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_miss_count: Option<i64>,
}

/// Subject `detections`: a problem found by a detector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Unique per detection (the original's were not; spec 4.1).
    pub id: String,
    /// `<database_id>:<detector_name>:<identifier>`; deduplication is by key.
    pub key: String,
    pub detector_name: String,
    /// `query` | `connection` | `cache` | `storage`.
    pub category: String,
    /// `info` | `warning` | `critical`.
    pub severity: String,
    pub database_id: String,
    /// Unix seconds of the snapshot that showed the problem.
    pub timestamp: i64,
    pub title: String,
    pub description: String,
    #[serde(default)]
    pub evidence: Value,
    #[serde(default)]
    pub recommendation: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_metadata: Option<Value>,
}

/// Subject `actions.status`: an action's state after a transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    pub action_id: String,
    pub detection_id: String,
    pub action_type: String,
    pub database_id: String,
    pub status: ActionStatus,
    pub message: String,
    /// RFC 3339.
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    #[serde(default)]
    pub execution_time_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub can_rollback: bool,
    #[serde(default)]
    pub rolledback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_error: Option<String>,
}

/// Subject `actions.completed`: an action finished with status `completed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionCompletedEvent {
    pub action_id: String,
    pub detection_id: String,
    /// Carried so verification can follow the problem (the original lost it on approval).
    pub detection_key: String,
    pub action_type: String,
    pub database_id: String,
    pub status: String,
    pub solution: String,
    pub message: String,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Subject `rollback.requested`: verification asks the executor to undo an action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RollbackRequest {
    pub action_id: String,
    pub detection_id: String,
    pub action_type: String,
    pub database_id: String,
    pub reason: String,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Subjects `actions.approve`, `actions.reject`, `actions.rollback`: an operator's decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionDecision {
    pub action_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub requested_by: String,
}

/// Unix seconds as RFC 3339 in UTC (`2026-11-25T00:47:32Z`), the form timestamps take in the
/// JSON events; no date library needed (Howard Hinnant's civil-from-days).
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_567_652), "2026-11-25T00:47:32Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    use serde_json::json;

    use super::*;

    #[test]
    fn detection_published_by_the_original_decodes() {
        let original = json!({
            "id": "missing_index-\u{fffd}", "key": "db1:missing_index:users.email",
            "detector_name": "missing_index", "category": "query", "severity": "warning",
            "database_id": "db1", "timestamp": 1_760_000_000, "title": "Sequential scans detected on table 'users'",
            "description": "d", "evidence": {"table_name": "users"}, "recommendation": "r",
            "action_type": "create_index", "action_metadata": {"table_name": "users", "column_name": "email"}
        });
        let detection: Detection = serde_json::from_value(original).unwrap();
        assert_eq!(detection.key, "db1:missing_index:users.email");
        assert_eq!(detection.action_metadata.unwrap()["column_name"], "email");
    }

    #[test]
    fn action_result_uses_the_original_field_names_and_status_words() {
        let result = ActionResult {
            action_id: "a1".into(),
            detection_id: "d1".into(),
            action_type: "create_index".into(),
            database_id: "db1".into(),
            status: ActionStatus::PendingApproval,
            message: "Action pending approval: create_index".into(),
            created_at: "2026-11-24T00:00:00Z".into(),
            started: None,
            completed: None,
            execution_time_ms: 0,
            changes: None,
            error: None,
            can_rollback: true,
            rolledback: false,
            rollback_error: None,
        };
        let value = serde_json::to_value(&result).unwrap();
        assert_eq!(value["status"], "pending_approval");
        assert_eq!(value["rolledback"], false);
        assert!(value.get("error").is_none(), "empty optionals are omitted");
    }

    #[test]
    fn metrics_without_measurements_decode_with_everything_absent() {
        let metrics: NormalisedMetrics = serde_json::from_value(json!({
            "database_id": "db1", "database_type": "postgresql", "timestamp": 1,
            "health_score": 1.0, "connection_health": 1.0, "query_health": 1.0,
            "storage_health": 1.0, "cache_health": 1.0
        }))
        .unwrap();
        assert_eq!(metrics.measurements, Measurements::default());
        assert!(metrics.time_delta_seconds.is_none());
    }
}
