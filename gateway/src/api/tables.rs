//! `GET /databases/{id}/tables`: the Tables page of a registered database, read live with its
//! stored connection string (`tables::examine`), so it needs the token as the doctor does.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use proto::error::Error;
use serde::Deserialize;

use super::error::ErrorBody;
use super::{ApiError, AppState, Reply};
use crate::dbtest::ConnectError;
use crate::tables::{self, Options, Report, TablesError};

/// Which tables: `limit` (1–500, default 50) from `offset` (default 0).
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
}

impl Page {
    fn options(&self) -> Result<Options, Error> {
        let mut options = Options::default();
        if let Some(limit) = self.limit {
            if !(1..=tables::MAX_TABLES).contains(&limit) {
                return Err(Error::invalid(format!(
                    "limit must be between 1 and {}, not {limit}",
                    tables::MAX_TABLES
                )));
            }
            options.limit = limit;
        }
        if let Some(offset) = self.offset {
            if offset < 0 {
                return Err(Error::invalid(format!(
                    "offset must be 0 or more, not {offset}"
                )));
            }
            options.offset = offset;
        }
        Ok(options)
    }
}

impl From<TablesError> for ApiError {
    fn from(error: TablesError) -> Self {
        match &error {
            TablesError::Connect(ConnectError::Invalid(_)) => {
                Error::invalid(error.to_string()).into()
            }
            // The server answered and refused what the stored connection string says.
            TablesError::Connect(ConnectError::Refused(_)) => ApiError::unprocessable(format!(
                "{error}: correct the connection string in Settings"
            )),
            TablesError::Connect(ConnectError::Unreachable(_)) | TablesError::Read(_) => {
                ApiError::bad_gateway(format!(
                    "{error}: check that the database is up and reachable from the gateway, then reload"
                ))
            }
        }
    }
}

/// The tables of a registered database, read now: sizes, rows, dead rows, scans, the last
/// (auto)vacuum and analyze, each table's indexes, and the unused and duplicate indexes with the
/// `DROP INDEX CONCURRENTLY` that would remove each (never run here).
#[utoipa::path(
    get,
    operation_id = "database_tables",
    path = "/databases/{id}/tables",
    tag = "databases",
    params(
        ("id" = String, Path, description = "The database's id"),
        ("limit" = Option<i64>, Query, description = "Tables to return, 1–500 (default 50), largest first"),
        ("offset" = Option<i64>, Query, description = "Tables to skip (default 0)"),
    ),
    responses(
        (status = 200, body = Report),
        (status = 400, description = "A bad limit or offset", body = ErrorBody),
        (status = 401, description = "No token: the page connects with the stored credentials", body = ErrorBody),
        (status = 404, description = "No such database", body = ErrorBody),
        (status = 422, description = "The server refused the connection", body = ErrorBody),
        (status = 502, description = "The server did not answer", body = ErrorBody),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn list(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Page>, QueryRejection>,
) -> Reply<Json<Report>> {
    let Path(id) = path?;
    let Query(page) = query.map_err(|rejection| Error::invalid(rejection.body_text()))?;
    let options = page.options()?;
    let connection_string = super::databases::stored_connection_string(&s, &id).await?;
    Ok(Json(tables::examine(&connection_string, options).await?))
}
