//! What the executor can do, as data: a detection becomes a [`Plan`] (validated, stored in
//! knowledge as the action's parameters), so an approval or a rollback after a restart rebuilds
//! exactly the same action. Each plan executes and, where it can, rolls back; each says up front
//! whether it can be rolled back.
//!
//! Everything that reaches SQL from a detection is validated here and quoted where it is used
//! (`proto::sql`); the analyser's statement text is never run as given.

pub mod create_index;
pub mod pooler;
pub mod processes;
pub mod recommendation;
pub mod redis_cache;
pub mod role_timeout;
pub mod terminate;
pub mod tune_config;
pub mod vacuum;

use std::path::PathBuf;
use std::time::Duration;

use proto::events::Detection;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::databases::Database;

/// One action, ready to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Plan {
    CreateIndex(create_index::CreateIndex),
    Vacuum(vacuum::Vacuum),
    Terminate(terminate::Terminate),
    Recommendation(recommendation::Recommendation),
    DeployPooler(pooler::DeployPooler),
    DeployRedis(redis_cache::DeployRedis),
    TuneConfig(tune_config::TuneConfig),
    RoleTimeout(role_timeout::RoleTimeout),
}

/// Why a detection cannot become an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The action type exists in the original but is not an action we run.
    NotImplemented(String),
    /// The detection's metadata is missing or malformed.
    Invalid(String),
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::NotImplemented(what) | PlanError::Invalid(what) => f.write_str(what),
        }
    }
}

/// What an action runs with.
pub struct Context {
    pub database: Option<Database>,
    /// The action's time limit.
    pub timeout: Duration,
    /// Where deployed helpers keep their files.
    pub state_dir: PathBuf,
    pub action_id: String,
    pub policy: terminate::Policy,
}

impl Context {
    pub fn database(&self) -> Result<&Database, String> {
        self.database
            .as_ref()
            .ok_or_else(|| "no database connection for this action".to_owned())
    }
}

impl Plan {
    /// The action a detection asks for.
    pub fn from_detection(detection: &Detection) -> Result<Plan, PlanError> {
        let metadata = detection.action_metadata.clone().unwrap_or(Value::Null);
        let invalid = |e: String| PlanError::Invalid(format!("{}: {e}", detection.action_type));
        match detection.action_type.as_str() {
            "create_index" => create_index::CreateIndex::from_metadata(&metadata)
                .map(Plan::CreateIndex)
                .map_err(invalid),
            "vacuum_table" => vacuum::Vacuum::from_metadata(&metadata, &detection.evidence)
                .map(Plan::Vacuum)
                .map_err(invalid),
            "terminate_query" => terminate::Terminate::from_metadata(&metadata)
                .map(Plan::Terminate)
                .map_err(invalid),
            "cache_optimization_recommendation" => Ok(Plan::Recommendation(
                recommendation::Recommendation::from_detection(detection),
            )),
            "deploy_connection_pooler" => {
                pooler::DeployPooler::from_metadata(&detection.database_id, &metadata)
                    .map(Plan::DeployPooler)
                    .map_err(invalid)
            }
            "tune_config_high_latency" => Ok(Plan::TuneConfig(
                tune_config::TuneConfig::from_metadata(&metadata),
            )),
            "set_role_timeout" => role_timeout::RoleTimeout::new(
                &text(&metadata, "role").map_err(invalid)?,
                &text(&metadata, "setting").map_err(invalid)?,
                metadata
                    .get("value_ms")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                metadata
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )
            .map(Plan::RoleTimeout)
            .map_err(invalid),
            "deploy_redis" => redis_cache::DeployRedis::new(
                &detection.database_id,
                metadata
                    .get("max_memory")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                metadata
                    .get("eviction_policy")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )
            .map(Plan::DeployRedis)
            .map_err(invalid),
            other => Err(PlanError::NotImplemented(format!(
                "no action runs for action type {other:?} yet"
            ))),
        }
    }

    pub fn action_type(&self) -> &'static str {
        match self {
            Plan::CreateIndex(_) => "create_index",
            Plan::Vacuum(_) => "vacuum_table",
            Plan::Terminate(_) => "terminate_query",
            Plan::Recommendation(_) => "cache_optimization_recommendation",
            Plan::DeployPooler(_) => "deploy_connection_pooler",
            Plan::DeployRedis(_) => "deploy_redis",
            Plan::TuneConfig(_) => "tune_config_high_latency",
            Plan::RoleTimeout(_) => "set_role_timeout",
        }
    }

    /// Whether a completed run can be undone.
    pub fn can_rollback(&self) -> bool {
        matches!(
            self,
            Plan::CreateIndex(_)
                | Plan::DeployPooler(_)
                | Plan::DeployRedis(_)
                | Plan::TuneConfig(_)
                | Plan::RoleTimeout(_)
        )
    }

    /// Whether it talks to the watched database.
    pub fn needs_database(&self) -> bool {
        !matches!(self, Plan::Recommendation(_) | Plan::DeployRedis(_))
    }

    /// One line for people: what will be done.
    pub fn describe(&self) -> String {
        match self {
            Plan::CreateIndex(p) => p.statement(),
            Plan::Vacuum(p) => p.statement(),
            Plan::Terminate(p) => p.describe(),
            Plan::Recommendation(p) => p.title.clone(),
            Plan::DeployPooler(p) => p.describe(),
            Plan::DeployRedis(p) => p.describe(),
            Plan::TuneConfig(p) => p.describe(),
            Plan::RoleTimeout(p) => p.describe(),
        }
    }

    /// Runs it; the JSON says what changed.
    pub async fn execute(&self, context: &Context) -> Result<Value, String> {
        match self {
            Plan::CreateIndex(p) => p.execute(context).await,
            Plan::Vacuum(p) => p.execute(context).await,
            Plan::Terminate(p) => p.execute(context).await,
            Plan::Recommendation(p) => Ok(p.execute()),
            Plan::DeployPooler(p) => p.execute(context).await,
            Plan::DeployRedis(p) => p.execute(&context.state_dir).await,
            Plan::TuneConfig(p) => p.execute(context).await,
            Plan::RoleTimeout(p) => p.execute(context).await,
        }
    }

    /// Undoes a completed run, given what it returned.
    pub async fn rollback(&self, context: &Context, result: &Value) -> Result<Value, String> {
        match self {
            Plan::CreateIndex(p) => p.rollback(context, result).await,
            Plan::Vacuum(_) => Err("VACUUM cannot be undone (and needs no undoing)".into()),
            Plan::Terminate(_) => Err("a terminated session cannot be brought back".into()),
            Plan::Recommendation(_) => Err("a recommendation changed nothing".into()),
            Plan::DeployPooler(p) => p.rollback(context).await,
            Plan::DeployRedis(p) => p.rollback(&context.state_dir).await,
            Plan::TuneConfig(p) => p.rollback(context, result).await,
            Plan::RoleTimeout(p) => p.rollback(context, result).await,
        }
    }

    /// After the executor stopped in the middle of this action: leaves the database clean and
    /// says what happened, `Ok(Some(result))` when the action had in fact completed.
    pub async fn recover(&self, context: &Context) -> Result<Option<Value>, String> {
        match self {
            Plan::CreateIndex(p) => p.recover(context).await,
            _ => Ok(None),
        }
    }
}

/// A string field of `metadata`, or why not.
pub(crate) fn text(metadata: &Value, field: &str) -> Result<String, String> {
    match metadata.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(format!("{field} is missing")),
        Some(other) => Err(format!("{field} must be a string, not {other}")),
    }
}

/// An identifier field, checked to be one.
pub(crate) fn identifier(metadata: &Value, field: &str) -> Result<String, String> {
    let value = text(metadata, field)?;
    if proto::sql::valid_identifier(&value) {
        Ok(value)
    } else {
        Err(format!("{field} {value:?} is not a valid identifier"))
    }
}
