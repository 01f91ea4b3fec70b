//! Lazily connected gRPC clients: a service starts before its peers and reconnects by itself.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::executor::executor_service_client::ExecutorServiceClient;
use crate::knowledge::knowledge_service_client::KnowledgeServiceClient;
use crate::metrics::metrics_service_client::MetricsServiceClient;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A channel to `host:port` (or a full `http://` URL) that connects on first use.
pub fn channel(address: &str) -> Result<Channel, tonic::transport::Error> {
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    Ok(Endpoint::from_shared(uri)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .connect_lazy())
}

pub fn knowledge(
    address: &str,
) -> Result<KnowledgeServiceClient<Channel>, tonic::transport::Error> {
    Ok(KnowledgeServiceClient::new(channel(address)?))
}

pub fn executor(address: &str) -> Result<ExecutorServiceClient<Channel>, tonic::transport::Error> {
    Ok(ExecutorServiceClient::new(channel(address)?))
}

pub fn metrics(address: &str) -> Result<MetricsServiceClient<Channel>, tonic::transport::Error> {
    Ok(MetricsServiceClient::new(channel(address)?))
}
