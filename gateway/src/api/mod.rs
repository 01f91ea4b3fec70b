//! The REST API at the original BFF's paths, backed by knowledge and the executor instead of
//! in-memory stores: [`router`] builds it over a [`Shared`] state, so tests call it in process.
//! One module per resource; JSON in and out; a body is a JSON object ([`Body`]) of at most
//! 64 KiB, with `Content-Type: application/json`; every failure is an [`ApiError`] —
//! `{"error": "..."}` with the status its kind maps to. Connection strings never leave:
//! databases carry only `connection_string_redacted`.

pub mod actions;
pub mod body;
pub mod config;
pub mod databases;
pub mod detections;
pub mod error;
pub mod ledger;
pub mod metrics;
pub mod openapi;
pub mod queries;
pub mod schema;
pub mod session;
pub mod system;
pub mod tables;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use lifecycle::health::Health;
use lifecycle::readiness;
use proto::clients::Knowledge;
use proto::error::Error;
use proto::executor::executor_service_client::ExecutorServiceClient;
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use serde::Deserialize;
use tonic::transport::Channel;

pub use body::Body;
pub use error::ApiError;

use crate::auth::Auth;
use crate::live::Live;
use crate::webhooks::Webhooks;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// How long the executor may take to answer a decision.
const EXECUTOR_DEADLINE: Duration = Duration::from_secs(5);

/// What every handler reads: the clients of knowledge and the executor, the live follower, the
/// token, the webhooks.
pub struct Shared {
    pub knowledge: Knowledge,
    pub executor: Executor,
    pub nats: async_nats::Client,
    pub live: Arc<Live>,
    pub auth: Arc<Auth>,
    pub webhooks: Arc<Webhooks>,
    pub http: reqwest::Client,
    pub service_health: Vec<(&'static str, String)>,
    pub started: Instant,
}

pub type AppState = Arc<Shared>;

pub type Reply<T> = Result<T, ApiError>;

impl Shared {
    /// Calls knowledge's `rpc` within its deadline; a failure names knowledge and keeps its kind.
    pub async fn knowledge<T, F, Fut>(&self, rpc: &'static str, call: F) -> Result<T, Error>
    where
        F: FnOnce(KnowledgeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.knowledge
            .call(rpc, call)
            .await
            .map_err(|e| e.context("knowledge"))
    }
}

/// The executor's client with a deadline and the error classification of `proto::error`, as
/// `proto::clients::Knowledge` is knowledge's.
#[derive(Clone)]
pub struct Executor {
    client: ExecutorServiceClient<Channel>,
    deadline: Duration,
}

impl Executor {
    pub fn new(client: ExecutorServiceClient<Channel>) -> Self {
        Self {
            client,
            deadline: EXECUTOR_DEADLINE,
        }
    }

    /// Calls `rpc` within the deadline; a failure names the executor and keeps its kind.
    pub async fn call<T, F, Fut>(&self, rpc: &'static str, call: F) -> Result<T, Error>
    where
        F: FnOnce(ExecutorServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let result = match tokio::time::timeout(self.deadline, call(self.client.clone())).await {
            Err(_) => Err(Error::timed_out(rpc, self.deadline)),
            Ok(Err(status)) => Err(Error::from_status(rpc, status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        };
        result.map_err(|e| e.context("executor"))
    }
}

/// The query string the list endpoints share; each reads the fields it needs.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub database_id: String,
    #[serde(default)]
    pub detection_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub limit: Option<i32>,
    #[serde(default)]
    pub enabled_only: Option<bool>,
}

/// Unix seconds as RFC 3339 (UTC), or empty for 0 ("never"), as the original's API had it.
pub fn instant(unix: i64) -> String {
    if unix <= 0 {
        String::new()
    } else {
        proto::events::rfc3339(unix)
    }
}

/// Every route of the gateway: the REST API, `/events`, `/metrics`, health and readiness,
/// behind the token guard and the body limit.
pub fn router(state: AppState) -> Router {
    let ready_knowledge = state.knowledge.raw();
    let health = Health::new("gateway")
        .with_readiness_check(move || Box::pin(readiness::knowledge(ready_knowledge.clone())));
    let auth = state.auth.clone();
    Router::new()
        .route("/metrics/latest", get(metrics::latest))
        .route("/metrics/history", get(metrics::history))
        .route("/metrics", get(metrics::prometheus))
        .route("/queries", get(queries::list))
        .route("/detections", get(detections::list))
        .route("/actions", get(actions::list))
        .route("/actions/{id}/{decision}", post(actions::decide))
        .route("/ledger", get(ledger::list))
        .route("/databases", get(databases::list).post(databases::create))
        .route("/databases/test", post(databases::test))
        .route("/databases/doctor", post(databases::doctor_unregistered))
        .route("/databases/{id}/doctor", get(databases::doctor_registered))
        .route("/databases/{id}/tables", get(tables::list))
        .route(
            "/databases/{id}",
            get(databases::get)
                .put(databases::update)
                .delete(databases::delete),
        )
        .route("/config", get(config::get).post(config::save))
        .route("/status", get(system::status))
        .route("/flush", post(system::flush))
        .route("/events", get(system::events))
        .route("/auth/login", post(session::login))
        .route("/auth/logout", post(session::logout))
        .route("/auth/me", get(session::me))
        .route("/openapi.json", get(openapi::serve))
        .with_state(state)
        .merge(health.router())
        .layer(axum::middleware::from_fn_with_state(auth, session::require))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}
