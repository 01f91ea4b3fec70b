//! `GET /detections`: the problems the analyser registered in knowledge.

use axum::Json;
use axum::extract::{Query, State};
use proto::knowledge::{DatabaseFilterRequest, Detection, GetDetectionRequest};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{AppState, Filter, Reply, instant};

/// A detection as the dashboard reads it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Detection)]
pub struct DetectionView {
    pub id: String,
    pub key: String,
    pub state: String,
    #[schema(schema_with = super::schema::severity)]
    pub severity: String,
    #[schema(schema_with = super::schema::category)]
    pub category: String,
    pub database_id: String,
    #[schema(schema_with = super::schema::detector)]
    pub detector_name: String,
    pub title: String,
    pub description: String,
    /// What the detector measured (its own JSON object).
    #[schema(value_type = Option<super::schema::JsonObject>)]
    pub evidence: Value,
    pub recommendation: String,
    pub action_type: String,
    /// What the executor needs to act (its own JSON object).
    #[schema(value_type = Option<super::schema::JsonObject>)]
    pub action_metadata: Value,
    pub action_id: String,
    /// Unix seconds when it was first detected.
    pub timestamp: i64,
    /// RFC 3339 of `timestamp`.
    pub created_at: String,
    pub last_seen: i64,
    pub occurrences: i64,
    /// Why it stopped being active; empty while active.
    pub resolution: String,
    /// RFC 3339, or empty while active.
    pub resolved_at: String,
}

impl From<Detection> for DetectionView {
    fn from(d: Detection) -> Self {
        Self {
            evidence: parse_json(&d.evidence_json),
            action_metadata: parse_json(&d.action_metadata_json),
            created_at: instant(d.created_at),
            resolved_at: instant(d.resolved_at),
            timestamp: d.created_at,
            id: d.id,
            key: d.key,
            state: d.state,
            severity: d.severity,
            category: d.category,
            database_id: d.database_id,
            detector_name: d.detector_name,
            title: d.title,
            description: d.description,
            recommendation: d.recommendation,
            action_type: d.action_type,
            action_id: d.action_id,
            last_seen: d.last_seen,
            occurrences: d.occurrences,
            resolution: d.resolution,
        }
    }
}

/// A JSON text stored in knowledge, or `null` when it is not JSON.
pub fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// The active detections (of `database_id`, when given), newest first; with `detection_id`,
/// that one detection whatever its state (a resolved one says why in `resolution`), or none.
#[utoipa::path(
    get,
    operation_id = "list_detections",
    path = "/detections",
    tag = "detections",
    params(
        ("database_id" = Option<String>, Query, description = "Only this database's"),
        ("detection_id" = Option<String>, Query, description = "That one detection, whatever its state"),
    ),
    responses(
        (status = 200, body = Vec<DetectionView>),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn list(
    State(s): State<AppState>,
    Query(f): Query<Filter>,
) -> Reply<Json<Vec<DetectionView>>> {
    if !f.detection_id.is_empty() {
        let detection_id = f.detection_id;
        let reply = s
            .knowledge("GetDetection", |mut k| async move {
                k.get_detection(GetDetectionRequest { detection_id }).await
            })
            .await?;
        let found = reply
            .detection
            .into_iter()
            .filter(|d| f.database_id.is_empty() || d.database_id == f.database_id)
            .map(DetectionView::from)
            .collect();
        return Ok(Json(found));
    }
    let database_id = f.database_id;
    let list = s
        .knowledge("GetActiveDetections", |mut k| async move {
            k.get_active_detections(DatabaseFilterRequest { database_id })
                .await
        })
        .await?;
    let mut out: Vec<DetectionView> = list.detections.into_iter().map(Into::into).collect();
    out.sort_by_key(|d| std::cmp::Reverse(d.timestamp));
    Ok(Json(out))
}
