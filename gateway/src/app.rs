//! Builds the gateway (binds its HTTP listener, so tests can use port 0) and runs it until
//! shutdown: the REST API, `/events`, `/metrics`, health, the NATS follower and the webhooks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use lifecycle::health::Health;
use lifecycle::net::{self, BindError};
use lifecycle::{Shutdown, readiness};
use proto::executor::executor_service_client::ExecutorServiceClient;
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use tokio::net::TcpListener;
use tracing::info;

use crate::api::{self, AppState, State_};
use crate::auth::{self, Auth};
use crate::config::Config;
use crate::doctor;
use crate::live::Live;
use crate::webhooks::Webhooks;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("invalid KNOWLEDGE_ADDRESS: {0}")]
    KnowledgeAddress(tonic::transport::Error),
    #[error("invalid EXECUTOR_ADDRESS: {0}")]
    ExecutorAddress(tonic::transport::Error),
    #[error("invalid NATS_URL: {0}")]
    Nats(async_nats::ConnectError),
    #[error("{0}")]
    Token(String),
    #[error("http server failed: {0}")]
    Http(std::io::Error),
}

pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: Shutdown,
}

impl App {
    pub async fn build(config: Config, shutdown: Shutdown) -> Result<Self, AppError> {
        let knowledge = KnowledgeServiceClient::new(
            config
                .grpc_tls
                .channel(&config.knowledge_address)
                .map_err(AppError::KnowledgeAddress)?,
        );
        let executor = ExecutorServiceClient::new(
            config
                .grpc_tls
                .channel(&config.executor_address)
                .map_err(AppError::ExecutorAddress)?,
        );
        let (auth, generated) =
            Auth::load(config.token.clone(), &config.state_dir, config.auth_reads)
                .map_err(AppError::Token)?;
        if let Some(token) = generated {
            // Printed once, on the terminal of whoever started it; kept in STATE_DIR (0600).
            println!(
                "StartupMonkey gateway token (sign in with it; kept in {}/gateway.token): {token}",
                config.state_dir.display()
            );
        }
        let auth = Arc::new(auth);
        let nats = config
            .nats
            .connect("gateway")
            .await
            .map_err(AppError::Nats)?;
        let live = Arc::new(Live::new(config.history_points));
        let webhooks = Arc::new(Webhooks::new(
            knowledge.clone(),
            auth.clone(),
            config.webhook_allow_private,
        ));
        let state: AppState = Arc::new(State_ {
            knowledge: knowledge.clone(),
            executor,
            nats,
            live,
            auth: auth.clone(),
            webhooks,
            http: reqwest::Client::new(),
            service_health: vec![
                ("collector", config.collector_health_url.clone()),
                ("analyser", config.analyser_health_url.clone()),
            ],
            started: Instant::now(),
        });
        let ready_knowledge = knowledge.clone();
        let health = Health::new("gateway")
            .with_readiness_check(move || Box::pin(readiness::knowledge(ready_knowledge.clone())));
        let router = Router::new()
            .route("/metrics/latest", get(api::metrics_latest))
            .route("/metrics/history", get(api::metrics_history))
            .route("/metrics", get(api::prometheus))
            .route("/detections", get(api::detections))
            .route("/actions", get(api::actions))
            .route("/actions/{id}/{decision}", post(api::decide))
            .route("/ledger", get(api::ledger))
            .route("/databases", get(api::databases).post(api::create_database))
            .route("/databases/test", post(api::test_database))
            .route("/databases/doctor", post(doctor::unregistered))
            .route("/databases/{id}/doctor", get(doctor::registered))
            .route(
                "/databases/{id}",
                get(api::database)
                    .put(api::update_database)
                    .delete(api::delete_database),
            )
            .route("/config", get(api::get_config).post(api::save_config))
            .route("/status", get(api::status))
            .route("/flush", post(api::flush))
            .route("/events", get(api::events))
            .route("/auth/login", post(api::login))
            .route("/auth/logout", post(api::logout))
            .route("/auth/me", get(api::me))
            .with_state(state.clone())
            .merge(health.router())
            .layer(axum::middleware::from_fn_with_state(auth, auth::require))
            .layer(DefaultBodyLimit::max(BODY_LIMIT));
        Ok(Self {
            listener: net::bind(config.http_addr).await?,
            router,
            state,
            shutdown,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        net::local_addr(&self.listener)
    }

    pub async fn run(self) -> Result<(), AppError> {
        let follower = {
            let live = self.state.live.clone();
            let nats = self.state.nats.clone();
            let shutdown = self.shutdown.clone();
            tokio::spawn(async move { live.follow(nats, shutdown).await })
        };
        let hooks = tokio::spawn(
            self.state
                .webhooks
                .clone()
                .run(self.state.live.clone(), self.shutdown.clone()),
        );
        lifecycle::http::serve("gateway http", self.listener, self.router, self.shutdown)
            .await
            .map_err(AppError::Http)?;
        follower.abort();
        hooks.abort();
        info!("gateway stopped");
        Ok(())
    }
}
