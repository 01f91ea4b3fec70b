//! `GET /status` (each service's health, asked now), `POST /flush` (knowledge's data removed) and
//! `GET /events` (the live server-sent events).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use proto::executor::HealthRequest;
use proto::knowledge::{FlushAllDataRequest, GetSystemStatusRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::databases::Changed;
use super::error::ErrorBody;
use super::{AppState, Body, Reply};

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    pub configured: bool,
    pub onboarding_complete: bool,
    /// What knowledge holds about each service.
    pub service_states: BTreeMap<String, String>,
    /// Each service's health as the gateway asked it now: `healthy`, or why not.
    pub services: BTreeMap<String, String>,
}

/// Knowledge's status plus each service's own health, asked now (never inferred).
#[utoipa::path(get, operation_id = "status", path = "/status", tag = "system", responses((status = 200, body = Status)))]
pub async fn status(State(s): State<AppState>) -> Json<Status> {
    let system = s
        .knowledge("GetSystemStatus", |mut k| async move {
            k.get_system_status(GetSystemStatusRequest {}).await
        })
        .await;
    let mut services = BTreeMap::new();
    services.insert("gateway".to_owned(), "healthy".to_owned());
    let knowledge_state = match &system {
        Ok(_) => "healthy".to_owned(),
        Err(e) => format!("unreachable: {e}"),
    };
    services.insert("knowledge".to_owned(), knowledge_state);
    let executor_state = match s
        .executor
        .call("HealthCheck", |mut e| async move {
            e.health_check(HealthRequest {}).await
        })
        .await
    {
        Ok(h) => h.status,
        Err(e) => format!("unreachable: {e}"),
    };
    services.insert("executor".to_owned(), executor_state);
    let nats_state = format!("{:?}", s.nats.connection_state()).to_lowercase();
    services.insert("nats".to_owned(), nats_state);
    for (name, url) in &s.service_health {
        let state = match s.http.get(url).timeout(Duration::from_secs(2)).send().await {
            Ok(r) if r.status().is_success() => "healthy".to_owned(),
            Ok(r) => format!("unhealthy (HTTP {})", r.status().as_u16()),
            Err(e) => format!("unreachable: {}", e.without_url()),
        };
        services.insert((*name).to_owned(), state);
    }
    let system = system.ok();
    Json(Status {
        configured: system.as_ref().is_some_and(|s| s.configured),
        onboarding_complete: system.as_ref().is_some_and(|s| s.onboarding_complete),
        service_states: system
            .map(|s| s.service_states.into_iter().collect())
            .unwrap_or_default(),
        services,
    })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlushBody {
    /// Also the database registry and the configuration (onboarding starts again).
    #[serde(default)]
    pub include_registry: bool,
}

/// Removes knowledge's detections, actions and ledger (and the registry, when asked).
#[utoipa::path(
    post,
    operation_id = "flush",
    path = "/flush",
    tag = "system",
    request_body(content = Option<FlushBody>, content_type = "application/json"),
    responses(
        (status = 200, body = Changed),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn flush(
    State(s): State<AppState>,
    body: Option<Body<FlushBody>>,
) -> Reply<Json<Changed>> {
    let include_registry = body.map(|Body(b)| b.include_registry).unwrap_or(false);
    let reply = s
        .knowledge("FlushAllData", |mut k| async move {
            k.flush_all_data(FlushAllDataRequest { include_registry })
                .await
        })
        .await?;
    Ok(Json(Changed {
        success: reply.success,
        message: reply.message,
    }))
}

/// Every event the gateway hears (`metrics`, `detection`, `action`), as server-sent events.
#[utoipa::path(
    get,
    operation_id = "events",
    path = "/events",
    tag = "system",
    responses((status = 200, description = "Server-sent events", content_type = "text/event-stream", body = String))
)]
pub async fn events(
    State(s): State<AppState>,
) -> Sse<impl futures::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    use tokio::sync::broadcast::error::RecvError;
    let stream = futures::stream::unfold(s.live.subscribe(), |mut events| async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    let sse = SseEvent::default()
                        .event(event.kind)
                        .data(event.data.to_string());
                    return Some((Ok(sse), events));
                }
                // A slow browser misses some events; the next ones still arrive.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
