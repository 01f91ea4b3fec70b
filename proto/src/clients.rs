//! Lazily connected gRPC clients: a service starts before its peers and reconnects by itself.

use std::future::Future;
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::error::Error;
use crate::executor::executor_service_client::ExecutorServiceClient;
use crate::knowledge::knowledge_service_client::KnowledgeServiceClient;
use crate::knowledge::{GetDatabaseRequest, GetSystemConfigRequest, SystemConfig};
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

/// How long a call to knowledge may take before it counts as unavailable.
pub const KNOWLEDGE_DEADLINE: Duration = Duration::from_secs(5);

/// Knowledge's client with the deadline and the error classification built in: every call
/// answers within its deadline, and a failure is a [`crate::error::Error`] of the peer's kind
/// (knowledge down stays `Unavailable`, a refusal stays `InvalidInput` or `Conflict`).
#[derive(Clone)]
pub struct Knowledge {
    client: KnowledgeServiceClient<Channel>,
    deadline: Duration,
}

impl Knowledge {
    /// A lazily connecting client to `address` (`host:port` or a URL).
    pub fn connect(address: &str) -> Result<Self, tonic::transport::Error> {
        Ok(Self::new(knowledge(address)?))
    }

    pub fn new(client: KnowledgeServiceClient<Channel>) -> Self {
        Self {
            client,
            deadline: KNOWLEDGE_DEADLINE,
        }
    }

    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The generated client, for callers that manage deadlines themselves (streams).
    pub fn raw(&self) -> KnowledgeServiceClient<Channel> {
        self.client.clone()
    }

    /// Calls `rpc` (its name, for the error) within the deadline.
    ///
    /// For example `knowledge.call("GetAction", |mut k| async move { k.get_action(request).await })`.
    pub async fn call<T, F, Fut>(&self, rpc: &'static str, call: F) -> Result<T, Error>
    where
        F: FnOnce(KnowledgeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.deadline, call(self.client.clone())).await {
            Err(_) => Err(Error::timed_out(rpc, self.deadline)),
            Ok(Err(status)) => Err(Error::from_status(rpc, status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// A registered database's connection string, decrypted (only the services that connect to
    /// it ask); `None` when the database is not registered or has none.
    pub async fn connection_string(&self, database_id: &str) -> Result<Option<String>, Error> {
        let request = GetDatabaseRequest {
            database_id: database_id.to_owned(),
            include_connection_string: true,
        };
        let reply = self
            .call("GetDatabase", |mut k| async move {
                k.get_database(request).await
            })
            .await?;
        Ok(Some(reply.connection_string).filter(|c| reply.found && !c.is_empty()))
    }

    /// Knowledge's configuration.
    pub async fn system_config(&self) -> Result<SystemConfig, Error> {
        self.call("GetSystemConfig", |mut k| async move {
            k.get_system_config(GetSystemConfigRequest {}).await
        })
        .await
    }
}

/// Knowledge's configuration, asked with a deadline; the error says which of the two failed.
pub async fn system_config(
    knowledge: &KnowledgeServiceClient<Channel>,
    deadline: Duration,
) -> Result<SystemConfig, Error> {
    Knowledge::new(knowledge.clone())
        .with_deadline(deadline)
        .system_config()
        .await
}
