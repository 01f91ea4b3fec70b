//! The `executor.ExecutorService` server: HealthCheck answers for real; the action RPCs answer
//! UNIMPLEMENTED until actions exist (the original answered "TODO").

use std::time::Instant;

use proto::executor::executor_service_server::ExecutorService;
use proto::executor::*;
use tonic::{Request, Response, Status};

#[derive(Debug)]
pub struct ExecutorGrpc {
    started: Instant,
}

impl ExecutorGrpc {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
        }
    }
}

impl Default for ExecutorGrpc {
    fn default() -> Self {
        Self::new()
    }
}

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented yet: actions arrive with the executor issue"
    ))
}

#[tonic::async_trait]
impl ExecutorService for ExecutorGrpc {
    async fn health_check(
        &self,
        _request: Request<HealthRequest>,
    ) -> Result<Response<HealthResponse>, Status> {
        Ok(Response::new(HealthResponse {
            status: "healthy".into(),
            uptime_seconds: self.started.elapsed().as_secs() as i64,
        }))
    }

    async fn get_action_status(
        &self,
        _request: Request<ActionStatusRequest>,
    ) -> Result<Response<ActionStatusResponse>, Status> {
        Err(not_yet("GetActionStatus"))
    }

    async fn list_pending_actions(
        &self,
        _request: Request<ListRequest>,
    ) -> Result<Response<ActionList>, Status> {
        Err(not_yet("ListPendingActions"))
    }

    async fn approve_action(
        &self,
        _request: Request<ActionDecisionRequest>,
    ) -> Result<Response<ActionStatusResponse>, Status> {
        Err(not_yet("ApproveAction"))
    }

    async fn reject_action(
        &self,
        _request: Request<ActionDecisionRequest>,
    ) -> Result<Response<ActionStatusResponse>, Status> {
        Err(not_yet("RejectAction"))
    }

    async fn rollback_action(
        &self,
        _request: Request<ActionDecisionRequest>,
    ) -> Result<Response<ActionStatusResponse>, Status> {
        Err(not_yet("RollbackAction"))
    }
}
