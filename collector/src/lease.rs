//! One collector per database when several run: before each cycle a collector takes or renews
//! the lease `collector:<database id>` in knowledge (three collection intervals long, at least
//! 5 s); while another holds it, this one stands by, and takes over when that lease runs out
//! (a collector that died) or is released (one that stopped). Only an explicit "held by someone
//! else" stops a cycle: with knowledge unreachable, or a knowledge without leases, collection goes
//! on as with a single collector.

use std::time::Duration;

use proto::knowledge::LeaseRequest;
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use tonic::Code;
use tonic::transport::Channel;

const RPC_DEADLINE: Duration = Duration::from_secs(2);

/// What the lease says about this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    Collect,
    /// Another collector holds the database.
    StandBy {
        holder: String,
    },
}

pub struct Lease {
    knowledge: KnowledgeServiceClient<Channel>,
    resource: String,
    holder: String,
    ttl: Duration,
}

impl Lease {
    pub fn new(
        knowledge: KnowledgeServiceClient<Channel>,
        database_id: &str,
        holder: &str,
        interval: Duration,
    ) -> Self {
        Self {
            knowledge,
            resource: format!("collector:{database_id}"),
            holder: holder.to_owned(),
            ttl: (interval * 3).max(Duration::from_secs(5)),
        }
    }

    pub async fn turn(&self) -> Turn {
        let mut knowledge = self.knowledge.clone();
        let request = LeaseRequest {
            resource: self.resource.clone(),
            holder: self.holder.clone(),
            ttl_ms: self.ttl.as_millis() as i64,
        };
        match tokio::time::timeout(RPC_DEADLINE, knowledge.acquire_lease(request)).await {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                if reply.granted {
                    Turn::Collect
                } else {
                    Turn::StandBy {
                        holder: reply.holder,
                    }
                }
            }
            Ok(Err(status)) if status.code() == Code::Unimplemented => Turn::Collect,
            // Knowledge unreachable: keep watching rather than go blind.
            _ => Turn::Collect,
        }
    }

    /// Lets another collector take over at once (on shutdown or when the database goes away).
    pub async fn release(&self) {
        let mut knowledge = self.knowledge.clone();
        let request = LeaseRequest {
            resource: self.resource.clone(),
            holder: self.holder.clone(),
            ttl_ms: 0,
        };
        let _ = tokio::time::timeout(RPC_DEADLINE, knowledge.release_lease(request)).await;
    }
}
