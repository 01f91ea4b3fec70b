//! What the executor can do, as data: a detection becomes a [`Plan`] (validated, stored in
//! knowledge as the action's parameters), so an approval or a rollback after a restart rebuilds
//! exactly the same action. Each plan executes and, where it can, rolls back; each says up front
//! whether it can be rolled back.
//!
//! Everything that reaches SQL from a detection is validated here and quoted where it is used
//! (`proto::sql`); the analyser's statement text is never run as given.

pub mod backend;
pub mod create_index;
pub mod deploy;
pub mod docker;
pub mod pooler;
pub mod processes;
pub mod recommendation;
pub mod redis_cache;
pub mod role_timeout;
pub mod terminate;
pub mod tune_config;
pub mod vacuum;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use proto::actions::{ActionOutcome, Outcome, Plan, RollbackOutcome, StoredAction};
use proto::events::Detection;
use proto::status::ActionType;
use serde_json::Value;

use crate::databases::Database;
pub use crate::error::ActionError;
use crate::error::DatabaseError;
use create_index::CreateIndexRun;
use pooler::DeployPoolerRun;
use recommendation::RecommendationRun;
use redis_cache::DeployRedisRun;
use role_timeout::RoleTimeoutRun;
use terminate::TerminateRun;
use tune_config::TuneConfigRun;
use vacuum::VacuumRun;

/// Why a detection cannot become an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The action type exists in the original but is not an action we run.
    #[error("{0}")]
    NotImplemented(String),
    /// The detection's metadata is missing or malformed.
    #[error("{0}")]
    Invalid(String),
}

/// What an action runs with.
pub struct Context {
    pub database: Option<Database>,
    /// The action's time limit.
    pub timeout: Duration,
    /// Where deployed helpers keep their files.
    pub state_dir: PathBuf,
    /// Where deployed helpers run (`DEPLOY_BACKEND`).
    pub deploy: deploy::Deploy,
    pub action_id: String,
    pub policy: terminate::Policy,
    /// Starts when the executor stops waiting for running actions at shutdown: a long
    /// statement is cancelled and its leftovers cleaned up.
    pub stop: lifecycle::Shutdown,
}

impl Context {
    pub fn database(&self) -> Result<&Database, ActionError> {
        self.database
            .as_ref()
            .ok_or(ActionError::Database(DatabaseError::NoConnection))
    }

    /// The backend that runs deployed helpers.
    pub fn backend(&self) -> Arc<dyn backend::Backend> {
        self.deploy.backend(&self.state_dir)
    }
}

/// What the executor does with a [`Plan`] (the plan itself is data, in `proto::actions`).
pub trait PlanExt: Sized {
    /// The action a detection asks for.
    fn from_detection(detection: &Detection) -> Result<Self, PlanError>;

    /// One line for people: what will be done.
    fn describe(&self) -> String;

    /// Runs it; the outcome says what changed.
    fn execute(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<Outcome, ActionError>> + Send;

    /// Undoes a completed run, given what it returned.
    fn rollback(
        &self,
        context: &Context,
        result: &Outcome,
    ) -> impl Future<Output = Result<RollbackOutcome, ActionError>> + Send;

    /// After the executor stopped in the middle of this action: leaves the database clean and
    /// says what happened, `Ok(Some(outcome))` when the action had in fact completed.
    fn recover(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<Option<Outcome>, ActionError>> + Send;
}

impl PlanExt for Plan {
    fn from_detection(detection: &Detection) -> Result<Plan, PlanError> {
        let metadata = detection.action_metadata.clone().unwrap_or(Value::Null);
        let invalid =
            |e: ActionError| PlanError::Invalid(format!("{}: {e}", detection.action_type));
        let action_type: ActionType = detection.action_type.parse().map_err(|_| {
            PlanError::NotImplemented(format!(
                "no action runs for action type {} yet",
                shown(format!("{:?}", detection.action_type))
            ))
        })?;
        match action_type {
            ActionType::CreateIndex => proto::actions::CreateIndex::from_metadata(&metadata)
                .map(Plan::CreateIndex)
                .map_err(invalid),
            ActionType::VacuumTable => {
                proto::actions::Vacuum::from_metadata(&metadata, &detection.evidence)
                    .map(Plan::Vacuum)
                    .map_err(invalid)
            }
            ActionType::TerminateQuery => proto::actions::Terminate::from_metadata(&metadata)
                .map(Plan::Terminate)
                .map_err(invalid),
            ActionType::CacheRecommendation => Ok(Plan::Recommendation(
                proto::actions::Recommendation::from_detection(
                    proto::actions::Topic::Cache,
                    detection,
                ),
            )),
            ActionType::ConnectionRecommendation => Ok(Plan::Recommendation(
                proto::actions::Recommendation::from_detection(
                    proto::actions::Topic::Connections,
                    detection,
                ),
            )),
            ActionType::DeployConnectionPooler => {
                proto::actions::DeployPooler::from_metadata(&detection.database_id, &metadata)
                    .map(Plan::DeployPooler)
                    .map_err(invalid)
            }
            ActionType::TuneConfigHighLatency => Ok(Plan::TuneConfig(
                proto::actions::TuneConfig::from_metadata(&metadata),
            )),
            ActionType::SetRoleTimeout => proto::actions::RoleTimeout::new(
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
            .map_err(|e| invalid(ActionError::Invalid(e.to_string()))),
            ActionType::DeployRedis => proto::actions::DeployRedis::new(
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
            .map_err(|e| invalid(ActionError::Invalid(e.to_string()))),
        }
    }

    fn describe(&self) -> String {
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

    async fn execute(&self, context: &Context) -> Result<Outcome, ActionError> {
        Ok(match self {
            Plan::CreateIndex(p) => Outcome::IndexBuilt(p.execute(context).await?),
            Plan::Vacuum(p) => Outcome::Vacuumed(p.execute(context).await?),
            Plan::Terminate(p) => Outcome::Terminated(p.execute(context).await?),
            Plan::Recommendation(p) => Outcome::Recommended(p.execute()),
            Plan::DeployPooler(p) => Outcome::PoolerDeployed(p.execute(context).await?),
            Plan::DeployRedis(p) => Outcome::RedisDeployed(p.execute(context).await?),
            Plan::TuneConfig(p) => Outcome::Tuned(p.execute(context).await?),
            Plan::RoleTimeout(p) => Outcome::RoleTimeoutSet(p.execute(context).await?),
        })
    }

    async fn rollback(
        &self,
        context: &Context,
        result: &Outcome,
    ) -> Result<RollbackOutcome, ActionError> {
        let mismatch = || {
            ActionError::Invalid(format!(
                "the action's result is not a {} result: nothing is undone",
                self.action_type()
            ))
        };
        Ok(match (self, result) {
            (Plan::CreateIndex(p), Outcome::IndexBuilt(built)) => {
                RollbackOutcome::IndexDropped(p.rollback(context, built).await?)
            }
            (Plan::DeployPooler(p), Outcome::PoolerDeployed(_)) => {
                RollbackOutcome::HelperRemoved(p.rollback(context).await?)
            }
            (Plan::DeployRedis(p), Outcome::RedisDeployed(_)) => {
                RollbackOutcome::HelperRemoved(p.rollback(context).await?)
            }
            (Plan::TuneConfig(p), Outcome::Tuned(tuned)) => {
                RollbackOutcome::SettingsRestored(p.rollback(context, tuned).await?)
            }
            (Plan::RoleTimeout(p), Outcome::RoleTimeoutSet(set)) => {
                RollbackOutcome::RoleTimeoutRestored(p.rollback(context, set).await?)
            }
            (Plan::Vacuum(_), _) => {
                return Err(ActionError::Refused(
                    "VACUUM cannot be undone (and needs no undoing)".into(),
                ));
            }
            (Plan::Terminate(_), _) => {
                return Err(ActionError::Refused(
                    "a terminated session cannot be brought back".into(),
                ));
            }
            (Plan::Recommendation(_), _) => {
                return Err(ActionError::Refused(
                    "a recommendation changed nothing".into(),
                ));
            }
            _ => return Err(mismatch()),
        })
    }

    async fn recover(&self, context: &Context) -> Result<Option<Outcome>, ActionError> {
        match self {
            Plan::CreateIndex(p) => Ok(p.recover(context).await?.map(Outcome::IndexBuilt)),
            _ => Ok(None),
        }
    }
}

/// What a deployment backend reported, read as the action's typed result.
fn deployment<T: serde::de::DeserializeOwned>(reported: Value) -> Result<T, ActionError> {
    serde_json::from_value(reported).map_err(|e| {
        ActionError::Helper(format!(
            "the deployment backend's report cannot be read: {e}"
        ))
    })
}

/// A refused value as written in a reason: cut short, saying how long it was.
pub(crate) use proto::actions::shown;

/// A string field of `metadata`, or why not.
pub(crate) fn text(metadata: &Value, field: &str) -> Result<String, ActionError> {
    match metadata.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(ActionError::Invalid(format!("{field} is missing")))
        }
        Some(other) => Err(ActionError::Invalid(format!(
            "{field} must be a string, not {}",
            shown(other.to_string())
        ))),
    }
}

/// An identifier field, checked to be one.
pub(crate) fn identifier(metadata: &Value, field: &str) -> Result<String, ActionError> {
    let value = text(metadata, field)?;
    if proto::sql::valid_identifier(&value) {
        Ok(value)
    } else {
        Err(ActionError::Invalid(format!(
            "{field} {} is not a valid identifier",
            shown(format!("{value:?}"))
        )))
    }
}

/// Detections come from NATS: whatever their metadata, a plan is refused with a short reason or
/// made of values that are safe to run.
#[cfg(test)]
mod untrusted {
    use proptest::prelude::*;
    use proto::sql::valid_identifier;
    use serde_json::json;

    use super::*;

    /// Each action type with the fields its action reads; the last two run nothing.
    const ACTIONS: [(&str, &[&str]); 11] = [
        (
            "create_index",
            &[
                "table_name",
                "schema",
                "column_name",
                "columns",
                "index_name",
            ],
        ),
        (
            "vacuum_table",
            &["table", "schema", "table_name", "blocked_by_xmin_holder"],
        ),
        (
            "terminate_query",
            &[
                "pid",
                "backend_start_us",
                "graceful",
                "query_start_us",
                "state_change_us",
                "username",
            ],
        ),
        (
            "cache_optimization_recommendation",
            &["safe_option", "advanced_option"],
        ),
        (
            "connection_recommendation",
            &["safe_option", "advanced_option"],
        ),
        ("deploy_connection_pooler", &["pool_size", "pool_mode"]),
        ("tune_config_high_latency", &["host_memory_bytes"]),
        (
            "set_role_timeout",
            &["role", "setting", "value_ms", "reason"],
        ),
        ("deploy_redis", &["max_memory", "eviction_policy"]),
        ("", &["table_name"]),
        ("DROP TABLE t", &["table_name"]),
    ];

    fn awkward_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,20}",
            "[a-z_]{1,12}",
            prop::sample::select(vec![
                "x\"; DROP TABLE t; --",
                "public\".\"t",
                "Order \"Items\"",
                "a\u{0}b",
                "idle_in_transaction_session_timeout",
                "statement_timeout",
                "session",
                "transaction",
                "256mb",
                "1gb\nrequirepass x",
                "allkeys-lru",
                "42",
                "-1",
                "",
                "'; SELECT pg_sleep(10); --",
                "\\",
            ])
            .prop_map(str::to_owned),
            (1usize..70).prop_map(|n| "é".repeat(n)),
            Just("x".repeat(200_000)),
        ]
    }

    /// A scalar: text, numbers at the edges of every range an action checks, and the rest.
    fn awkward_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => awkward_text().prop_map(Value::from),
            1 => Just(Value::Null),
            1 => any::<bool>().prop_map(Value::from),
            4 => prop::sample::select(vec![
                i64::MIN, -1, 0, 1, 999, 1_000, 86_400_000, 86_400_001, 10_000, 10_001,
                i64::from(i32::MAX), i64::from(i32::MAX) + 1, 1 << 40, 1 << 62, i64::MAX,
            ])
            .prop_map(Value::from),
            3 => any::<i64>().prop_map(Value::from),
            1 => Just(json!(u64::MAX)),
            1 => Just(json!(1.5e308)),
            1 => Just(json!(0.5)),
        ]
    }

    /// Mostly a scalar, else lists and objects of them, index columns among them.
    fn awkward_value() -> impl Strategy<Value = Value> {
        let nested = awkward_scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                (awkward_text(), inner.clone(), any::<bool>()).prop_map(
                    |(name, descending, flag)| {
                        if flag {
                            json!({"name": name, "descending": descending})
                        } else {
                            json!([{"name": name}])
                        }
                    }
                ),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        prop_oneof![3 => awkward_scalar(), 1 => nested]
    }

    /// Metadata: mostly the fields the action reads (and now and then another's), with values
    /// of any type; sometimes not an object at all.
    fn metadata(fields: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
        let all: Vec<&str> = ACTIONS
            .iter()
            .flat_map(|(_, f)| f.iter().copied())
            .collect();
        let field = prop_oneof![
            4 => prop::sample::select(fields.to_vec()),
            1 => prop::sample::select(all),
        ];
        prop_oneof![
            8 => prop::collection::vec((field, awkward_value()), 0..8).prop_map(|fields| {
                Some(Value::Object(
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                ))
            }),
            1 => awkward_value().prop_map(Some),
            1 => Just(None),
        ]
    }

    fn detection() -> impl Strategy<Value = Detection> {
        prop::sample::select(ACTIONS.to_vec())
            .prop_flat_map(|(action_type, fields)| {
                (
                    Just(action_type),
                    metadata(fields),
                    awkward_text(),
                    awkward_value(),
                )
            })
            .prop_map(
                |(action_type, action_metadata, title, evidence)| Detection {
                    id: "d1".into(),
                    key: "db:x".into(),
                    database_id: "db".into(),
                    action_type: action_type.into(),
                    action_metadata,
                    title,
                    evidence,
                    ..Default::default()
                },
            )
    }

    /// What makes a plan safe to run, per action.
    fn check(plan: &Plan) -> Result<(), TestCaseError> {
        match plan {
            Plan::CreateIndex(p) => {
                prop_assert!(valid_identifier(&p.schema) && valid_identifier(&p.table));
                prop_assert!(valid_identifier(&p.index_name));
                prop_assert!((1..=32).contains(&p.columns.len()));
                prop_assert!(p.columns.iter().all(|c| valid_identifier(&c.name)));
            }
            Plan::Vacuum(p) => {
                prop_assert!(valid_identifier(&p.schema) && valid_identifier(&p.table));
            }
            Plan::Terminate(p) => {
                prop_assert!(p.pid > 0 && p.backend_start_us > 0 && p.since_us > 0);
            }
            Plan::DeployPooler(p) => {
                prop_assert!((1..=10_000).contains(&p.pool_size));
                prop_assert!(["session", "transaction"].contains(&p.pool_mode.as_str()));
            }
            Plan::DeployRedis(p) => {
                prop_assert!(
                    p.max_memory.bytes().all(|b| b.is_ascii_alphanumeric()),
                    "{:?}",
                    p.max_memory
                );
                prop_assert!(
                    p.eviction_policy
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'-')
                );
            }
            Plan::TuneConfig(p) => {
                // Three quarters of it must still be a number (no overflow).
                prop_assert!(
                    p.host_memory_bytes
                        .is_none_or(|b| b > 0 && b.checked_mul(3).is_some())
                );
            }
            Plan::RoleTimeout(p) => {
                prop_assert!(valid_identifier(&p.role));
                prop_assert!(
                    ["idle_in_transaction_session_timeout", "statement_timeout"]
                        .contains(&p.setting.as_str())
                );
                prop_assert!((1_000..=86_400_000).contains(&p.value_ms));
            }
            Plan::Recommendation(_) => {}
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_metadata_is_refused_briefly_or_becomes_a_plan_safe_to_run(detection in detection()) {
            match Plan::from_detection(&detection) {
                Ok(plan) => {
                    check(&plan)?;
                    prop_assert_eq!(plan.action_type().as_str(), detection.action_type.as_str());
                    prop_assert!(!plan.describe().is_empty());
                    // Stored with the action and read back for approval or rollback.
                    let stored = serde_json::to_string(&plan).unwrap();
                    let back: Plan = serde_json::from_str(&stored).unwrap();
                    if !matches!(plan, Plan::Recommendation(_)) {
                        prop_assert_eq!(back, plan);
                    }
                }
                Err(error) => {
                    let reason = error.to_string();
                    prop_assert!(!reason.is_empty());
                    prop_assert!(reason.len() <= 400, "{} bytes: {}", reason.len(), shown(reason.clone()));
                }
            }
        }
    }

    #[test]
    fn injection_in_identifiers_stays_inside_the_quotes() {
        let plan = Plan::from_detection(&Detection {
            action_type: "create_index".into(),
            action_metadata: Some(json!({
                "schema": "x\"; DROP TABLE t; --", "table_name": "t", "columns": [{"name": "a\"b"}],
                "index_name": "i",
            })),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            plan.describe(),
            r#"CREATE INDEX CONCURRENTLY "i" ON "x""; DROP TABLE t; --"."t" ("a""b")"#
        );
    }
}
