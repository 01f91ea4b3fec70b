//! Schemas the derive cannot write: a closed vocabulary's words (from `proto::status`), open JSON
//! shaped by another service, and knowledge's generated `SystemConfig`. Used by the resource
//! modules' types and by `openapi`.

use std::borrow::Cow;

use proto::knowledge::SystemConfig;
use proto::status::{ActionStatus, ActionType, Category, Detector, LedgerState, Severity};
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};

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
