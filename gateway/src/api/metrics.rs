//! `/metrics/latest` and `/metrics/history`: the collector's snapshots as the gateway heard them
//! on NATS (`live`), and `/metrics`: the Prometheus exposition.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use proto::error::Error;
use proto::knowledge::GetSystemStatsRequest;
use serde_json::{Value, json};

use super::error::ErrorBody;
use super::openapi::JsonObject;
use super::{AppState, Filter, Reply};

/// The newest snapshot of `database_id` (of any database when empty); `{}` before the first.
#[utoipa::path(
    get,
    operation_id = "latest_metrics",
    path = "/metrics/latest",
    tag = "metrics",
    params(("database_id" = Option<String>, Query, description = "This database's")),
    responses((status = 200, description = "The collector's `metrics` event", body = JsonObject))
)]
pub async fn latest(State(s): State<AppState>, Query(f): Query<Filter>) -> Json<Value> {
    Json(s.live.latest(&f.database_id).unwrap_or_else(|| json!({})))
}

/// Up to `limit` (1–10000, default 20) snapshots of `database_id`, oldest first.
#[utoipa::path(
    get,
    operation_id = "metrics_history",
    path = "/metrics/history",
    tag = "metrics",
    params(
        ("database_id" = String, Query, description = "The database"),
        ("limit" = Option<i32>, Query, description = "At most this many, 1-10000 (default 20)"),
    ),
    responses(
        (status = 200, description = "The collector's `metrics` events", body = Vec<JsonObject>),
        (status = 400, description = "No database_id, or a bad limit", body = ErrorBody),
    )
)]
pub async fn history(
    State(s): State<AppState>,
    Query(f): Query<Filter>,
) -> Reply<Json<Vec<Value>>> {
    if f.database_id.is_empty() {
        return Err(Error::invalid("database_id is required: a history is per database").into());
    }
    let limit = f.limit.unwrap_or(20);
    if !(1..=10_000).contains(&limit) {
        return Err(Error::invalid(format!("limit {limit} must be 1-10000")).into());
    }
    Ok(Json(s.live.history(&f.database_id, limit as usize)))
}

/// The Prometheus exposition.
#[utoipa::path(
    get,
    operation_id = "prometheus",
    path = "/metrics",
    tag = "metrics",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain", body = String))
)]
pub async fn prometheus(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    let mut line = |name: &str, help: &str, kind: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    line(
        "startupmonkey_gateway_uptime_seconds",
        "Seconds since the gateway started.",
        "gauge",
        s.started.elapsed().as_secs().to_string(),
    );
    line(
        "startupmonkey_gateway_events_received_total",
        "NATS events the gateway received.",
        "counter",
        s.live
            .received
            .load(std::sync::atomic::Ordering::Relaxed)
            .to_string(),
    );
    line(
        "startupmonkey_gateway_databases_with_metrics",
        "Databases the gateway holds a metric history for.",
        "gauge",
        s.live.databases_seen().to_string(),
    );
    if let Ok(stats) = s
        .knowledge("GetSystemStats", |mut k| async move {
            k.get_system_stats(GetSystemStatsRequest {}).await
        })
        .await
    {
        for (name, help, value) in [
            (
                "startupmonkey_databases",
                "Registered databases.",
                stats.total_databases,
            ),
            (
                "startupmonkey_databases_healthy",
                "Databases reported healthy.",
                stats.healthy_databases,
            ),
            (
                "startupmonkey_detections_active",
                "Problems currently detected.",
                stats.active_detections,
            ),
            (
                "startupmonkey_detections_total",
                "Problems detected since the start.",
                stats.total_detections,
            ),
            (
                "startupmonkey_actions_total",
                "Actions recorded.",
                stats.total_actions,
            ),
            (
                "startupmonkey_actions_completed",
                "Actions completed.",
                stats.actions_completed,
            ),
            (
                "startupmonkey_actions_failed",
                "Actions failed.",
                stats.actions_failed,
            ),
        ] {
            line(name, help, "gauge", value.to_string());
        }
    }
    for (id, value) in s.live.latest_health() {
        out.push_str(&format!(
            "startupmonkey_database_health_score{{database_id=\"{}\"}} {value}\n",
            id.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
