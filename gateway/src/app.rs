//! Builds the gateway (binds its HTTP listener, so tests can use port 0) and runs it until
//! shutdown: the REST API, `/events`, `/metrics`, health, the NATS follower and the webhooks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use lifecycle::Shutdown;
use lifecycle::net::{self, BindError};
use proto::clients::Knowledge;
use proto::executor::executor_service_client::ExecutorServiceClient;
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use tokio::net::TcpListener;
use tracing::info;

use crate::api::{self, AppState, Executor, Shared};
use crate::auth::{Auth, AuthError};
use crate::config::Config;
use crate::live::Live;
use crate::webhooks::Webhooks;

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
    #[error(transparent)]
    Token(#[from] AuthError),
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
        let state = state(&config).await?;
        Ok(Self {
            listener: net::bind(config.http_addr).await?,
            router: api::router(state.clone()),
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

/// What the handlers share, made from the settings: lazily connecting clients of knowledge and
/// the executor, the NATS client (reconnecting by itself), the token (generated and printed once
/// when none is set). Nothing is bound: `api::router(state)` serves it in process.
pub async fn state(config: &Config) -> Result<AppState, AppError> {
    let knowledge = Knowledge::new(KnowledgeServiceClient::new(
        config
            .grpc_tls
            .channel(&config.knowledge_address)
            .map_err(AppError::KnowledgeAddress)?,
    ));
    let executor = Executor::new(ExecutorServiceClient::new(
        config
            .grpc_tls
            .channel(&config.executor_address)
            .map_err(AppError::ExecutorAddress)?,
    ));
    let (auth, generated) = Auth::load(config.token.clone(), &config.state_dir, config.auth_reads)?;
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
    let webhooks = Arc::new(Webhooks::new(
        knowledge.clone(),
        auth.clone(),
        config.webhook_allow_private,
    ));
    Ok(Arc::new(Shared {
        knowledge,
        executor,
        nats,
        live: Arc::new(Live::new(config.history_points)),
        auth,
        webhooks,
        http: reqwest::Client::new(),
        service_health: vec![
            ("collector", config.collector_health_url.clone()),
            ("analyser", config.analyser_health_url.clone()),
        ],
        started: Instant::now(),
    }))
}
