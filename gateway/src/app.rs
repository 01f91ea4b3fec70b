//! Builds the gateway (binds its HTTP listener, so tests can use port 0) and runs it until
//! shutdown.

use std::net::SocketAddr;

use lifecycle::health::Health;
use lifecycle::{Shutdown, readiness};
use tokio::net::TcpListener;
use tracing::info;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
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
        let health = TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.http_addr,
                source,
            })?;
        Ok(Self {
            health,
            health_service,
            shutdown,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.health
            .local_addr()
            .expect("a bound TCP listener has a local address")
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
