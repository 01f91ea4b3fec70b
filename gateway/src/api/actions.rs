//! `GET /actions` (what the executor did or proposes, from knowledge) and
//! `POST /actions/{id}/{approve|reject|rollback}` (asked of the executor over gRPC, so the caller
//! learns the outcome).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use proto::actions::{ActionOutcome, Claim, StoredAction};
use proto::error::Error;
use proto::executor::ActionDecisionRequest;
use proto::knowledge::{Action, ListActionsRequest};
use proto::status::{ActionStatus, OperatorDecision};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{AppState, Body, Filter, Reply, instant};

/// An action as the dashboard reads it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Action)]
pub struct ActionView {
    pub action_id: String,
    pub detection_id: String,
    #[schema(schema_with = super::schema::action_type)]
    pub action_type: String,
    pub database_id: String,
    #[schema(schema_with = super::schema::action_status)]
    pub status: String,
    pub message: String,
    pub error: Option<String>,
    /// RFC 3339; `started` and `completed` are empty until then.
    pub created_at: String,
    pub started: String,
    pub completed: String,
    pub updated_at: i64,
    pub can_rollback: bool,
    pub rolledback: bool,
    #[serde(flatten)]
    pub changes: Changes,
}

/// What an action plans and what it did, from the executor's stored plan and result.
#[derive(Debug, Serialize, ToSchema)]
pub struct Changes {
    pub description: Option<String>,
    /// The steps, as the executor planned them.
    #[schema(value_type = Object)]
    pub plan: Value,
    pub detection_key: Option<String>,
    /// What the executor changed (its result), `null` before it ran.
    #[schema(value_type = Object)]
    pub changes: Value,
}

/// The one reader of the executor's `params_json` (a [`StoredAction`]) and `result_json` (an
/// [`ActionOutcome`] once it ran), through the contract's types: a record they cannot read is
/// shown without them and logged, never guessed at.
pub fn changes(action: &Action) -> Changes {
    let stored = StoredAction::from_params_json(&action.params_json);
    if let Err(error) = &stored
        && !action.params_json.is_empty()
    {
        warn!(action_id = %action.id, %error, "stored plan unreadable");
    }
    let outcome = match action.parsed_action_type() {
        Ok(kind) if !action.result_json.is_empty() => {
            ActionOutcome::from_result_json(kind, &action.result_json).map_err(|error| {
                // While it runs, the result holds only the executor's claim.
                if Claim::from_result_json(&action.result_json).is_none() {
                    warn!(action_id = %action.id, %error, "stored result unreadable");
                }
            })
        }
        _ => Err(()),
    };
    let stored = stored.ok();
    Changes {
        description: stored.as_ref().map(|s| s.description.clone()),
        plan: stored
            .as_ref()
            .and_then(|s| serde_json::to_value(&s.plan).ok())
            .unwrap_or(Value::Null),
        detection_key: stored.map(|s| s.detection_key),
        changes: outcome
            .ok()
            .and_then(|o| serde_json::from_str(&o.to_result_json()).ok())
            .unwrap_or(Value::Null),
    }
}

impl From<Action> for ActionView {
    fn from(a: Action) -> Self {
        let changes = changes(&a);
        let rolledback = a.parsed_status() == Ok(ActionStatus::RolledBack);
        Self {
            changes,
            rolledback,
            error: (!a.error.is_empty()).then_some(a.error),
            created_at: instant(a.created_at),
            started: instant(a.started_at),
            completed: instant(a.completed_at),
            action_id: a.id,
            detection_id: a.detection_id,
            action_type: a.action_type,
            database_id: a.database_id,
            status: a.status,
            message: a.message,
            updated_at: a.updated_at,
            can_rollback: a.can_rollback,
        }
    }
}

/// Actions (of `database_id`, in `status`, when given), at most `limit` (default 100).
#[utoipa::path(
    get,
    operation_id = "list_actions",
    path = "/actions",
    tag = "actions",
    params(
        ("database_id" = Option<String>, Query, description = "Only this database's"),
        ("status" = Option<String>, Query, description = "Only in this status"),
        ("limit" = Option<i32>, Query, description = "At most this many (default 100)"),
    ),
    responses(
        (status = 200, body = Vec<ActionView>),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn list(
    State(s): State<AppState>,
    Query(f): Query<Filter>,
) -> Reply<Json<Vec<ActionView>>> {
    let request = ListActionsRequest {
        database_id: f.database_id,
        status: f.status,
        limit: f.limit.unwrap_or(100),
    };
    let list = s
        .knowledge("ListActions", |mut k| async move {
            k.list_actions(request).await
        })
        .await?;
    Ok(Json(list.actions.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why, for the record (at most 1000 characters).
    #[serde(default)]
    pub reason: String,
}

/// The executor's answer to a decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct Decided {
    pub success: bool,
    pub action_id: String,
    pub status: String,
    pub message: String,
    pub error: String,
}

/// Approves, rejects or rolls back an action: the executor's answer.
#[utoipa::path(
    post,
    operation_id = "decide",
    path = "/actions/{id}/{decision}",
    tag = "actions",
    params(
        ("id" = String, Path, description = "The action's id"),
        ("decision" = String, Path, description = "approve, reject or rollback"),
    ),
    request_body(content = Option<DecisionBody>, description = "Optional: why", content_type = "application/json"),
    responses(
        (status = 200, body = Decided),
        (status = 400, description = "The reason is too long", body = ErrorBody),
        (status = 404, description = "No such action or decision", body = ErrorBody),
        (status = 409, description = "The action's status does not allow it", body = ErrorBody),
        (status = 503, description = "The executor cannot be reached", body = ErrorBody),
    )
)]
pub async fn decide(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Option<Body<DecisionBody>>,
) -> Reply<Json<Decided>> {
    let Path((id, decision)) = path?;
    // An unknown decision is a path that does not exist.
    let decision: OperatorDecision = decision
        .parse()
        .map_err(|unknown: proto::status::UnknownWord| Error::not_found(unknown.to_string()))?;
    let reason = body.map(|Body(b)| b.reason).unwrap_or_default();
    if reason.len() > 1000 {
        return Err(Error::invalid("reason is longer than 1000 characters").into());
    }
    let request = ActionDecisionRequest {
        action_id: id,
        requested_by: "dashboard".into(),
        reason,
    };
    let reply = match decision {
        OperatorDecision::Approve => {
            s.executor
                .call("ApproveAction", |mut e| async move {
                    e.approve_action(request).await
                })
                .await
        }
        OperatorDecision::Reject => {
            s.executor
                .call("RejectAction", |mut e| async move {
                    e.reject_action(request).await
                })
                .await
        }
        OperatorDecision::Rollback => {
            s.executor
                .call("RollbackAction", |mut e| async move {
                    e.rollback_action(request).await
                })
                .await
        }
    }?;
    Ok(Json(Decided {
        success: true,
        action_id: reply.action_id,
        status: reply.status,
        message: reply.message,
        error: reply.error,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_and_result_are_read_through_the_contracts_types() {
        let action = Action {
            id: "act-1".into(),
            action_type: "create_index".into(),
            status: "rolled_back".into(),
            params_json: r#"{"plan": {"kind": "create_index", "schema": "public", "table": "t", "index_name": "t_a_idx", "columns": [{"name": "a", "descending": false}]}, "detection_key": "db:missing_index:t", "description": "index t(a)"}"#.into(),
            result_json: r#"{"index_name": "t_a_idx", "schema": "public", "table_name": "t", "statement": "CREATE INDEX CONCURRENTLY \"t_a_idx\" ON \"public\".\"t\" (\"a\")", "index_oid": 16500, "size_bytes": 8192, "concurrent": true, "rollback": {"dropped": true, "index_name": "t_a_idx"}}"#.into(),
            ..Default::default()
        };
        let view = ActionView::from(action);
        assert!(view.rolledback);
        assert_eq!(view.changes.description.as_deref(), Some("index t(a)"));
        assert_eq!(
            view.changes.detection_key.as_deref(),
            Some("db:missing_index:t")
        );
        assert_eq!(view.changes.plan["kind"], "create_index");
        assert_eq!(view.changes.plan["table"], "t");
        assert_eq!(view.changes.changes["size_bytes"], 8192);
        assert_eq!(view.changes.changes["rollback"]["dropped"], true);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["description"], "index t(a)", "flattened: {json}");
        assert_eq!(json["completed"], "", "never completed: empty");
        assert!(json["error"].is_null());
    }

    #[test]
    fn a_running_action_or_an_unreadable_record_shows_no_changes() {
        for (params, result) in [
            ("", r#"{"executor": "executor-1"}"#),
            (
                r#"{"plan": {"kind": "drop_everything"}}"#,
                r#"{"rows": "many"}"#,
            ),
        ] {
            let view = ActionView::from(Action {
                action_type: "create_index".into(),
                status: "executing".into(),
                params_json: params.into(),
                result_json: result.into(),
                ..Default::default()
            });
            assert!(view.changes.changes.is_null(), "{result}");
            assert!(view.changes.plan.is_null(), "{params}");
            assert_eq!(view.changes.description, None);
        }
    }
}
