//! Builds the knowledge service (binds its listeners, so tests can use port 0) and runs it until
//! shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use lifecycle::Shutdown;
use lifecycle::health::{Health, Report};
use lifecycle::shutdown::DRAIN_DEADLINE;
use proto::knowledge::knowledge_service_server::KnowledgeServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

use crate::config::Config;
use crate::crypto::{CryptoError, SecretBox};
use crate::error::KnowledgeError;
use crate::grpc::KnowledgeGrpc;
use crate::store::Store;

/// Longest a single RPC may take before the client gets DEADLINE_EXCEEDED.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] KnowledgeError),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("health server failed: {0}")]
    Health(std::io::Error),
}

pub struct App {
    store: Store,
    grpc: TcpListener,
    health: TcpListener,
    shutdown: Shutdown,
}

impl App {
    pub async fn build(config: Config, shutdown: Shutdown) -> Result<Self, AppError> {
        let secrets = SecretBox::load(config.secret_key.as_deref(), &config.key_file)?;
        let store = Store::new(
            &config.redis_url,
            secrets,
            config.resolved_detection_ttl,
            config.initial_execution_mode,
        )?;
        if let Err(error) = store.ping().await {
            tracing::warn!(%error, "redis does not answer yet; serving and retrying on each request");
        }
        Ok(Self {
            store,
            grpc: bind(config.grpc_addr).await?,
            health: bind(config.health_addr).await?,
            shutdown,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        local_addr(&self.grpc)
    }

    pub fn health_addr(&self) -> SocketAddr {
        local_addr(&self.health)
    }

    /// Serves until shutdown, then drains both servers within the deadline.
    pub async fn run(self) -> Result<(), AppError> {
        let health_store = self.store.clone();
        let health = Health::new("knowledge").with_health_check(move || {
            let store = health_store.clone();
            Box::pin(async move { redis_report(&store).await })
        });
        let ready_store = self.store.clone();
        let health = health.with_readiness_check(move || {
            let store = ready_store.clone();
            Box::pin(async move { redis_report(&store).await })
        });
        let health_server = lifecycle::http::serve(
            "knowledge health",
            self.health,
            health.router(),
            self.shutdown.clone(),
        );

        let grpc_server = tonic::transport::Server::builder()
            .timeout(RPC_TIMEOUT)
            .add_service(KnowledgeServiceServer::new(KnowledgeGrpc::new(self.store)))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(self.grpc),
                self.shutdown.signal(),
            );
        let grpc_server = self
            .shutdown
            .drain("knowledge grpc", DRAIN_DEADLINE, grpc_server);

        let (health_result, grpc_result) = tokio::join!(health_server, grpc_server);
        health_result.map_err(AppError::Health)?;
        grpc_result.transpose()?;
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

async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound TCP listener has a local address")
}
