//! Builds the collector (binds its health listener, so tests can use port 0) and runs it until
//! shutdown.

use std::net::SocketAddr;

use lifecycle::health::Health;
use lifecycle::net::{self, BindError};
use lifecycle::{Shutdown, readiness};
use tokio::net::TcpListener;
use tracing::info;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("invalid KNOWLEDGE_ADDRESS: {0}")]
    KnowledgeAddress(tonic::transport::Error),
    #[error("health server failed: {0}")]
    Health(std::io::Error),
}

pub struct App {
    health: TcpListener,
    health_service: Health,
    shutdown: Shutdown,
}

impl App {
    pub async fn build(config: Config, shutdown: Shutdown) -> Result<Self, AppError> {
        let knowledge = proto::clients::knowledge(&config.knowledge_address)
            .map_err(AppError::KnowledgeAddress)?;
        let health_service = Health::new("collector")
            .with_readiness_check(move || Box::pin(readiness::knowledge(knowledge.clone())));
        Ok(Self {
            health: net::bind(config.health_addr).await?,
            health_service,
            shutdown,
        })
    }

    pub fn health_addr(&self) -> SocketAddr {
        net::local_addr(&self.health)
    }

    pub async fn run(self) -> Result<(), AppError> {
        lifecycle::http::serve(
            "collector health",
            self.health,
            self.health_service.router(),
            self.shutdown,
        )
        .await
        .map_err(AppError::Health)?;
        info!("collector stopped");
        Ok(())
    }
}
