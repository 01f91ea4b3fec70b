//! The action API on port 8084 (the original's paths): `POST /api/actions/{id}/rollback`, plus
//! `approve` and `reject` beside it, and `POST /api/deploy-redis`. JSON in and out; a readable
//! 4xx for a request that cannot be carried out.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use proto::status::OperatorDecision;
use serde::Deserialize;
use serde_json::json;

use crate::engine::{Engine, EngineError};
use crate::grpc::status_of;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    #[serde(default)]
    requested_by: String,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployRedis {
    database_id: String,
    #[serde(default)]
    max_memory: String,
    #[serde(default)]
    eviction_policy: String,
    /// Accepted for the original's clients; the port is always a free one we choose.
    #[serde(default)]
    #[allow(dead_code)]
    port: Option<u16>,
}

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/api/actions/{id}/{decision}", post(decide))
        .route("/api/deploy-redis", post(deploy_redis))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(engine)
}

async fn decide(
    State(engine): State<Arc<Engine>>,
    Path((id, decision)): Path<(String, String)>,
    body: Result<Option<Json<Decision>>, JsonRejection>,
) -> Response {
    // No body is a decision without a reason; a bad one is refused in JSON, like every error here.
    let Decision {
        requested_by,
        reason,
    } = match body {
        Ok(body) => body.map(|Json(d)| d).unwrap_or_default(),
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let by = if requested_by.is_empty() {
        "the executor API"
    } else {
        requested_by.as_str()
    };
    let outcome = match decision.parse::<OperatorDecision>() {
        Ok(OperatorDecision::Approve) => engine.approve(&id, by).await,
        Ok(OperatorDecision::Reject) => engine.reject(&id, by, &reason).await,
        Ok(OperatorDecision::Rollback) => engine.rollback(&id, by, &reason).await,
        Err(unknown) => return error(StatusCode::NOT_FOUND, unknown.to_string()),
    };
    match outcome {
        Ok(action) => {
            let status = status_of(action);
            Json(json!({
                "action_id": status.action_id,
                "status": status.status,
                "message": status.message,
                "action_type": status.action_type,
                "database_id": status.database_id,
                "error": status.error,
                "can_rollback": status.can_rollback,
            }))
            .into_response()
        }
        Err(failure) => refused(failure),
    }
}

async fn deploy_redis(
    State(engine): State<Arc<Engine>>,
    body: Result<Json<DeployRedis>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    match engine
        .deploy_redis(
            &request.database_id,
            &request.max_memory,
            &request.eviction_policy,
        )
        .await
    {
        Ok(action_id) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "success": true,
                "action_id": action_id,
                "message": "Redis deployment started",
                "database_id": request.database_id,
            })),
        )
            .into_response(),
        Err(failure) => refused(failure),
    }
}

/// The one way an engine error leaves over HTTP: its kind's status, its message.
fn refused(failure: EngineError) -> Response {
    let failure = proto::error::Error::from(failure);
    let status = StatusCode::from_u16(failure.kind().http_status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, failure.message().to_owned())
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}
