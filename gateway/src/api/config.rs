//! `GET /config` and `POST /config`: the system configuration knowledge keeps (thresholds,
//! execution mode, webhook, verification). A saved configuration is checked field by field first.

use axum::Json;
use axum::extract::State;
use proto::error::Error;
use proto::knowledge::{SaveSystemConfigRequest, SystemConfig};
use serde_json::Value;

use super::databases::Changed;
use super::error::ErrorBody;
use super::schema::SystemConfigSchema;
use super::{ApiError, AppState, Body, Reply};

#[utoipa::path(
    get,
    operation_id = "get_config",
    path = "/config",
    tag = "config",
    responses(
        (status = 200, body = SystemConfigSchema),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn get(State(s): State<AppState>) -> Reply<Json<SystemConfig>> {
    Ok(Json(
        s.knowledge
            .system_config()
            .await
            .map_err(|e| e.context("knowledge"))?,
    ))
}

/// The first field of `sent` the configuration does not have, or a section given as something
/// other than an object: serde would drop the one (so a misspelt field saved the defaults in
/// place of what was meant) and read an array as the other.
fn check_fields(sent: &Value, known: &Value, path: &str) -> Result<(), ApiError> {
    let (Value::Object(sent), Value::Object(known)) = (sent, known) else {
        return Ok(());
    };
    for (key, value) in sent {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match known.get(key) {
            None => {
                return Err(ApiError::unprocessable(format!(
                    "unknown field {here:?} in the configuration"
                )));
            }
            Some(Value::Object(_)) if !(value.is_object() || value.is_null()) => {
                return Err(ApiError::unprocessable(format!("{here} must be an object")));
            }
            Some(section) => check_fields(value, section, &here)?,
        }
    }
    Ok(())
}

/// Saves the configuration; a field left out takes its default.
#[utoipa::path(
    post,
    operation_id = "save_config",
    path = "/config",
    tag = "config",
    request_body = SystemConfigSchema,
    responses(
        (status = 200, body = Changed),
        (status = 400, description = "A bad webhook URL", body = ErrorBody),
        (status = 422, description = "A field the configuration does not have", body = ErrorBody),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn save(State(s): State<AppState>, Body(sent): Body<Value>) -> Reply<Json<Changed>> {
    let known = serde_json::to_value(SystemConfig {
        thresholds: Some(Default::default()),
        webhook: Some(Default::default()),
        verification: Some(Default::default()),
        ..Default::default()
    })
    .unwrap_or_default();
    check_fields(&sent, &known, "")?;
    let config: SystemConfig = serde_json::from_value(sent)
        .map_err(|e| ApiError::unprocessable(format!("configuration: {e}")))?;
    if let Some(hook) = &config.webhook
        && hook.enabled
    {
        let parsed = url::Url::parse(&hook.url)
            .map_err(|e| Error::invalid(format!("webhook.url {:?} is not a URL: {e}", hook.url)))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::invalid("webhook.url must be http or https").into());
        }
    }
    let reply = s
        .knowledge("SaveSystemConfig", |mut k| async move {
            k.save_system_config(SaveSystemConfigRequest {
                config: Some(config),
            })
            .await
        })
        .await?;
    s.webhooks.refresh().await;
    Ok(Json(Changed {
        success: reply.success,
        message: reply.message,
    }))
}
