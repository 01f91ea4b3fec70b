//! Builds the executor (binds its listeners, so tests can use port 0) and runs it until shutdown:
//! gRPC, the action API, health, the detections consumer, the decisions subscriber, and the
//! start-up recovery of actions a stopped executor left behind.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lifecycle::health::Health;
use lifecycle::net::{self, BindError};
use lifecycle::{Shutdown, readiness};
use proto::executor::executor_service_server::ExecutorServiceServer;
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::actions::deploy::Deploy;
use crate::actions::docker::Docker;
use crate::actions::terminate::Policy;
use crate::config::{Config, DeployBackend};
use crate::engine::{Engine, Settings};
use crate::grpc::ExecutorGrpc;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("invalid KNOWLEDGE_ADDRESS: {0}")]
    KnowledgeAddress(tonic::transport::Error),
    #[error("invalid NATS_URL: {0}")]
    Nats(async_nats::ConnectError),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("invalid GRPC_TLS_CERT/GRPC_TLS_KEY: {0}")]
    GrpcTls(tonic::transport::Error),
    #[error("{0} server failed: {1}")]
    Http(&'static str, std::io::Error),
}

pub struct App {
    /// The gRPC server, with TLS when `GRPC_TLS_CERT`/`GRPC_TLS_KEY` are set.
    server: tonic::transport::Server,
    grpc: TcpListener,
    health: TcpListener,
    http: TcpListener,
    health_service: Health,
    engine: Arc<Engine>,
    knowledge: proto::knowledge::knowledge_service_client::KnowledgeServiceClient<
        tonic::transport::Channel,
    >,
    nats: async_nats::Client,
    shutdown: Shutdown,
    /// How long running actions may take to finish at shutdown.
    drain: Duration,
}

impl App {
    pub async fn build(config: Config, shutdown: Shutdown) -> Result<Self, AppError> {
        let knowledge = KnowledgeServiceClient::new(
            config
                .grpc_tls
                .channel(&config.knowledge_address)
                .map_err(AppError::KnowledgeAddress)?,
        );
        let ready_knowledge = knowledge.clone();
        let nats = config
            .nats
            .connect("executor")
            .await
            .map_err(AppError::Nats)?;
        let engine = Engine::with_deploy(
            knowledge.clone(),
            nats.clone(),
            Settings {
                executor_id: config.executor_id.clone(),
                max_concurrent_actions: config.max_concurrent_actions,
                action_timeout: config.action_timeout,
                auto_execution: config.enable_auto_execution,
                state_dir: config.state_dir.clone(),
                policy: Policy {
                    terminate_after_cancel: config.terminate_after_cancel,
                    superusers: config.terminate_superusers,
                },
            },
            deploy(&config.deploy_backend).await,
        );
        let mut registry = lifecycle::metrics::registry();
        engine.metrics.register(&mut registry);
        let health_service = Health::new("executor")
            .with_metrics(registry)
            .with_readiness_check(move || Box::pin(readiness::knowledge(ready_knowledge.clone())));
        Ok(Self {
            server: config.grpc_tls.server().map_err(AppError::GrpcTls)?,
            grpc: net::bind(config.grpc_addr).await?,
            health: net::bind(config.health_addr).await?,
            http: net::bind(config.http_addr).await?,
            health_service,
            engine,
            knowledge,
            nats,
            shutdown,
            drain: config.shutdown_drain,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        net::local_addr(&self.grpc)
    }

    pub fn health_addr(&self) -> SocketAddr {
        net::local_addr(&self.health)
    }

    pub fn http_addr(&self) -> SocketAddr {
        net::local_addr(&self.http)
    }

    pub async fn run(self) -> Result<(), AppError> {
        // Recovery first (retried until knowledge answers), then new work.
        let recovering = {
            let engine = self.engine.clone();
            let shutdown = self.shutdown.clone();
            let jetstream = async_nats::jetstream::new(self.nats.clone());
            let nats = self.nats.clone();
            tokio::spawn(async move {
                let mut wait = Duration::from_millis(500);
                loop {
                    match engine.recover().await {
                        Ok(()) => break,
                        Err(error) => warn!(%error, "cannot recover actions yet; retrying"),
                    }
                    tokio::select! {
                        () = shutdown.wait() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                tokio::join!(
                    crate::consumer::detections(engine.clone(), jetstream, shutdown.clone()),
                    crate::consumer::decisions(engine, nats, shutdown),
                );
            })
        };
        let health = lifecycle::http::serve(
            "executor health",
            self.health,
            self.health_service.router(),
            self.shutdown.clone(),
        );
        let api = lifecycle::http::serve(
            "executor api",
            self.http,
            crate::http::router(self.engine.clone()),
            self.shutdown.clone(),
        );
        let mut server = self.server;
        let router = server.add_service(ExecutorServiceServer::new(ExecutorGrpc::new(
            self.engine.clone(),
            self.knowledge,
        )));
        let grpc = net::serve_grpc("executor grpc", router, self.grpc, self.shutdown.clone());
        // Shutdown: the consumer stops fetching and the servers stop taking requests, then the
        // actions in flight finish within the drain deadline or are cancelled and recorded.
        let (health, api, grpc) = tokio::join!(health, api, grpc);
        self.shutdown.trigger();
        self.engine.drain(self.drain).await;
        recovering.abort();
        health.map_err(|e| AppError::Http("health", e))?;
        api.map_err(|e| AppError::Http("action API", e))?;
        grpc?;
        info!("executor stopped");
        Ok(())
    }
}

/// The backend for deployed helpers. The Docker engine is asked once whether it answers: an
/// executor starts without it (deployments fail, saying why, until it answers).
async fn deploy(backend: &DeployBackend) -> Deploy {
    match backend {
        DeployBackend::Process => Deploy::Process,
        DeployBackend::Docker(settings) => {
            let docker = Docker::new(settings.clone());
            match docker.ping().await {
                Ok(version) => {
                    info!(engine = %docker.describe(), %version, "deploying helpers as containers")
                }
                Err(error) => {
                    warn!(engine = %docker.describe(), %error, "the Docker engine does not answer; deployments fail until it does")
                }
            }
            Deploy::Docker(Arc::new(docker))
        }
    }
}
