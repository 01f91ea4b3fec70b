//! Builds the executor (binds its listeners, so tests can use port 0) and runs it until shutdown.

use std::net::SocketAddr;

use lifecycle::health::Health;
use lifecycle::shutdown::DRAIN_DEADLINE;
use lifecycle::{Shutdown, readiness};
use proto::executor::executor_service_server::ExecutorServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

use crate::config::Config;
use crate::grpc::ExecutorGrpc;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid KNOWLEDGE_ADDRESS: {0}")]
    KnowledgeAddress(tonic::transport::Error),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("health server failed: {0}")]
    Health(std::io::Error),
}

pub struct App {
    grpc: TcpListener,
    health: TcpListener,
    health_service: Health,
    shutdown: Shutdown,
}

impl App {
    pub async fn build(config: Config, shutdown: Shutdown) -> Result<Self, AppError> {
        let knowledge = proto::clients::knowledge(&config.knowledge_address)
            .map_err(AppError::KnowledgeAddress)?;
        let health_service = Health::new("executor")
            .with_readiness_check(move || Box::pin(readiness::knowledge(knowledge.clone())));
        Ok(Self {
            grpc: bind(config.grpc_addr).await?,
            health: bind(config.health_addr).await?,
            health_service,
            shutdown,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        local_addr(&self.grpc)
    }

    pub fn health_addr(&self) -> SocketAddr {
        local_addr(&self.health)
    }

    pub async fn run(self) -> Result<(), AppError> {
        let health = lifecycle::http::serve(
            "executor health",
            self.health,
            self.health_service.router(),
            self.shutdown.clone(),
        );
        let grpc = tonic::transport::Server::builder()
            .add_service(ExecutorServiceServer::new(ExecutorGrpc::new()))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(self.grpc),
                self.shutdown.signal(),
            );
        let grpc = self.shutdown.drain("executor grpc", DRAIN_DEADLINE, grpc);
        let (health, grpc) = tokio::join!(health, grpc);
        health.map_err(AppError::Health)?;
        grpc.transpose()?;
        info!("executor stopped");
        Ok(())
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
