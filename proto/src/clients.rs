//! Lazily connected gRPC clients: a service starts before its peers and reconnects by itself.

use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::executor::executor_service_client::ExecutorServiceClient;
use crate::knowledge::knowledge_service_client::KnowledgeServiceClient;
use crate::knowledge::{GetSystemConfigRequest, SystemConfig};
use crate::metrics::metrics_service_client::MetricsServiceClient;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A plain-text channel to `host:port` (or a full `http://` URL) that connects on first use.
pub fn channel(address: &str) -> Result<Channel, tonic::transport::Error> {
    secure_channel(address, None)
}

/// A channel that uses TLS when `tls` is given: `host:port` then means `https://host:port`, and
/// the server's certificate must name that host.
pub fn secure_channel(
    address: &str,
    tls: Option<&ClientTlsConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("{scheme}://{address}")
    };
    let mut endpoint = Endpoint::from_shared(uri)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Some(Duration::from_secs(30)));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.clone())?;
    }
    Ok(endpoint.connect_lazy())
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

/// Knowledge's configuration, asked with a deadline; the error says which of the two failed.
pub async fn system_config(
    knowledge: &KnowledgeServiceClient<Channel>,
    deadline: Duration,
) -> Result<SystemConfig, String> {
    let mut knowledge = knowledge.clone();
    tokio::time::timeout(
        deadline,
        knowledge.get_system_config(GetSystemConfigRequest {}),
    )
    .await
    .map_err(|_| "knowledge did not answer GetSystemConfig".to_owned())?
    .map(tonic::Response::into_inner)
    .map_err(|s| format!("GetSystemConfig: {}", s.message()))
}
