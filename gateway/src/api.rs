//! The REST API at the original BFF's paths, backed by knowledge and the executor instead of
//! in-memory stores. JSON in and out; a body is a JSON object (`Body`) of at most 64 KiB, with
//! `Content-Type: application/json`; bad input gets a 4xx with `{"error": "..."}` naming what is
//! wrong. Connection strings never leave: databases carry only `connection_string_redacted`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, OptionalFromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use proto::executor::executor_service_client::ExecutorServiceClient;
use proto::executor::{ActionDecisionRequest, HealthRequest};
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use proto::knowledge::*;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

use crate::auth::{Auth, COOKIE};
use crate::live::Live;
use crate::webhooks::Webhooks;

const RPC_DEADLINE: Duration = Duration::from_secs(5);

pub struct State_ {
    pub knowledge: KnowledgeServiceClient<Channel>,
    pub executor: ExecutorServiceClient<Channel>,
    pub nats: async_nats::Client,
    pub live: Arc<Live>,
    pub auth: Arc<Auth>,
    pub webhooks: Arc<Webhooks>,
    pub http: reqwest::Client,
    pub service_health: Vec<(&'static str, String)>,
    pub started: Instant,
}

pub type AppState = Arc<State_>;

/// A 4xx/5xx with a readable message.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let code = match status.code() {
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::FailedPrecondition | Code::AlreadyExists => StatusCode::CONFLICT,
            Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        Self(code, status.message().to_owned())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self(rejection.status(), rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self(rejection.status(), rejection.body_text())
    }
}

/// A request body: `Content-Type: application/json`, within the body limit, and a JSON object
/// at the top — serde would read `[]` or `["a", "b"]` as a struct, filling it in order or with
/// defaults. Every refusal is an [`ApiError`], so a JSON `{"error": ...}` (axum's own
/// extractors answer in plain text). As `Option<Body<T>>`, an empty body is `None`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match <Self as OptionalFromRequest<S>>::from_request(request, state).await? {
            Some(body) => Ok(body),
            None => Err(ApiError::bad(
                "a JSON object is required as the request body",
            )),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().map(json_media_type).unwrap_or(false));
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|r| ApiError(r.status(), r.body_text()))?;
        if bytes.is_empty() && content_type != Some(false) {
            return Ok(None);
        }
        if content_type != Some(true) {
            return Err(ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a request with Content-Type: application/json".into(),
            ));
        }
        let first = bytes.iter().find(|b| !b" \t\r\n".contains(b));
        if first != Some(&b'{') {
            // A syntax error is a 400; well-formed JSON of the wrong shape a 422.
            return Err(match serde_json::from_slice::<Value>(&bytes) {
                Err(error) => ApiError::bad(format!("the body is not valid JSON: {error}")),
                Ok(_) => ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the body must be a JSON object".into(),
                ),
            });
        }
        let Json(value) = Json::<T>::from_bytes(&bytes)?;
        Ok(Some(Body(value)))
    }
}

/// `application/json` or `application/<anything>+json`, with or without parameters.
fn json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

pub type Reply = Result<Response, ApiError>;

pub async fn rpc<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(RPC_DEADLINE, call).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(status.into()),
        Err(_) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} did not answer in time"),
        )),
    }
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

pub fn rfc3339_now() -> String {
    rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default(),
    )
}

/// Unix seconds as RFC 3339 (UTC); empty for 0 ("never").
pub fn rfc3339(unix: i64) -> String {
    if unix <= 0 {
        String::new()
    } else {
        proto::events::rfc3339(unix)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    database_id: String,
    #[serde(default)]
    detection_id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    limit: Option<i32>,
    #[serde(default)]
    enabled_only: Option<bool>,
}

// ------------------------------------------------------------------ metrics

pub async fn metrics_latest(State(s): State<AppState>, Query(f): Query<Filter>) -> Json<Value> {
    Json(s.live.latest(&f.database_id).unwrap_or_else(|| json!({})))
}

pub async fn metrics_history(State(s): State<AppState>, Query(f): Query<Filter>) -> Reply {
    if f.database_id.is_empty() {
        return Err(ApiError::bad(
            "database_id is required: a history is per database",
        ));
    }
    let limit = f.limit.unwrap_or(20);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad(format!("limit {limit} must be 1-10000")));
    }
    Ok(Json(s.live.history(&f.database_id, limit as usize)).into_response())
}

// ------------------------------------------------------------------ detections, actions, ledger

pub fn detection_json(d: Detection) -> Value {
    json!({
        "id": d.id, "key": d.key, "state": d.state, "severity": d.severity, "category": d.category,
        "database_id": d.database_id, "detector_name": d.detector_name, "title": d.title,
        "description": d.description, "evidence": parse_json(&d.evidence_json),
        "recommendation": d.recommendation, "action_type": d.action_type,
        "action_metadata": parse_json(&d.action_metadata_json), "action_id": d.action_id,
        "timestamp": d.created_at, "created_at": rfc3339(d.created_at), "last_seen": d.last_seen,
        "occurrences": d.occurrences, "resolution": d.resolution,
        "resolved_at": rfc3339(d.resolved_at),
    })
}

/// The active detections (of `database_id`, when given), newest first; with `detection_id`,
/// that one detection whatever its state (a resolved one says why in `resolution`), or none.
pub async fn detections(State(s): State<AppState>, Query(f): Query<Filter>) -> Reply {
    let mut knowledge = s.knowledge.clone();
    if !f.detection_id.is_empty() {
        let reply = rpc(
            "knowledge",
            knowledge.get_detection(GetDetectionRequest {
                detection_id: f.detection_id,
            }),
        )
        .await?;
        let found: Vec<Value> = reply
            .detection
            .into_iter()
            .filter(|d| f.database_id.is_empty() || d.database_id == f.database_id)
            .map(detection_json)
            .collect();
        return Ok(Json(found).into_response());
    }
    let list = rpc(
        "knowledge",
        knowledge.get_active_detections(DatabaseFilterRequest {
            database_id: f.database_id,
        }),
    )
    .await?;
    let mut out: Vec<Value> = list.detections.into_iter().map(detection_json).collect();
    out.sort_by_key(|d| std::cmp::Reverse(d["timestamp"].as_i64().unwrap_or(0)));
    Ok(Json(out).into_response())
}

pub fn action_json(a: Action) -> Value {
    let params = parse_json(&a.params_json);
    json!({
        "action_id": a.id, "detection_id": a.detection_id, "action_type": a.action_type,
        "database_id": a.database_id, "status": a.status, "message": a.message,
        "error": (!a.error.is_empty()).then_some(a.error),
        "created_at": rfc3339(a.created_at), "started": rfc3339(a.started_at),
        "completed": rfc3339(a.completed_at), "updated_at": a.updated_at,
        "can_rollback": a.can_rollback, "rolledback": a.status == "rolled_back",
        "description": params["description"], "plan": params["plan"],
        "detection_key": params["detection_key"], "changes": parse_json(&a.result_json),
    })
}

pub async fn actions(State(s): State<AppState>, Query(f): Query<Filter>) -> Reply {
    let mut knowledge = s.knowledge.clone();
    let list = rpc(
        "knowledge",
        knowledge.list_actions(ListActionsRequest {
            database_id: f.database_id,
            status: f.status,
            limit: f.limit.unwrap_or(100),
        }),
    )
    .await?;
    Ok(Json(
        list.actions
            .into_iter()
            .map(action_json)
            .collect::<Vec<_>>(),
    )
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    reason: String,
}

pub async fn decide(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Option<Body<DecisionBody>>,
) -> Reply {
    let Path((id, decision)) = path?;
    let reason = body.map(|Body(b)| b.reason).unwrap_or_default();
    if reason.len() > 1000 {
        return Err(ApiError::bad("reason is longer than 1000 characters"));
    }
    let request = ActionDecisionRequest {
        action_id: id,
        requested_by: "dashboard".into(),
        reason,
    };
    let mut executor = s.executor.clone();
    let reply = match decision.as_str() {
        "approve" => rpc("executor", executor.approve_action(request)).await?,
        "reject" => rpc("executor", executor.reject_action(request)).await?,
        "rollback" => rpc("executor", executor.rollback_action(request)).await?,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown decision {other:?}: expected approve, reject or rollback"),
            ));
        }
    };
    Ok(Json(json!({
        "success": true, "action_id": reply.action_id, "status": reply.status,
        "message": reply.message, "error": reply.error,
    }))
    .into_response())
}

pub fn ledger_json(e: LedgerEntry) -> Value {
    json!({
        "action_id": e.action_id, "database_id": e.database_id, "detection_id": e.detection_id,
        "detection_key": e.detection_key, "action_type": e.action_type, "state": e.state,
        "reason": e.reason, "started_at": rfc3339(e.started_at), "decided_at": rfc3339(e.decided_at),
        "cycles": e.cycles, "before": parse_json(&e.before_json), "after": parse_json(&e.after_json),
        "time_saved_ms_per_day": e.time_saved_ms_per_day,
        "write_cost_ms_per_day": e.write_cost_ms_per_day, "storage_bytes": e.storage_bytes,
    })
}

pub async fn ledger(State(s): State<AppState>, Query(f): Query<Filter>) -> Reply {
    let mut knowledge = s.knowledge.clone();
    let list = rpc(
        "knowledge",
        knowledge.list_ledger(ListLedgerRequest {
            database_id: f.database_id,
            state: f.state,
            limit: f.limit.unwrap_or(100),
        }),
    )
    .await?;
    Ok(Json(
        list.entries
            .into_iter()
            .map(ledger_json)
            .collect::<Vec<_>>(),
    )
    .into_response())
}

// ------------------------------------------------------------------ databases

fn database_json(mut d: RegisteredDatabase) -> Value {
    d.connection_string.clear();
    let mut value = serde_json::to_value(&d).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.remove("connection_string");
    }
    value
}

pub async fn databases(State(s): State<AppState>, Query(f): Query<Filter>) -> Reply {
    let mut knowledge = s.knowledge.clone();
    let list = rpc(
        "knowledge",
        knowledge.list_databases(ListDatabasesRequest {
            enabled_only: f.enabled_only.unwrap_or(false),
            include_connection_strings: false,
        }),
    )
    .await?;
    Ok(Json(
        list.databases
            .into_iter()
            .map(database_json)
            .collect::<Vec<_>>(),
    )
    .into_response())
}

pub async fn database(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let Path(id) = path?;
    let mut knowledge = s.knowledge.clone();
    let list = rpc(
        "knowledge",
        knowledge.list_databases(ListDatabasesRequest {
            enabled_only: false,
            include_connection_strings: false,
        }),
    )
    .await?;
    let found = list
        .databases
        .into_iter()
        .find(|d| d.database_id == id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("database {id} not found")))?;
    Ok(Json(database_json(found)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDatabase {
    #[serde(default)]
    database_id: String,
    database_name: String,
    connection_string: String,
    #[serde(default)]
    database_type: String,
    #[serde(default)]
    enabled: Option<bool>,
}

/// The original's id rule: lower case, anything not a-z0-9 becomes `_`, repeats collapsed.
pub fn id_from_name(name: &str) -> String {
    let mut id = String::new();
    for c in name.to_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && id.ends_with('_')) {
            id.push(c);
        }
    }
    let id = id.trim_matches('_').to_owned();
    if id.is_empty() { "database".into() } else { id }
}

/// A database's name as people see it: not blank, at most 100 bytes.
fn check_database_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(ApiError::bad(
            "database_name is required (at most 100 characters)",
        ));
    }
    Ok(())
}

pub async fn create_database(State(s): State<AppState>, Body(new): Body<NewDatabase>) -> Reply {
    check_database_name(&new.database_name)?;
    let kind = if new.database_type.is_empty() {
        "postgres".to_owned()
    } else {
        new.database_type
    };
    if !matches!(kind.as_str(), "postgres" | "postgresql") {
        return Err(ApiError::bad(format!(
            "database_type {kind:?} is not supported: StartupMonkey watches PostgreSQL"
        )));
    }
    let target = crate::dbtest::parse(&new.connection_string).map_err(ApiError::bad)?;
    let id = if new.database_id.is_empty() {
        id_from_name(&new.database_name)
    } else {
        new.database_id
    };
    let mut knowledge = s.knowledge.clone();
    let reply = rpc(
        "knowledge",
        knowledge.register_database(RegisterDatabaseRequest {
            database_id: id.clone(),
            connection_string: new.connection_string,
            database_type: kind,
            database_name: new.database_name,
            host: target.host,
            port: i32::from(target.port),
            version: "unknown".into(),
            registered_at: 0,
            metadata: Default::default(),
            enabled: new.enabled.unwrap_or(true),
        }),
    )
    .await?;
    if !reply.success {
        return Err(ApiError(StatusCode::CONFLICT, reply.message));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": true, "database_id": id, "message": reply.message})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseChange {
    #[serde(default)]
    connection_string: String,
    #[serde(default)]
    database_name: String,
    #[serde(default)]
    enabled: Option<bool>,
}

pub async fn update_database(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    Body(change): Body<DatabaseChange>,
) -> Reply {
    let Path(id) = path?;
    // Empty means "unchanged"; anything else must be a name create would take.
    if !change.database_name.is_empty() {
        check_database_name(&change.database_name)?;
    }
    if !change.connection_string.is_empty() {
        crate::dbtest::parse(&change.connection_string).map_err(ApiError::bad)?;
    }
    let mut knowledge = s.knowledge.clone();
    let reply = rpc(
        "knowledge",
        knowledge.update_database(UpdateDatabaseRequest {
            database_id: id,
            connection_string: change.connection_string,
            database_name: change.database_name,
            enabled: change.enabled,
        }),
    )
    .await?;
    Ok(found_or_not(reply))
}

/// Knowledge's `Response` for a change to one database: 200, or 404 when there is no such one.
fn found_or_not(reply: proto::knowledge::Response) -> Response {
    let status = if reply.success {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (
        status,
        Json(json!({"success": reply.success, "message": reply.message})),
    )
        .into_response()
}

pub async fn delete_database(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let Path(id) = path?;
    let mut knowledge = s.knowledge.clone();
    let reply = rpc(
        "knowledge",
        knowledge.unregister_database(UnregisterDatabaseRequest { database_id: id }),
    )
    .await?;
    Ok(found_or_not(reply))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionTest {
    pub connection_string: String,
}

pub async fn test_database(Body(test): Body<ConnectionTest>) -> Reply {
    // Not a PostgreSQL URL is bad input; a server that cannot be reached is the report's news.
    crate::dbtest::parse(&test.connection_string).map_err(ApiError::bad)?;
    let report = crate::dbtest::test(&test.connection_string).await;
    Ok(Json(report).into_response())
}

// ------------------------------------------------------------------ configuration, status

pub async fn get_config(State(s): State<AppState>) -> Reply {
    let mut knowledge = s.knowledge.clone();
    let config = rpc(
        "knowledge",
        knowledge.get_system_config(GetSystemConfigRequest {}),
    )
    .await?;
    Ok(Json(config).into_response())
}

/// The first field of `sent` the configuration does not have, or a section given as something
/// other than an object: serde would drop the one (so a misspelt field saved the defaults in
/// place of what was meant) and read an array as the other.
fn check_config_fields(sent: &Value, known: &Value, path: &str) -> Result<(), ApiError> {
    let (Value::Object(sent), Value::Object(known)) = (sent, known) else {
        return Ok(());
    };
    for (key, value) in sent {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let refused = |why: String| Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, why));
        match known.get(key) {
            None => return refused(format!("unknown field {here:?} in the configuration")),
            Some(Value::Object(_)) if !(value.is_object() || value.is_null()) => {
                return refused(format!("{here} must be an object"));
            }
            Some(section) => check_config_fields(value, section, &here)?,
        }
    }
    Ok(())
}

pub async fn save_config(State(s): State<AppState>, Body(sent): Body<Value>) -> Reply {
    let known = serde_json::to_value(SystemConfig {
        thresholds: Some(Default::default()),
        webhook: Some(Default::default()),
        verification: Some(Default::default()),
        ..Default::default()
    })
    .unwrap_or_default();
    check_config_fields(&sent, &known, "")?;
    let config: SystemConfig = serde_json::from_value(sent).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("configuration: {e}"),
        )
    })?;
    if let Some(hook) = &config.webhook
        && hook.enabled
    {
        let parsed = url::Url::parse(&hook.url)
            .map_err(|e| ApiError::bad(format!("webhook.url {:?} is not a URL: {e}", hook.url)))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::bad("webhook.url must be http or https"));
        }
    }
    let mut knowledge = s.knowledge.clone();
    let reply = rpc(
        "knowledge",
        knowledge.save_system_config(SaveSystemConfigRequest {
            config: Some(config),
        }),
    )
    .await?;
    s.webhooks.refresh().await;
    Ok(Json(json!({"success": reply.success, "message": reply.message})).into_response())
}

/// Knowledge's status plus each service's own health, asked now (never inferred).
pub async fn status(State(s): State<AppState>) -> Reply {
    let mut knowledge = s.knowledge.clone();
    let (system, knowledge_state) = match rpc(
        "knowledge",
        knowledge.get_system_status(GetSystemStatusRequest {}),
    )
    .await
    {
        Ok(system) => (Some(system), "healthy".to_owned()),
        Err(e) => (None, format!("unreachable: {}", e.1)),
    };
    let mut executor = s.executor.clone();
    let executor_state = match rpc("executor", executor.health_check(HealthRequest {})).await {
        Ok(h) => h.status,
        Err(e) => format!("unreachable: {}", e.1),
    };
    let nats_state = format!("{:?}", s.nats.connection_state()).to_lowercase();
    let mut services = serde_json::Map::new();
    services.insert("gateway".into(), json!("healthy"));
    services.insert("knowledge".into(), json!(knowledge_state));
    services.insert("executor".into(), json!(executor_state));
    services.insert("nats".into(), json!(nats_state));
    for (name, url) in &s.service_health {
        let state = match s.http.get(url).timeout(Duration::from_secs(2)).send().await {
            Ok(r) if r.status().is_success() => "healthy".to_owned(),
            Ok(r) => format!("unhealthy (HTTP {})", r.status().as_u16()),
            Err(e) => format!("unreachable: {}", e.without_url()),
        };
        services.insert((*name).into(), json!(state));
    }
    Ok(Json(json!({
        "configured": system.as_ref().is_some_and(|s| s.configured),
        "onboarding_complete": system.as_ref().is_some_and(|s| s.onboarding_complete),
        "service_states": system.map(|s| s.service_states).unwrap_or_default(),
        "services": services,
    }))
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlushBody {
    #[serde(default)]
    include_registry: bool,
}

pub async fn flush(State(s): State<AppState>, body: Option<Body<FlushBody>>) -> Reply {
    let include_registry = body.map(|Body(b)| b.include_registry).unwrap_or(false);
    let mut knowledge = s.knowledge.clone();
    let reply = rpc(
        "knowledge",
        knowledge.flush_all_data(FlushAllDataRequest { include_registry }),
    )
    .await?;
    Ok(Json(json!({"success": reply.success, "message": reply.message})).into_response())
}

// ------------------------------------------------------------------ live events, Prometheus

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

pub async fn prometheus(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    let mut line = |name: &str, help: &str, kind: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    line(
        "startupmonkey_gateway_uptime_seconds",
        "Seconds since the gateway started.",
        "gauge",
        s.started.elapsed().as_secs().to_string(),
    );
    line(
        "startupmonkey_gateway_events_received_total",
        "NATS events the gateway received.",
        "counter",
        s.live
            .received
            .load(std::sync::atomic::Ordering::Relaxed)
            .to_string(),
    );
    line(
        "startupmonkey_gateway_databases_with_metrics",
        "Databases the gateway holds a metric history for.",
        "gauge",
        s.live.databases_seen().to_string(),
    );
    let mut knowledge = s.knowledge.clone();
    if let Ok(stats) = rpc(
        "knowledge",
        knowledge.get_system_stats(GetSystemStatsRequest {}),
    )
    .await
    {
        for (name, help, value) in [
            (
                "startupmonkey_databases",
                "Registered databases.",
                stats.total_databases,
            ),
            (
                "startupmonkey_databases_healthy",
                "Databases reported healthy.",
                stats.healthy_databases,
            ),
            (
                "startupmonkey_detections_active",
                "Problems currently detected.",
                stats.active_detections,
            ),
            (
                "startupmonkey_detections_total",
                "Problems detected since the start.",
                stats.total_detections,
            ),
            (
                "startupmonkey_actions_total",
                "Actions recorded.",
                stats.total_actions,
            ),
            (
                "startupmonkey_actions_completed",
                "Actions completed.",
                stats.actions_completed,
            ),
            (
                "startupmonkey_actions_failed",
                "Actions failed.",
                stats.actions_failed,
            ),
        ] {
            line(name, help, "gauge", value.to_string());
        }
    }
    for (id, value) in s.live.latest_health() {
        out.push_str(&format!(
            "startupmonkey_database_health_score{{database_id=\"{}\"}} {value}\n",
            id.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

// ------------------------------------------------------------------ sign-in

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    token: String,
}

pub async fn login(State(s): State<AppState>, Body(login): Body<Login>) -> Reply {
    if !s.auth.token_matches(login.token.trim()) {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "that token is not the gateway's".into(),
        ));
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000",
        s.auth.session_value()
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"authenticated": true})),
    )
        .into_response())
}

pub async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Json(json!({"authenticated": false})),
    )
        .into_response()
}

pub async fn me(State(s): State<AppState>, headers: HeaderMap) -> Json<Value> {
    Json(json!({"authenticated": s.auth.is_authenticated(&headers), "auth_reads": s.auth.reads}))
}
