//! `GET /actions` (what the executor did or proposes, from knowledge) and
//! `POST /actions/{id}/{approve|reject|rollback}` (asked of the executor over gRPC, so the caller
//! learns the outcome).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use proto::error::Error;
use proto::executor::ActionDecisionRequest;
use proto::knowledge::{Action, ListActionsRequest};
use proto::status::ActionStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::detections::parse_json;
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

/// The one reader of the executor's `params_json` (the plan) and `result_json` (what it did);
/// to become the typed reader of `proto::actions` once the executor writes it.
pub fn changes(action: &Action) -> Changes {
    let params = parse_json(&action.params_json);
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Changes {
        description: text(&params["description"]),
        plan: params["plan"].clone(),
        detection_key: text(&params["detection_key"]),
        changes: parse_json(&action.result_json),
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

/// What may be decided about an action.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Approve,
    Reject,
    Rollback,
}

impl std::str::FromStr for Decision {
    type Err = Error;

    fn from_str(word: &str) -> Result<Self, Error> {
        match word {
            "approve" => Ok(Self::Approve),
            "reject" => Ok(Self::Reject),
            "rollback" => Ok(Self::Rollback),
            other => Err(Error::not_found(format!(
                "unknown decision {other:?}: expected approve, reject or rollback"
            ))),
        }
    }
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
    let decision: Decision = decision.parse()?;
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
        Decision::Approve => {
            s.executor
                .call("ApproveAction", |mut e| async move {
                    e.approve_action(request).await
                })
                .await
        }
        Decision::Reject => {
            s.executor
                .call("RejectAction", |mut e| async move {
                    e.reject_action(request).await
                })
                .await
        }
        Decision::Rollback => {
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
    fn the_plan_and_result_are_read_from_the_stored_json() {
        let action = Action {
            status: "rolled_back".into(),
            params_json: r#"{"description": "index t(a)", "plan": ["CREATE INDEX"], "detection_key": "db:missing_index:t"}"#.into(),
            result_json: r#"{"index": "t_a_idx"}"#.into(),
            ..Default::default()
        };
        let view = ActionView::from(action);
        assert!(view.rolledback);
        assert_eq!(view.changes.description.as_deref(), Some("index t(a)"));
        assert_eq!(
            view.changes.detection_key.as_deref(),
            Some("db:missing_index:t")
        );
        assert_eq!(view.changes.plan[0], "CREATE INDEX");
        assert_eq!(view.changes.changes["index"], "t_a_idx");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["description"], "index t(a)", "flattened: {json}");
        assert_eq!(json["completed"], "", "never completed: empty");
        assert!(json["error"].is_null());
    }
}
