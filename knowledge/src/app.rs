//! Builds the knowledge service (binds its listeners, so tests can use port 0) and runs it until
//! shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use lifecycle::Shutdown;
use lifecycle::health::{Health, Report};
use lifecycle::net::{self, BindError};
use proto::knowledge::knowledge_service_server::KnowledgeServiceServer;
use tokio::net::TcpListener;
use tracing::info;

use crate::config::Config;
use crate::crypto::{CryptoError, SecretBox};
use crate::error::KnowledgeError;
use crate::grpc::KnowledgeGrpc;
use crate::metrics::RpcMetrics;
use crate::store::Store;

/// Longest a single RPC may take before the client gets DEADLINE_EXCEEDED.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] KnowledgeError),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("invalid GRPC_TLS_CERT/GRPC_TLS_KEY: {0}")]
    GrpcTls(tonic::transport::Error),
    #[error("health server failed: {0}")]
    Health(std::io::Error),
}

pub struct App {
    store: Store,
    /// The gRPC server, with TLS when `GRPC_TLS_CERT`/`GRPC_TLS_KEY` are set.
    server: tonic::transport::Server,
    grpc: TcpListener,
    health: TcpListener,
    shutdown: Shutdown,
}

impl App {
    pub async fn build(config: Config, shutdown: Shutdown) -> Result<Self, AppError> {
        let secrets = SecretBox::load(config.secret_key.as_deref(), &config.key_file)?;
        let store = Store::new(
            &config.redis_url,
            config.redis_tls.clone(),
            secrets,
            config.resolved_detection_ttl,
            config.initial_execution_mode,
        )?;
        if let Err(error) = store.ping().await {
            tracing::warn!(%error, "redis does not answer yet; serving and retrying on each request");
        }
        Ok(Self {
            store,
            server: config.grpc_tls.server().map_err(AppError::GrpcTls)?,
            grpc: net::bind(config.grpc_addr).await?,
            health: net::bind(config.health_addr).await?,
            shutdown,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        net::local_addr(&self.grpc)
    }

    pub fn health_addr(&self) -> SocketAddr {
        net::local_addr(&self.health)
    }

    /// Serves until shutdown, then drains both servers within the deadline.
    pub async fn run(self) -> Result<(), AppError> {
        let health_store = self.store.clone();
        let health = Health::new("knowledge").with_health_check(move || {
            let store = health_store.clone();
            Box::pin(async move { redis_report(&store).await })
        });
        let ready_store = self.store.clone();
        let rpcs = RpcMetrics::default();
        let mut registry = lifecycle::metrics::registry();
        rpcs.register(&mut registry);
        let health = health
            .with_readiness_check(move || {
                let store = ready_store.clone();
                Box::pin(async move { redis_report(&store).await })
            })
            .with_metrics(registry);
        let health_server = lifecycle::http::serve(
            "knowledge health",
            self.health,
            health.router(),
            self.shutdown.clone(),
        );

        let router = self
            .server
            .timeout(RPC_TIMEOUT)
            .add_service(rpcs.timed(KnowledgeServiceServer::new(KnowledgeGrpc::new(self.store))));
        let grpc_server = net::serve_grpc("knowledge grpc", router, self.grpc, self.shutdown);

        let (health_result, grpc_result) = tokio::join!(health_server, grpc_server);
        health_result.map_err(AppError::Health)?;
        grpc_result?;
        info!("knowledge stopped");
        Ok(())
    }
}

async fn redis_report(store: &Store) -> Report {
    match tokio::time::timeout(Duration::from_secs(2), store.ping()).await {
        Ok(Ok(())) => Report::ok().with("redis", "connected"),
        Ok(Err(error)) => Report::failing()
            .with("redis", "disconnected")
            .with("error", error.to_string()),
        Err(_) => Report::failing()
            .with("redis", "disconnected")
            .with("error", "redis did not answer PING within 2 s"),
    }
}
