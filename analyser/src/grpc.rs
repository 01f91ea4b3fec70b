//! The `proto.MetricsService` server: every snapshot of a stream has its table list made whole
//! (`tables_view`) and goes through the pipeline, in order; the stream is acknowledged with the
//! count received. RegisterDatabase answers
//! UNIMPLEMENTED: databases are registered in knowledge.

use std::sync::Arc;

use proto::metrics::metrics_service_server::MetricsService;
use proto::metrics::{DatabaseInfo, MetricSnapshot, MetricsAck, RegistrationAck};
use tonic::{Request, Response, Status, Streaming};

use crate::pipeline::Pipeline;
use crate::tables_view::TablesView;

pub struct MetricsGrpc {
    pipeline: Arc<Pipeline>,
    tables: TablesView,
}

impl MetricsGrpc {
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        Self {
            pipeline,
            tables: TablesView::default(),
        }
    }
}

#[tonic::async_trait]
impl MetricsService for MetricsGrpc {
    async fn register_database(
        &self,
        _request: Request<DatabaseInfo>,
    ) -> Result<Response<RegistrationAck>, Status> {
        Err(Status::unimplemented(
            "RegisterDatabase is not implemented: databases are registered in knowledge",
        ))
    }

    async fn stream_metrics(
        &self,
        request: Request<Streaming<MetricSnapshot>>,
    ) -> Result<Response<MetricsAck>, Status> {
        let mut stream = request.into_inner();
        let mut received = 0;
        while let Some(mut snapshot) = stream.message().await? {
            received += 1;
            self.tables.apply(&mut snapshot);
            self.pipeline.process(&snapshot).await;
        }
        Ok(Response::new(MetricsAck {
            total_metrics: received,
            status: "healthy".into(),
        }))
    }
}
