//! The OpenAPI 3 document of the REST API, derived from the request and response types and the
//! handlers' `#[utoipa::path]` attributes, served at `GET /openapi.json` (no token needed). The
//! dashboard's TypeScript types are generated from it (`dashboard/lib/openapi.json`, kept equal to
//! [`document`] by a test).

use axum::Json;
use utoipa::OpenApi;

use super::schema::{JsonObject, JsonValue, SystemConfigSchema};
use super::{
    actions, config, databases, detections, error, ledger, metrics, queries, session, system,
    tables,
};
use crate::{dbtest, doctor, tables as table_stats};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StartupMonkey gateway",
        description = "The dashboard's backend: REST over knowledge and the executor. Every change \
                       (and the doctor and the tables, which connect to the database) needs the token: `Authorization: Bearer <GATEWAY_TOKEN>` or \
                       the session cookie of `POST /auth/login`. Every error is `{\"error\": \"...\"}`."
    ),
    paths(
        databases::list,
        databases::get,
        databases::create,
        databases::update,
        databases::delete,
        databases::test,
        databases::doctor_registered,
        databases::doctor_unregistered,
        tables::list,
        detections::list,
        actions::list,
        actions::decide,
        ledger::list,
        config::get,
        config::save,
        metrics::latest,
        metrics::history,
        metrics::prometheus,
        queries::list,
        system::status,
        system::flush,
        system::events,
        session::login,
        session::logout,
        session::me,
    ),
    components(schemas(
        error::ErrorBody,
        SystemConfigSchema,
        JsonObject,
        JsonValue,
        dbtest::ConnectionReport,
        doctor::Report,
        table_stats::Report,
    ))
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as the dashboard keeps it: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
