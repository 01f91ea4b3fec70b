//! `/databases`: the registry of monitored databases in knowledge, the real connection test of
//! onboarding (`POST /databases/test`) and the doctor (`GET /databases/{id}/doctor`,
//! `POST /databases/doctor`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use proto::error::Error;
use proto::knowledge::{
    DatabaseFeatures, ListDatabasesRequest, RegisterDatabaseRequest, RegisteredDatabase,
    UnavailableFeature, UnregisterDatabaseRequest, UpdateDatabaseRequest,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState, Body, Filter, Reply};
use crate::dbtest::{self, ConnectError, ConnectionReport};
use crate::doctor::{self, DoctorError, Report};

/// A registered database as the browser sees it: never its connection string.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Database)]
pub struct DatabaseView {
    pub database_id: String,
    pub database_type: String,
    pub database_name: String,
    pub host: String,
    pub port: i32,
    pub version: String,
    pub registered_at: i64,
    pub last_seen: i64,
    pub status: String,
    pub health_score: f64,
    pub enabled: bool,
    /// The connection string with its password replaced.
    pub connection_string_redacted: String,
    /// What the server offers and the role may do, as the collector last found it.
    pub features: Option<Features>,
    pub last_error: String,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Features {
    pub pg_stat_statements: bool,
    pub pg_stat_statements_creatable: bool,
    pub hypopg: bool,
    pub pg_monitor: bool,
    pub pg_signal_backend: bool,
    pub superuser: bool,
    pub server_version_num: i32,
    pub unavailable: Vec<Unavailable>,
    pub checked_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Unavailable {
    pub name: String,
    pub reason: String,
    pub remedy: String,
}

impl From<RegisteredDatabase> for DatabaseView {
    fn from(d: RegisteredDatabase) -> Self {
        Self {
            database_id: d.database_id,
            database_type: d.database_type,
            database_name: d.database_name,
            host: d.host,
            port: d.port,
            version: d.version,
            registered_at: d.registered_at,
            last_seen: d.last_seen,
            status: d.status,
            health_score: d.health_score,
            enabled: d.enabled,
            connection_string_redacted: d.connection_string_redacted,
            features: d.features.map(Features::from),
            last_error: d.last_error,
            metadata: d.metadata.into_iter().collect(),
        }
    }
}

impl From<DatabaseFeatures> for Features {
    fn from(f: DatabaseFeatures) -> Self {
        Self {
            pg_stat_statements: f.pg_stat_statements,
            pg_stat_statements_creatable: f.pg_stat_statements_creatable,
            hypopg: f.hypopg,
            pg_monitor: f.pg_monitor,
            pg_signal_backend: f.pg_signal_backend,
            superuser: f.superuser,
            server_version_num: f.server_version_num,
            unavailable: f
                .unavailable
                .into_iter()
                .map(|u: UnavailableFeature| Unavailable {
                    name: u.name,
                    reason: u.reason,
                    remedy: u.remedy,
                })
                .collect(),
            checked_at: f.checked_at,
        }
    }
}

async fn registered(s: &AppState, enabled_only: bool) -> Result<Vec<RegisteredDatabase>, Error> {
    let reply = s
        .knowledge("ListDatabases", |mut k| async move {
            k.list_databases(ListDatabasesRequest {
                enabled_only,
                include_connection_strings: false,
            })
            .await
        })
        .await?;
    Ok(reply.databases)
}

/// Every registered database (only the enabled ones with `enabled_only=true`).
#[utoipa::path(
    get,
    operation_id = "list_databases",
    path = "/databases",
    tag = "databases",
    params(("enabled_only" = Option<bool>, Query, description = "Only the enabled ones")),
    responses(
        (status = 200, body = Vec<DatabaseView>),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn list(
    State(s): State<AppState>,
    Query(f): Query<Filter>,
) -> Reply<Json<Vec<DatabaseView>>> {
    let databases = registered(&s, f.enabled_only.unwrap_or(false)).await?;
    Ok(Json(databases.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    get,
    operation_id = "get_database",
    path = "/databases/{id}",
    tag = "databases",
    params(("id" = String, Path, description = "The database's id")),
    responses(
        (status = 200, body = DatabaseView),
        (status = 404, description = "No such database", body = ErrorBody),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn get(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Reply<Json<DatabaseView>> {
    let Path(id) = path?;
    let found = registered(&s, false)
        .await?
        .into_iter()
        .find(|d| d.database_id == id)
        .ok_or_else(|| Error::not_found(format!("database {id} not found")))?;
    Ok(Json(found.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDatabase {
    /// Made from the name when empty (`id_from_name`).
    #[serde(default)]
    pub database_id: String,
    pub database_name: String,
    pub connection_string: String,
    /// `postgres` (the default) or `postgresql`.
    #[serde(default)]
    pub database_type: String,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
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
fn check_database_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(Error::invalid(
            "database_name is required (at most 100 characters)",
        ));
    }
    Ok(())
}

/// A connection string that is not a PostgreSQL URL is bad input.
fn check_connection_string(connection_string: &str) -> Result<dbtest::Target, Error> {
    dbtest::parse(connection_string).map_err(|e| Error::invalid(e.to_string()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub success: bool,
    pub database_id: String,
    pub message: String,
}

/// Knowledge's answer to a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct Changed {
    pub success: bool,
    pub message: String,
}

/// Registers a database (its id made from the name unless given).
#[utoipa::path(
    post,
    operation_id = "create_database",
    path = "/databases",
    tag = "databases",
    request_body = NewDatabase,
    responses(
        (status = 201, body = Created),
        (status = 400, description = "A bad name, type or connection string", body = ErrorBody),
        (status = 409, description = "Knowledge refused it", body = ErrorBody),
        (status = 422, description = "Not the object it takes", body = ErrorBody),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn create(
    State(s): State<AppState>,
    Body(new): Body<NewDatabase>,
) -> Reply<(StatusCode, Json<Created>)> {
    check_database_name(&new.database_name)?;
    let kind = if new.database_type.is_empty() {
        "postgres".to_owned()
    } else {
        new.database_type
    };
    if !matches!(kind.as_str(), "postgres" | "postgresql") {
        return Err(Error::invalid(format!(
            "database_type {kind:?} is not supported: StartupMonkey watches PostgreSQL"
        ))
        .into());
    }
    let target = check_connection_string(&new.connection_string)?;
    let id = if new.database_id.is_empty() {
        id_from_name(&new.database_name)
    } else {
        new.database_id
    };
    let request = RegisterDatabaseRequest {
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
    };
    let reply = s
        .knowledge("RegisterDatabase", |mut k| async move {
            k.register_database(request).await
        })
        .await?;
    if !reply.success {
        return Err(Error::conflict(reply.message).into());
    }
    Ok((
        StatusCode::CREATED,
        Json(Created {
            success: true,
            database_id: id,
            message: reply.message,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseChange {
    /// Empty: unchanged.
    #[serde(default)]
    pub connection_string: String,
    /// Empty: unchanged.
    #[serde(default)]
    pub database_name: String,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Knowledge's answer to a change of one database: 200, or 404 when there is no such one.
fn found_or_not(reply: proto::knowledge::Response) -> Reply<Json<Changed>> {
    if !reply.success {
        return Err(Error::not_found(reply.message).into());
    }
    Ok(Json(Changed {
        success: true,
        message: reply.message,
    }))
}

/// Changes a database's name, connection string or whether it is watched.
#[utoipa::path(
    put,
    operation_id = "update_database",
    path = "/databases/{id}",
    tag = "databases",
    params(("id" = String, Path, description = "The database's id")),
    request_body = DatabaseChange,
    responses(
        (status = 200, body = Changed),
        (status = 400, description = "A bad name or connection string", body = ErrorBody),
        (status = 404, description = "No such database", body = ErrorBody),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn update(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    Body(change): Body<DatabaseChange>,
) -> Reply<Json<Changed>> {
    let Path(id) = path?;
    // Empty means "unchanged"; anything else must be a name create would take.
    if !change.database_name.is_empty() {
        check_database_name(&change.database_name)?;
    }
    if !change.connection_string.is_empty() {
        check_connection_string(&change.connection_string)?;
    }
    let request = UpdateDatabaseRequest {
        database_id: id,
        connection_string: change.connection_string,
        database_name: change.database_name,
        enabled: change.enabled,
    };
    let reply = s
        .knowledge("UpdateDatabase", |mut k| async move {
            k.update_database(request).await
        })
        .await?;
    found_or_not(reply)
}

/// Stops watching a database and forgets it.
#[utoipa::path(
    delete,
    operation_id = "delete_database",
    path = "/databases/{id}",
    tag = "databases",
    params(("id" = String, Path, description = "The database's id")),
    responses(
        (status = 200, body = Changed),
        (status = 404, description = "No such database", body = ErrorBody),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn delete(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Reply<Json<Changed>> {
    let Path(database_id) = path?;
    let reply = s
        .knowledge("UnregisterDatabase", |mut k| async move {
            k.unregister_database(UnregisterDatabaseRequest { database_id })
                .await
        })
        .await?;
    found_or_not(reply)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionTest {
    pub connection_string: String,
}

/// Not a PostgreSQL URL is bad input; a server that cannot be reached is the report's news.
#[utoipa::path(
    post,
    operation_id = "test_connection",
    path = "/databases/test",
    tag = "databases",
    request_body = ConnectionTest,
    responses(
        (status = 200, body = ConnectionReport),
        (status = 400, description = "Not a PostgreSQL URL", body = ErrorBody),
    )
)]
pub async fn test(Body(test): Body<ConnectionTest>) -> Reply<Json<ConnectionReport>> {
    check_connection_string(&test.connection_string)?;
    Ok(Json(dbtest::test(&test.connection_string).await))
}

impl From<DoctorError> for ApiError {
    fn from(error: DoctorError) -> Self {
        match &error {
            DoctorError::Connect(ConnectError::Invalid(_)) => {
                Error::invalid(error.to_string()).into()
            }
            // The server answered and refused what the connection string says.
            DoctorError::Connect(ConnectError::Refused(_)) => {
                ApiError::unprocessable(error.to_string())
            }
            DoctorError::Connect(ConnectError::Unreachable(_)) | DoctorError::Read(_) => {
                ApiError::bad_gateway(error.to_string())
            }
        }
    }
}

/// `GET /databases/{id}/doctor`: the doctor on a registered database, with its stored
/// connection string.
#[utoipa::path(
    get,
    operation_id = "doctor_registered",
    path = "/databases/{id}/doctor",
    tag = "databases",
    params(("id" = String, Path, description = "The database's id")),
    responses(
        (status = 200, body = Report),
        (status = 404, description = "No such database", body = ErrorBody),
        (status = 422, description = "The server refused the connection", body = ErrorBody),
        (status = 502, description = "The server did not answer", body = ErrorBody),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn doctor_registered(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Reply<Json<Report>> {
    let Path(id) = path?;
    let connection_string = stored_connection_string(&s, &id).await?;
    Ok(Json(doctor::examine(&connection_string).await?))
}

/// A registered database's stored connection string, to connect with; 404 when there is no such
/// database.
pub(super) async fn stored_connection_string(s: &AppState, id: &str) -> Reply<String> {
    s.knowledge
        .connection_string(id)
        .await
        .map_err(|e| e.context("knowledge"))?
        .ok_or_else(|| Error::not_found(format!("database {id} not found")).into())
}

/// `POST /databases/doctor` with `{"connection_string": …}`, as `/databases/test` takes it.
#[utoipa::path(
    post,
    operation_id = "doctor_unregistered",
    path = "/databases/doctor",
    tag = "databases",
    request_body = ConnectionTest,
    responses(
        (status = 200, body = Report),
        (status = 400, description = "Not a PostgreSQL URL", body = ErrorBody),
        (status = 422, description = "The server refused the connection", body = ErrorBody),
        (status = 502, description = "The server did not answer", body = ErrorBody),
    )
)]
pub async fn doctor_unregistered(Body(test): Body<ConnectionTest>) -> Reply<Json<Report>> {
    Ok(Json(doctor::examine(&test.connection_string).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_made_from_names_as_the_original_did() {
        assert_eq!(id_from_name("Shop Production!"), "shop_production");
        assert_eq!(id_from_name("--"), "database");
    }

    #[test]
    fn a_database_never_carries_its_connection_string() {
        let view = DatabaseView::from(RegisteredDatabase {
            database_id: "shop".into(),
            connection_string: "postgres://u:s3cret@h/db".into(),
            connection_string_redacted: "postgres://u:***@h/db".into(),
            ..Default::default()
        });
        let json = serde_json::to_string(&view).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        assert!(json.contains("connection_string_redacted"), "{json}");
    }
}
