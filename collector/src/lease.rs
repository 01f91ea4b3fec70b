//! One collector per database when several run: before each cycle a collector takes or renews
//! the lease `collector:<database id>` in knowledge (three collection intervals long, at least
//! 5 s); while another holds it, this one stands by, and takes over when that lease runs out
//! (a collector that died) or is released (one that stopped). Only an explicit "held by someone
//! else" stops a cycle: with knowledge unreachable, or a knowledge without leases, collection goes
//! on as with a single collector.

use std::time::Duration;

use proto::clients::Knowledge;
use proto::error::ErrorKind;
use proto::knowledge::LeaseRequest;
use tracing::debug;

/// A lease answer is waited for before each cycle: shorter than knowledge's usual deadline.
const LEASE_DEADLINE: Duration = Duration::from_secs(2);

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
    knowledge: Knowledge,
    resource: String,
    holder: String,
    ttl: Duration,
}

impl Lease {
    pub fn new(knowledge: Knowledge, database_id: &str, holder: &str, interval: Duration) -> Self {
        Self {
            knowledge: knowledge.with_deadline(LEASE_DEADLINE),
            resource: format!("collector:{database_id}"),
            holder: holder.to_owned(),
            ttl: (interval * 3).max(Duration::from_secs(5)),
        }
    }

    pub async fn turn(&self) -> Turn {
        let request = LeaseRequest {
            resource: self.resource.clone(),
            holder: self.holder.clone(),
            ttl_ms: self.ttl.as_millis() as i64,
        };
        let reply = self
            .knowledge
            .call("AcquireLease", |mut k| async move {
                k.acquire_lease(request).await
            })
            .await;
        match reply {
            Ok(reply) => {
                if reply.granted {
                    Turn::Collect
                } else {
                    Turn::StandBy {
                        holder: reply.holder,
                    }
                }
            }
            Err(error) if error.kind() == ErrorKind::Unimplemented => Turn::Collect,
            // Knowledge unreachable: keep watching rather than go blind.
            Err(error) => {
                debug!(resource = %self.resource, %error, "lease not answered; collecting");
                Turn::Collect
            }
        }
    }

    /// Lets another collector take over at once (on shutdown or when the database goes away).
    pub async fn release(&self) {
        let request = LeaseRequest {
            resource: self.resource.clone(),
            holder: self.holder.clone(),
            ttl_ms: 0,
        };
        if let Err(error) = self
            .knowledge
            .call("ReleaseLease", |mut k| async move {
                k.release_lease(request).await
            })
            .await
        {
            debug!(resource = %self.resource, %error, "lease not released; it runs out");
        }
    }
}
