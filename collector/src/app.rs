//! Builds the collector (binds its health listener, so tests can use port 0) and runs the
//! orchestrator and the health server until shutdown.

use std::net::SocketAddr;

use lifecycle::health::{Health, Report};
use lifecycle::net::{self, BindError};
use lifecycle::{Shutdown, readiness};
use proto::clients::Knowledge;
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use tokio::net::TcpListener;
use tracing::info;

use crate::config::Config;
use crate::metrics::CollectorMetrics;
use crate::orchestrator::{Orchestrator, Status};
use crate::outputs::Outputs;

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
    orchestrator: Orchestrator,
    shutdown: Shutdown,
}

impl App {
    pub async fn build(config: Config, shutdown: Shutdown) -> Result<Self, AppError> {
        let knowledge = Knowledge::new(KnowledgeServiceClient::new(
            config
                .grpc_tls
                .channel(&config.knowledge_address)
                .map_err(AppError::KnowledgeAddress)?,
        ));
        let outputs = Outputs::start(
            config.analyser_address.clone(),
            config.grpc_tls.clone(),
            config.publish_metrics.then(|| config.nats.clone()),
            knowledge.clone(),
            shutdown.clone(),
        )
        .await;
        let status = Status::default();
        let shown = status.clone();
        let ready_knowledge = knowledge.raw();
        let metrics = CollectorMetrics::default();
        let mut registry = lifecycle::metrics::registry();
        metrics.register(&mut registry);
        let health_service = Health::new("collector")
            .with_metrics(registry)
            .with_health_check(move || {
                let databases = shown.to_json();
                Box::pin(async move { Report::ok().with("databases", databases) })
            })
            .with_readiness_check(move || Box::pin(readiness::knowledge(ready_knowledge.clone())));
        let orchestrator = Orchestrator {
            knowledge,
            collector_id: config.collector_id.clone(),
            outputs,
            status,
            collection_interval: config.collection_interval,
            sync_interval: config.sync_interval,
            metrics,
            shutdown: shutdown.clone(),
        };
        Ok(Self {
            health: net::bind(config.health_addr).await?,
            health_service,
            orchestrator,
            shutdown,
        })
    }

    pub fn health_addr(&self) -> SocketAddr {
        net::local_addr(&self.health)
    }

    pub async fn run(self) -> Result<(), AppError> {
        let health = lifecycle::http::serve(
            "collector health",
            self.health,
            self.health_service.router(),
            self.shutdown,
        );
        let (health, ()) = tokio::join!(health, self.orchestrator.run());
        health.map_err(AppError::Health)?;
        info!("collector stopped");
        Ok(())
    }
}
