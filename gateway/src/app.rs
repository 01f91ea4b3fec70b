//! Builds the gateway (binds its HTTP listener, so tests can use port 0) and runs it until
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
    #[error("http server failed: {0}")]
    Http(std::io::Error),
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
        let health_service = Health::new("gateway")
            .with_readiness_check(move || Box::pin(readiness::knowledge(knowledge.clone())));
        Ok(Self {
            health: net::bind(config.http_addr).await?,
            health_service,
            shutdown,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        net::local_addr(&self.health)
    }

    pub async fn run(self) -> Result<(), AppError> {
        lifecycle::http::serve(
            "gateway http",
            self.health,
            self.health_service.router(),
            self.shutdown,
        )
        .await
        .map_err(AppError::Http)?;
        info!("gateway stopped");
        Ok(())
    }
}
