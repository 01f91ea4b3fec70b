//! `GET /ledger`: what verification measured of each completed action.

use axum::Json;
use axum::extract::{Query, State};
use proto::knowledge::{LedgerEntry, ListLedgerRequest};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::detections::parse_json;
use super::error::ErrorBody;
use super::{AppState, Filter, Reply, instant};

/// A ledger entry as the dashboard reads it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LedgerEntry)]
pub struct LedgerView {
    pub action_id: String,
    pub database_id: String,
    pub detection_id: String,
    pub detection_key: String,
    #[schema(schema_with = super::schema::action_type)]
    pub action_type: String,
    #[schema(schema_with = super::schema::ledger_state)]
    pub state: String,
    pub reason: String,
    pub started_at: String,
    pub decided_at: String,
    pub cycles: i32,
    /// The measurements before the action (the analyser's JSON object).
    #[schema(value_type = Option<super::schema::JsonObject>)]
    pub before: Value,
    /// The measurements after it.
    #[schema(value_type = Option<super::schema::JsonObject>)]
    pub after: Value,
    pub time_saved_ms_per_day: f64,
    pub write_cost_ms_per_day: f64,
    pub storage_bytes: i64,
    /// The statements the action was for, by pg_stat_statements' queryid as text (an index's
    /// served statements, whose mean time `before.served` and `after.served` sum up); empty
    /// when the action names none.
    pub served: Vec<String>,
}

impl From<LedgerEntry> for LedgerView {
    fn from(e: LedgerEntry) -> Self {
        Self {
            served: served(&e.tracking_json),
            before: parse_json(&e.before_json),
            after: parse_json(&e.after_json),
            started_at: instant(e.started_at),
            decided_at: instant(e.decided_at),
            action_id: e.action_id,
            database_id: e.database_id,
            detection_id: e.detection_id,
            detection_key: e.detection_key,
            action_type: e.action_type,
            state: e.state,
            reason: e.reason,
            cycles: e.cycles,
            time_saved_ms_per_day: e.time_saved_ms_per_day,
            write_cost_ms_per_day: e.write_cost_ms_per_day,
            storage_bytes: e.storage_bytes,
        }
    }
}

/// The `served` queryids the analyser's verification follows (`tracking_json`); none when the
/// text is not such an object.
fn served(tracking_json: &str) -> Vec<String> {
    serde_json::from_str::<Value>(tracking_json)
        .ok()
        .and_then(|t| {
            t.get("served")?.as_array().map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Entries (of `database_id`, in `state`, when given), at most `limit` (default 100).
#[utoipa::path(
    get,
    operation_id = "list_ledger",
    path = "/ledger",
    tag = "actions",
    params(
        ("database_id" = Option<String>, Query, description = "Only this database's"),
        ("state" = Option<String>, Query, description = "Only in this state"),
        ("limit" = Option<i32>, Query, description = "At most this many (default 100)"),
    ),
    responses(
        (status = 200, body = Vec<LedgerView>),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn list(
    State(s): State<AppState>,
    Query(f): Query<Filter>,
) -> Reply<Json<Vec<LedgerView>>> {
    let request = ListLedgerRequest {
        database_id: f.database_id,
        state: f.state,
        limit: f.limit.unwrap_or(100),
    };
    let list = s
        .knowledge(
            "ListLedger",
            |mut k| async move { k.list_ledger(request).await },
        )
        .await?;
    Ok(Json(list.entries.into_iter().map(Into::into).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_statements_are_read_from_the_verifications_tracking() {
        let entry = LedgerEntry {
            action_id: "a1".into(),
            tracking_json: r#"{"served":["-42","7"],"table":"public.posts"}"#.into(),
            before_json: r#"{"served":{"calls":10,"mean_ms":4.5}}"#.into(),
            ..Default::default()
        };
        let view = LedgerView::from(entry);
        assert_eq!(view.served, ["-42", "7"]);
        assert_eq!(view.before["served"]["mean_ms"], 4.5);
    }

    #[test]
    fn an_entry_without_tracking_serves_nothing() {
        for tracking in ["", "{}", r#"{"served":"1"}"#, "not json"] {
            assert!(served(tracking).is_empty(), "{tracking}");
        }
    }
}
