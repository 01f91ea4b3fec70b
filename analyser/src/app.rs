//! Builds the analyser (binds its listeners, so tests can use port 0) and runs it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use lifecycle::health::{Health, Report};
use lifecycle::net::{self, BindError};
use lifecycle::{Shutdown, readiness};
use proto::clients::Knowledge;
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use proto::metrics::metrics_service_server::MetricsServiceServer;
use tokio::net::TcpListener;
use tracing::info;

use crate::advisor::Advisor;
use crate::advisor::planner::Planner;
use crate::config::Config;
use crate::grpc::MetricsGrpc;
use crate::pipeline::{self, Analysed, Pipeline};
use crate::thresholds::{ThresholdSource, Thresholds};
use crate::verification::Verifier;

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
    #[error("health server failed: {0}")]
    Health(std::io::Error),
}

pub struct App {
    /// The gRPC server, with TLS when `GRPC_TLS_CERT`/`GRPC_TLS_KEY` are set.
    server: tonic::transport::Server,
    grpc: TcpListener,
    health: TcpListener,
    health_service: Health,
    pipeline: Arc<Pipeline>,
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
        let ready_knowledge = knowledge.raw();
        let analysed = Analysed::default();
        let shown = analysed.clone();
        let mut registry = lifecycle::metrics::registry();
        analysed.register(&mut registry);
        let health_service = Health::new("analyser")
            .with_metrics(registry)
            .with_health_check(move || {
                let counts = shown.to_json();
                Box::pin(async move { Report::ok().with("snapshots_analysed", counts) })
            })
            .with_readiness_check(move || Box::pin(readiness::knowledge(ready_knowledge.clone())));
        let nats = config
            .nats
            .connect("analyser")
            .await
            .map_err(AppError::Nats)?;
        let jetstream = async_nats::jetstream::new(nats.clone());
        let verifier = Arc::new(Verifier::new(knowledge.clone(), nats));
        tokio::spawn(
            verifier
                .clone()
                .consume(jetstream.clone(), shutdown.clone()),
        );
        let stream_setup = jetstream.clone();
        let stop_setup = shutdown.clone();
        // NATS may come up after us: the stream is created as soon as it answers (or never, if
        // we are stopped first).
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_millis(500);
            while let Err(error) = pipeline::ensure_stream(&stream_setup).await {
                tracing::warn!(%error, "cannot create the detections stream yet; retrying");
                tokio::select! {
                    () = stop_setup.wait() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
        });
        if !config.enable_all_detectors {
            tracing::warn!(
                "ENABLE_ALL_DETECTORS=false: snapshots are acknowledged, no detector runs"
            );
        }
        let pipeline = Arc::new(Pipeline {
            detectors_enabled: config.enable_all_detectors,
            thresholds: ThresholdSource::new(
                knowledge.clone(),
                Thresholds::from_fallback(&config.thresholds),
            ),
            advisor: Advisor::new(Planner::new(knowledge.clone())),
            verifier,
            session_watch: Default::default(),
            knowledge,
            jetstream,
            analysed,
            unsettled: Default::default(),
        });
        Ok(Self {
            server: config.grpc_tls.server().map_err(AppError::GrpcTls)?,
            grpc: net::bind(config.grpc_addr).await?,
            health: net::bind(config.health_addr).await?,
            health_service,
            pipeline,
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
            "analyser health",
            self.health,
            self.health_service.router(),
            self.shutdown.clone(),
        );
        let mut server = self.server;
        let router = server.add_service(MetricsServiceServer::new(MetricsGrpc::new(self.pipeline)));
        let grpc = net::serve_grpc("analyser grpc", router, self.grpc, self.shutdown);
        let (health, grpc) = tokio::join!(health, grpc);
        health.map_err(AppError::Health)?;
        grpc?;
        info!("analyser stopped");
        Ok(())
    }
}
