//! The OpenAPI 3 document of the REST API, derived from the request and response types and the
//! handlers' `#[utoipa::path]` attributes, served at `GET /openapi.json` (no token needed). The
//! dashboard's TypeScript types are generated from it (`dashboard/lib/openapi.json`, kept equal to
//! [`document`] by a test).

use std::borrow::Cow;

use axum::Json;
use proto::knowledge::SystemConfig;
use proto::status::{ActionStatus, ActionType, Category, Detector, LedgerState, Severity};
use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};

use super::{actions, config, databases, detections, error, ledger, metrics, session, system};
use crate::{dbtest, doctor};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StartupMonkey gateway",
        description = "The dashboard's backend: REST over knowledge and the executor. Every change \
                       (and the doctor) needs the token: `Authorization: Bearer <GATEWAY_TOKEN>` or \
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
        detections::list,
        actions::list,
        actions::decide,
        ledger::list,
        config::get,
        config::save,
        metrics::latest,
        metrics::history,
        metrics::prometheus,
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

/// A string that is one of a vocabulary's words.
fn one_of(words: &'static [&'static str]) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(words.iter().copied()))
        .into()
}

pub fn severity() -> Schema {
    one_of(Severity::WORDS)
}

pub fn category() -> Schema {
    one_of(Category::WORDS)
}

pub fn detector() -> Schema {
    one_of(Detector::WORDS)
}

pub fn action_type() -> Schema {
    one_of(ActionType::WORDS)
}

pub fn action_status() -> Schema {
    one_of(ActionStatus::WORDS)
}

pub fn ledger_state() -> Schema {
    one_of(LedgerState::WORDS)
}

/// Any JSON object, its shape another service's (a detector's evidence, the ledger's
/// measurements, the collector's metric snapshot).
pub struct JsonObject;

impl utoipa::PartialSchema for JsonObject {
    fn schema() -> RefOr<Schema> {
        RefOr::T(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::FreeForm(true)))
                .into(),
        )
    }
}

impl utoipa::ToSchema for JsonObject {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JsonObject")
    }
}

/// Any JSON value, its shape another service's (the executor's plan and result).
pub struct JsonValue;

impl utoipa::PartialSchema for JsonValue {
    fn schema() -> RefOr<Schema> {
        RefOr::T(
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .into(),
        )
    }
}

impl utoipa::ToSchema for JsonValue {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JsonValue")
    }
}

/// Knowledge's `SystemConfig` (a generated message, with no schema of its own): its schema is read
/// from what it serialises to with every section present, so it follows `knowledge.proto`. Every
/// field may be left out of a saved configuration (it then takes its default).
pub struct SystemConfigSchema;

impl utoipa::PartialSchema for SystemConfigSchema {
    fn schema() -> RefOr<Schema> {
        let every_section = SystemConfig {
            thresholds: Some(Default::default()),
            webhook: Some(Default::default()),
            verification: Some(Default::default()),
            ..Default::default()
        };
        RefOr::T(shape_of(
            &serde_json::to_value(every_section).expect("a configuration serialises"),
        ))
    }
}

impl utoipa::ToSchema for SystemConfigSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SystemConfig")
    }
}

/// The schema of a JSON value's shape: objects with their (optional) properties, arrays of
/// strings, numbers, booleans and strings.
fn shape_of(value: &Value) -> Schema {
    match value {
        Value::Object(fields) => {
            let mut object = ObjectBuilder::new().schema_type(Type::Object);
            for (name, field) in fields {
                object = object.property(name, shape_of(field));
            }
            object.into()
        }
        Value::Array(_) => ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String))
            .into(),
        Value::Bool(_) => ObjectBuilder::new().schema_type(Type::Boolean).into(),
        Value::Number(_) => ObjectBuilder::new().schema_type(Type::Number).into(),
        Value::String(_) | Value::Null => ObjectBuilder::new().schema_type(Type::String).into(),
    }
}
