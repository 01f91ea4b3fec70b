//! The `executor.ExecutorService` server: action state read from knowledge (so it survives
//! restarts), and the operator's approve / reject / rollback carried out and answered with the
//! outcome (the original published them on NATS and never heard back).

use std::sync::Arc;
use std::time::Instant;

use proto::clients::Knowledge;
use proto::error::Error;
use proto::executor::executor_service_server::ExecutorService;
use proto::executor::*;
use proto::knowledge::{Action, DatabaseFilterRequest, ListActionsRequest};
use tonic::{Request, Response, Status};

use crate::engine::{Engine, EngineError};

pub struct ExecutorGrpc {
    started: Instant,
    engine: Arc<Engine>,
    knowledge: Knowledge,
}

impl ExecutorGrpc {
    pub fn new(
        engine: Arc<Engine>,
        knowledge: proto::knowledge::knowledge_service_client::KnowledgeServiceClient<
            tonic::transport::Channel,
        >,
    ) -> Self {
        Self {
            started: Instant::now(),
            engine,
            knowledge: Knowledge::new(knowledge),
        }
    }
}

pub fn status_of(action: Action) -> ActionStatusResponse {
    ActionStatusResponse {
        action_id: action.id,
        status: action.status,
        message: action.message,
        action_type: action.action_type,
        database_id: action.database_id,
        created_at: action.created_at,
        completed_at: action.completed_at,
        detection_id: action.detection_id,
        error: action.error,
        can_rollback: action.can_rollback,
    }
}

/// The one way an engine error leaves over gRPC: its kind's code, its message.
fn to_status(error: EngineError) -> Status {
    Error::from(error).into()
}

fn action_id(id: &str) -> Result<&str, Status> {
    if id.is_empty() {
        Err(Status::invalid_argument("action_id is required"))
    } else {
        Ok(id)
    }
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
        request: Request<ActionStatusRequest>,
    ) -> Result<Response<ActionStatusResponse>, Status> {
        let id = request.into_inner().action_id;
        let action = self
            .engine
            .get(action_id(&id)?)
            .await
            .map_err(to_status)?
            .ok_or_else(|| Status::not_found(format!("action {id} not found")))?;
        Ok(Response::new(status_of(action)))
    }

    /// Without a filter, the actions waiting or running; with one, the newest of that status.
    async fn list_pending_actions(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ActionList>, Status> {
        let filter = request.into_inner().status_filter;
        let actions = if filter.is_empty() {
            self.knowledge
                .call("GetPendingActions", |mut k| async move {
                    k.get_pending_actions(DatabaseFilterRequest {
                        database_id: String::new(),
                    })
                    .await
                })
                .await?
                .actions
        } else {
            filter
                .parse::<proto::status::ActionStatus>()
                .map_err(Error::from)?;
            self.knowledge
                .call("ListActions", |mut k| async move {
                    k.list_actions(ListActionsRequest {
                        database_id: String::new(),
                        status: filter,
                        limit: 1000,
                    })
                    .await
                })
                .await?
                .actions
        };
        let actions: Vec<_> = actions.into_iter().map(status_of).collect();
        Ok(Response::new(ActionList {
            total_count: actions.len() as i32,
            actions,
        }))
    }

    async fn approve_action(
        &self,
        request: Request<ActionDecisionRequest>,
    ) -> Result<Response<ActionStatusResponse>, Status> {
        let r = request.into_inner();
        let action = self
            .engine
            .approve(action_id(&r.action_id)?, &r.requested_by)
            .await
            .map_err(to_status)?;
        Ok(Response::new(status_of(action)))
    }

    async fn reject_action(
        &self,
        request: Request<ActionDecisionRequest>,
    ) -> Result<Response<ActionStatusResponse>, Status> {
        let r = request.into_inner();
        let action = self
            .engine
            .reject(action_id(&r.action_id)?, &r.requested_by, &r.reason)
            .await
            .map_err(to_status)?;
        Ok(Response::new(status_of(action)))
    }

    async fn rollback_action(
        &self,
        request: Request<ActionDecisionRequest>,
    ) -> Result<Response<ActionStatusResponse>, Status> {
        let r = request.into_inner();
        let action = self
            .engine
            .rollback(action_id(&r.action_id)?, &r.requested_by, &r.reason)
            .await
            .map_err(to_status)?;
        Ok(Response::new(status_of(action)))
    }
}
