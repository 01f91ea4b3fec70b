//! JSON payloads carried on NATS, with the original's field names (spec section 3), so a consumer
//! written against the original reads ours unchanged.
//!
//! Unknown fields are ignored on input; optional fields are omitted on output when empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::status::{ActionStatus, ActionType, Category, Detector, Severity, UnknownWord};

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
    /// Added: the costliest statements of the window (`time_delta_seconds`) by total time, at
    /// most [`STATEMENTS_ON_NATS`], one per `queryid`, texts without literals. Absent when
    /// nothing is windowed yet or pg_stat_statements is missing, and in the original's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_statements: Option<Vec<StatementWindow>>,
}

/// Most statements a `metrics` event carries.
pub const STATEMENTS_ON_NATS: usize = 20;

/// One statement over one snapshot's window: pg_stat_statements' counters as deltas, summed over
/// the roles that ran it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatementWindow {
    /// pg_stat_statements' `queryid`: the same statement keeps it across windows.
    pub queryid: i64,
    /// The normalised text (`$1` where a constant was), literals removed.
    pub query: String,
    pub calls: i64,
    pub total_time_ms: f64,
    pub rows: i64,
    #[serde(default)]
    pub shared_blks_hit: i64,
    #[serde(default)]
    pub shared_blks_read: i64,
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

impl Detection {
    /// The action it asks for; `None` when it asks for none (an empty `action_type`).
    pub fn parsed_action_type(&self) -> Result<Option<ActionType>, UnknownWord> {
        if self.action_type.is_empty() {
            return Ok(None);
        }
        self.action_type.parse().map(Some)
    }

    pub fn parsed_detector(&self) -> Result<Detector, UnknownWord> {
        self.detector_name.parse()
    }

    pub fn parsed_severity(&self) -> Result<Severity, UnknownWord> {
        self.severity.parse()
    }

    pub fn parsed_category(&self) -> Result<Category, UnknownWord> {
        self.category.parse()
    }
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
/// JSON events. Instants outside years 0000–9999, which RFC 3339 cannot write, are clamped to
/// that range.
pub fn rfc3339(unix: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    const RANGE: (i64, i64) = (-62_167_219_200, 253_402_300_799);
    time::OffsetDateTime::from_unix_timestamp(unix.clamp(RANGE.0, RANGE.1))
        .ok()
        .and_then(|instant| instant.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_567_652), "2026-11-25T00:47:32Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(super::rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
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
        assert!(
            metrics.top_statements.is_none(),
            "the original's events carry none"
        );
    }

    #[test]
    fn metrics_carry_the_windows_statements_as_typed_json_and_omit_them_when_absent() {
        let metrics = NormalisedMetrics {
            database_id: "db1".into(),
            top_statements: Some(vec![StatementWindow {
                queryid: -42,
                query: "SELECT * FROM posts WHERE user_id = $1".into(),
                calls: 7,
                total_time_ms: 12.5,
                rows: 70,
                shared_blks_hit: 3,
                shared_blks_read: 1,
            }]),
            ..Default::default()
        };
        let value = serde_json::to_value(&metrics).unwrap();
        assert_eq!(
            value["top_statements"],
            json!([{
                "queryid": -42, "query": "SELECT * FROM posts WHERE user_id = $1", "calls": 7,
                "total_time_ms": 12.5, "rows": 70, "shared_blks_hit": 3, "shared_blks_read": 1
            }])
        );
        let back: NormalisedMetrics = serde_json::from_value(value).unwrap();
        assert_eq!(back, metrics);
        let without = serde_json::to_value(NormalisedMetrics::default()).unwrap();
        assert!(without.get("top_statements").is_none(), "{without}");
    }
}

/// What a consumer does with a payload someone else published: every decoder either returns the
/// payload's values exactly or an error — never a panic, a coerced value or a stack overflow.
#[cfg(test)]
mod untrusted {
    use proptest::prelude::*;
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::*;

    /// What a field of a payload takes.
    #[derive(Debug, Clone, Copy)]
    enum Kind {
        Text,
        Integer,
        /// A JSON value of any shape (`evidence`).
        Any,
        /// `Option<Value>`: null means absent.
        Optional,
    }

    fn accepts(kind: Kind, value: &Value) -> bool {
        match kind {
            Kind::Text => value.is_string(),
            Kind::Integer => value.as_i64().is_some(),
            Kind::Any | Kind::Optional => true,
        }
    }

    /// A field's name, what it takes, and whether it must be there.
    type Field = (&'static str, Kind, bool);

    const DETECTION: &[Field] = &[
        ("id", Kind::Text, true),
        ("key", Kind::Text, true),
        ("detector_name", Kind::Text, true),
        ("category", Kind::Text, true),
        ("severity", Kind::Text, true),
        ("database_id", Kind::Text, true),
        ("timestamp", Kind::Integer, true),
        ("title", Kind::Text, true),
        ("description", Kind::Text, true),
        ("evidence", Kind::Any, false),
        ("recommendation", Kind::Text, false),
        ("action_type", Kind::Text, false),
        ("action_metadata", Kind::Optional, false),
    ];
    const DECISION: &[Field] = &[
        ("action_id", Kind::Text, true),
        ("requested_by", Kind::Text, false),
    ];
    const ROLLBACK: &[Field] = &[
        ("action_id", Kind::Text, true),
        ("detection_id", Kind::Text, true),
        ("action_type", Kind::Text, true),
        ("database_id", Kind::Text, true),
        ("reason", Kind::Text, true),
        ("timestamp", Kind::Integer, true),
    ];
    const COMPLETED: &[Field] = &[
        ("action_id", Kind::Text, true),
        ("detection_id", Kind::Text, true),
        ("detection_key", Kind::Text, true),
        ("action_type", Kind::Text, true),
        ("database_id", Kind::Text, true),
        ("status", Kind::Text, true),
        ("solution", Kind::Text, true),
        ("message", Kind::Text, true),
        ("timestamp", Kind::Integer, true),
    ];

    fn valid(fields: &[Field]) -> serde_json::Map<String, Value> {
        fields
            .iter()
            .map(|(name, kind, _)| {
                let value = match kind {
                    Kind::Text => json!(format!("{name}-1")),
                    Kind::Integer => json!(1_760_000_000),
                    Kind::Any | Kind::Optional => json!({"table_name": "users"}),
                };
                ((*name).to_owned(), value)
            })
            .collect()
    }

    /// `fields` of a valid payload replaced by `values` (by index, wrapping), or removed when
    /// the value is `None`: decoding must succeed exactly when every replacement is of the
    /// field's kind, and then give back exactly the values sent.
    fn decodes_exactly<T: DeserializeOwned + Serialize>(
        fields: &[Field],
        replacements: &[(usize, Option<Value>)],
    ) -> Result<(), TestCaseError> {
        let mut payload = valid(fields);
        for (index, value) in replacements {
            let name = fields[index % fields.len()].0;
            match value {
                Some(value) => payload.insert(name.to_owned(), value.clone()),
                None => payload.remove(name),
            };
        }
        let acceptable = fields
            .iter()
            .all(|(name, kind, required)| match payload.get(*name) {
                Some(value) => accepts(*kind, value),
                None => !required,
            });
        let bytes = serde_json::to_vec(&payload).unwrap();
        match serde_json::from_slice::<T>(&bytes) {
            Ok(decoded) => {
                prop_assert!(acceptable, "accepted {}", Value::Object(payload.clone()));
                let back = serde_json::to_value(&decoded).unwrap();
                for (name, kind, _) in fields {
                    let sent = payload.get(*name).filter(|v| !v.is_null());
                    // Empty optional text and absent values are left out when encoding.
                    let empty = match kind {
                        Kind::Text => json!(""),
                        _ => Value::Null,
                    };
                    let got = back.get(*name).unwrap_or(&empty);
                    prop_assert!(
                        same(got, sent.unwrap_or(&empty)),
                        "{}: {} != {:?}",
                        name,
                        got,
                        sent
                    );
                }
            }
            Err(_) => prop_assert!(!acceptable, "refused {}", Value::Object(payload)),
        }
        Ok(())
    }

    /// Equal, but for the last bit of a float: serde_json's default float parser is fast, not
    /// exact (`float_roundtrip` is off), which evidence and metadata can live with.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    /// Any JSON: nested a few levels, with awkward strings and numbers at the edges.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(Value::from),
            Just(json!(1.0)),
            "\\PC{0,40}".prop_map(Value::from),
            Just(json!("x\"; DROP TABLE t; --")),
            Just(json!("\u{0}")),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn replacements() -> impl Strategy<Value = Vec<(usize, Option<Value>)>> {
        prop::collection::vec(
            (any::<usize>(), prop::option::weighted(0.9, any_json())),
            0..4,
        )
    }

    /// Bytes that look like JSON often enough to get past the first character.
    fn json_like_bytes() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            prop::sample::select(vec![
                "{",
                "}",
                "[",
                "]",
                ":",
                ",",
                "\"id\"",
                "\"timestamp\"",
                "\"evidence\"",
                "\"x\"",
                "1",
                "-1",
                "1e999",
                "18446744073709551616",
                "NaN",
                "null",
                "true",
                "\"\\u0000\"",
                "\"\\ud800\"",
                "\"\\",
                " ",
            ])
            .prop_map(|t| t.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 1..4),
        ];
        prop::collection::vec(token, 0..64).prop_map(|tokens| tokens.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn a_detection_decodes_to_exactly_what_was_sent_or_is_refused(r in replacements()) {
            decodes_exactly::<Detection>(DETECTION, &r)?;
        }

        #[test]
        fn a_decision_decodes_to_exactly_what_was_sent_or_is_refused(r in replacements()) {
            decodes_exactly::<ActionDecision>(DECISION, &r)?;
        }

        #[test]
        fn a_rollback_request_decodes_to_exactly_what_was_sent_or_is_refused(r in replacements()) {
            decodes_exactly::<RollbackRequest>(ROLLBACK, &r)?;
        }

        #[test]
        fn a_completed_action_decodes_to_exactly_what_was_sent_or_is_refused(r in replacements()) {
            decodes_exactly::<ActionCompletedEvent>(COMPLETED, &r)?;
        }

        #[test]
        fn arbitrary_bytes_are_decoded_or_refused_never_a_panic(bytes in json_like_bytes()) {
            let detection = serde_json::from_slice::<Detection>(&bytes);
            let _ = serde_json::from_slice::<ActionDecision>(&bytes);
            let _ = serde_json::from_slice::<RollbackRequest>(&bytes);
            let _ = serde_json::from_slice::<ActionCompletedEvent>(&bytes);
            let _ = serde_json::from_slice::<NormalisedMetrics>(&bytes);
            let value = serde_json::from_slice::<Value>(&bytes);
            // Whatever decodes as a detection is a JSON object first.
            prop_assert!(detection.is_err() || value.is_ok_and(|v| v.is_object()));
        }
    }

    #[test]
    fn a_payload_as_large_as_nats_allows_decodes_and_deep_nesting_is_refused() {
        let mut detection = valid(DETECTION);
        detection.insert("description".into(), json!("x".repeat(1024 * 1024 - 1024)));
        let bytes = serde_json::to_vec(&detection).unwrap();
        let decoded: Detection = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(decoded.description.len(), 1024 * 1024 - 1024);

        // 100 000 nested arrays would overflow the stack of a recursive decoder without a limit.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for payload in [
            format!(r#"{{"action_id": "a", "requested_by": {deep}}}"#),
            format!(r#"{{"id": "a", "evidence": {deep}}}"#),
        ] {
            assert!(serde_json::from_str::<Detection>(&payload).is_err());
            assert!(serde_json::from_str::<ActionDecision>(&payload).is_err());
            assert!(serde_json::from_str::<Value>(&payload).is_err());
        }
    }
}
