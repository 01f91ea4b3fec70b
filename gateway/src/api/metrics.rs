//! `/metrics/latest` and `/metrics/history`: the collector's snapshots as the gateway heard them
//! on NATS (`live`), and `/metrics`: the Prometheus exposition (OpenMetrics text, by
//! `prometheus-client`).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use proto::error::Error;
use proto::knowledge::{GetSystemStatsRequest, GetSystemStatsResponse};
use serde_json::{Value, json};

use super::error::ErrorBody;
use super::schema::JsonObject;
use super::{ApiError, AppState, Filter, Reply, Shared};

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
    path = "/metrics",
    tag = "metrics",
    operation_id = "prometheus",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String))
)]
pub async fn prometheus(State(s): State<AppState>) -> Response {
    let stats = s
        .knowledge("GetSystemStats", |mut k| async move {
            k.get_system_stats(GetSystemStatsRequest {}).await
        })
        .await
        .ok();
    let registry = exposition(&s, stats.as_ref());
    let mut out = String::new();
    if let Err(error) = encode(&mut out, &registry) {
        return ApiError::from(Error::internal(format!("metrics not encoded: {error}")))
            .into_response();
    }
    ([(header::CONTENT_TYPE, OPENMETRICS)], out).into_response()
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The gateway's own numbers, knowledge's counts (left out while knowledge cannot be asked) and
/// each database's newest health score, read now.
fn exposition(s: &Shared, stats: Option<&GetSystemStatsResponse>) -> Registry {
    let mut registry = Registry::with_prefix("startupmonkey");
    let gauge = |value: i64| {
        let gauge: Gauge = Gauge::default();
        gauge.set(value);
        gauge
    };
    registry.register_with_unit(
        "gateway_uptime",
        "Seconds since the gateway started",
        Unit::Seconds,
        gauge(s.started.elapsed().as_secs() as i64),
    );
    let received: Counter = Counter::default();
    received.inc_by(s.live.received.load(Ordering::Relaxed));
    registry.register(
        "gateway_events_received",
        "NATS events the gateway received",
        received,
    );
    registry.register(
        "gateway_databases_with_metrics",
        "Databases the gateway holds a metric history for",
        gauge(s.live.databases_seen() as i64),
    );
    if let Some(stats) = stats {
        for (name, help, value) in [
            ("databases", "Registered databases", stats.total_databases),
            (
                "databases_healthy",
                "Databases reported healthy",
                stats.healthy_databases,
            ),
            (
                "detections_active",
                "Problems currently detected",
                stats.active_detections,
            ),
            (
                "detections_total",
                "Problems detected since the start",
                stats.total_detections,
            ),
            ("actions_total", "Actions recorded", stats.total_actions),
            (
                "actions_completed",
                "Actions completed",
                stats.actions_completed,
            ),
            ("actions_failed", "Actions failed", stats.actions_failed),
        ] {
            registry.register(name, help, gauge(i64::from(value)));
        }
    }
    let health = Family::<Vec<(String, String)>, Gauge<f64, AtomicU64>>::default();
    for (database_id, score) in s.live.latest_health() {
        health
            .get_or_create(&vec![("database_id".to_owned(), database_id)])
            .set(score);
    }
    registry.register(
        "database_health_score",
        "Each database's newest health score",
        health,
    );
    registry
}
