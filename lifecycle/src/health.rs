//! `GET /health`, `GET /ready` and `GET /metrics` for every service.
//!
//! `/health` answers the original's JSON (`status`, `service`, `uptime_seconds`, `timestamp`) plus
//! whatever the service's health check adds; 200 when healthy, 503 when not. `/ready` says whether
//! the service can do its work now (its dependencies answer); 200 or 503.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde_json::{Map, Value};

/// The outcome of a check, with fields merged into the response body.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub ok: bool,
    pub fields: Map<String, Value>,
}

impl Report {
    pub fn ok() -> Self {
        Self {
            ok: true,
            fields: Map::new(),
        }
    }

    pub fn failing() -> Self {
        Self {
            ok: false,
            fields: Map::new(),
        }
    }

    /// Adds a field to the body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }
}

/// An asynchronous check run on every request.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Report> + Send + Sync>;

/// Builds the health router of one service.
#[derive(Clone)]
pub struct Health {
    service: &'static str,
    started: Instant,
    health: Option<Check>,
    ready: Option<Check>,
    metrics: Option<Arc<crate::metrics::Registry>>,
}

impl Health {
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            started: Instant::now(),
            health: None,
            ready: None,
            metrics: None,
        }
    }

    /// What `/health` checks besides "the process answers".
    pub fn with_health_check<F>(mut self, check: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Report> + Send + Sync + 'static,
    {
        self.health = Some(Arc::new(check));
        self
    }

    /// What `/ready` checks; without one the service is ready once it answers.
    pub fn with_readiness_check<F>(mut self, check: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Report> + Send + Sync + 'static,
    {
        self.ready = Some(Arc::new(check));
        self
    }

    /// The service's own Prometheus metrics, served at `/metrics` (see [`crate::metrics`]).
    pub fn with_metrics(mut self, registry: crate::metrics::Registry) -> Self {
        self.metrics = Some(Arc::new(registry));
        self
    }

    pub fn router(self) -> Router {
        let metrics = self.metrics.clone();
        let router = Router::new()
            .route("/health", get(health))
            .route("/ready", get(ready))
            .with_state(Arc::new(self));
        match metrics {
            Some(registry) => router.merge(
                Router::new()
                    .route("/metrics", get(crate::metrics::serve))
                    .with_state(registry),
            ),
            None => router,
        }
    }

    fn base(&self, report: &Report) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("service".into(), self.service.into());
        body.insert(
            "uptime_seconds".into(),
            self.started.elapsed().as_secs().into(),
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        body.insert("timestamp".into(), now.into());
        body.extend(report.fields.clone());
        body
    }
}

async fn run(check: &Option<Check>) -> Report {
    match check {
        Some(check) => check().await,
        None => Report::ok(),
    }
}

fn respond(ok: bool, body: Map<String, Value>) -> Response {
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(Value::Object(body))).into_response()
}

async fn health(State(health): State<Arc<Health>>) -> Response {
    let report = run(&health.health).await;
    let mut body = Map::new();
    body.insert(
        "status".into(),
        if report.ok { "healthy" } else { "unhealthy" }.into(),
    );
    body.extend(health.base(&report));
    respond(report.ok, body)
}

async fn ready(State(health): State<Arc<Health>>) -> Response {
    let report = run(&health.ready).await;
    let mut body = Map::new();
    body.insert("ready".into(), report.ok.into());
    body.extend(health.base(&report));
    respond(report.ok, body)
}
