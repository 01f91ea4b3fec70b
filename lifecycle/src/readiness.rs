//! Readiness checks of the dependencies services share.

use std::time::Duration;

use proto::knowledge::GetSystemStatusRequest;
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use tonic::transport::Channel;

use crate::health::Report;

const TIMEOUT: Duration = Duration::from_secs(1);

/// Ready when the knowledge service answers `GetSystemStatus` within a second.
pub async fn knowledge(mut client: KnowledgeServiceClient<Channel>) -> Report {
    match tokio::time::timeout(TIMEOUT, client.get_system_status(GetSystemStatusRequest {})).await {
        Ok(Ok(_)) => Report::ok().with("knowledge", "connected"),
        Ok(Err(status)) => Report::failing()
            .with("knowledge", "unreachable")
            .with("error", status.message().to_owned()),
        Err(_) => Report::failing()
            .with("knowledge", "unreachable")
            .with("error", "knowledge did not answer within 1 s"),
    }
}
