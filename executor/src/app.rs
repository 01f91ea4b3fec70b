//! Builds the executor (binds its listeners, so tests can use port 0) and runs it until shutdown.

use std::net::SocketAddr;

use lifecycle::health::Health;
use lifecycle::net::{self, BindError};
use lifecycle::{Shutdown, readiness};
use proto::executor::executor_service_server::ExecutorServiceServer;
use tokio::net::TcpListener;
use tracing::info;

use crate::config::Config;
use crate::grpc::ExecutorGrpc;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Bind(#[from] BindError),
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
            grpc: net::bind(config.grpc_addr).await?,
            health: net::bind(config.health_addr).await?,
            health_service,
            shutdown,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        net::local_addr(&self.grpc)
    }

    pub fn health_addr(&self) -> SocketAddr {
        net::local_addr(&self.health)
    }

    pub async fn run(self) -> Result<(), AppError> {
        let health = lifecycle::http::serve(
            "executor health",
            self.health,
            self.health_service.router(),
            self.shutdown.clone(),
        );
        let router = tonic::transport::Server::builder()
            .add_service(ExecutorServiceServer::new(ExecutorGrpc::new()));
        let grpc = net::serve_grpc("executor grpc", router, self.grpc, self.shutdown);
        let (health, grpc) = tokio::join!(health, grpc);
        health.map_err(AppError::Health)?;
        grpc?;
        info!("executor stopped");
        Ok(())
    }
}
