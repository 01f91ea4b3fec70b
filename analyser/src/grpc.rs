//! The `proto.MetricsService` server. Both RPCs answer UNIMPLEMENTED until the detectors exist:
//! never a fake acknowledgement.

use proto::metrics::metrics_service_server::MetricsService;
use proto::metrics::{DatabaseInfo, MetricSnapshot, MetricsAck, RegistrationAck};
use tonic::{Request, Response, Status, Streaming};

#[derive(Debug, Default)]
pub struct MetricsGrpc;

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
        _request: Request<Streaming<MetricSnapshot>>,
    ) -> Result<Response<MetricsAck>, Status> {
        Err(Status::unimplemented(
            "StreamMetrics is not implemented yet: the detectors arrive with the analyser issue",
        ))
    }
}
