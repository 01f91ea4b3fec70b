//! What the executor records about an action in knowledge, as data every service reads the same
//! way: the plan it runs (`params_json`, a [`StoredAction`]) and what running it did
//! (`result_json`, an [`ActionOutcome`]: one result type per action, and what a rollback did).
//!
//! The JSON is exactly what executors have stored since plans were introduced (the plan tagged by
//! `kind`, the result an object of the action's own fields, a rollback's result under
//! `rollback`), so records written before these types existed read through them. Behaviour —
//! turning a detection into a plan, running it, undoing it — stays in the executor.
//!
//! Values that reach SQL or a helper's configuration unquoted (a role's timeout setting, a pool
//! mode, Redis's memory limit and eviction policy) are closed or checked when a record is read,
//! not only when a plan is made: a tampered record cannot inject anything.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sql::{IndexFunction, IndexPredicate, valid_identifier};
use crate::status::ActionType;

/// A stored plan or value that breaks a rule its type keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPlan(pub String);

impl fmt::Display for InvalidPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidPlan {}

/// At most this much of a refused value is repeated in a reason.
const SHOWN_BYTES: usize = 80;

/// `value` as written in a reason: cut at a character boundary, saying how long it was.
pub fn shown(value: String) -> String {
    if value.len() <= SHOWN_BYTES {
        return value;
    }
    let mut end = SHOWN_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &value[..end], value.len())
}

// ------------------------------------------------------------------ the stored record

/// An action's `params_json`: the plan, the detection's key (for verification) and the one
/// line people read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAction {
    pub plan: Plan,
    pub detection_key: String,
    pub description: String,
}

impl StoredAction {
    pub fn from_params_json(params_json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(params_json)
    }

    pub fn to_params_json(&self) -> String {
        // A plan is strings, numbers and JSON values: it always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One action, ready to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Plan {
    CreateIndex(CreateIndex),
    Vacuum(Vacuum),
    Terminate(Terminate),
    Recommendation(Recommendation),
    DeployPooler(DeployPooler),
    DeployRedis(DeployRedis),
    TuneConfig(TuneConfig),
    RoleTimeout(RoleTimeout),
}

impl Plan {
    pub fn action_type(&self) -> ActionType {
        match self {
            Plan::CreateIndex(_) => ActionType::CreateIndex,
            Plan::Vacuum(_) => ActionType::VacuumTable,
            Plan::Terminate(_) => ActionType::TerminateQuery,
            Plan::Recommendation(r) => r.topic.action_type(),
            Plan::DeployPooler(_) => ActionType::DeployConnectionPooler,
            Plan::DeployRedis(_) => ActionType::DeployRedis,
            Plan::TuneConfig(_) => ActionType::TuneConfigHighLatency,
            Plan::RoleTimeout(_) => ActionType::SetRoleTimeout,
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

    /// The table it works on, `(schema, table)`: an index's or a VACUUM's.
    pub fn table(&self) -> Option<(&str, &str)> {
        match self {
            Plan::CreateIndex(p) => Some((&p.schema, &p.table)),
            Plan::Vacuum(p) => Some((&p.schema, &p.table)),
            _ => None,
        }
    }
}

// ------------------------------------------------------------------ plans

/// One key column of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyColumn {
    pub name: String,
    #[serde(default)]
    pub descending: bool,
    /// For an expression index: the function applied to the column, from a closed list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<IndexFunction>,
}

/// `create_index`: `CREATE INDEX CONCURRENTLY` on `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateIndex {
    pub schema: String,
    pub table: String,
    pub index_name: String,
    pub columns: Vec<KeyColumn>,
    /// Columns carried in the index without ordering by them (`INCLUDE`). Absent from plans
    /// stored before covering indexes were proposed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// For a partial index: the rows it holds (`WHERE "column" = constant`). Absent from plans
    /// stored before partial indexes were proposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<IndexPredicate>,
}

/// `vacuum_table`: `VACUUM (ANALYZE)` on `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vacuum {
    pub schema: String,
    pub table: String,
    /// The analyser saw a session, prepared transaction or slot holding the xmin horizon.
    #[serde(default)]
    pub blocked_by_xmin_holder: bool,
    /// The session the analyser named as the holder, waited for before VACUUM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
}

/// A session, told apart from a later one with the same pid by its backend start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: i32,
    pub backend_start_us: i64,
}

/// `terminate_query`: one session the analyser reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminate {
    pub pid: i32,
    pub backend_start_us: i64,
    /// true: a running statement (cancel first); false: idle in transaction (terminate).
    pub graceful: bool,
    /// The statement start (running) or the last state change (idle) the analyser saw.
    pub since_us: i64,
    #[serde(default)]
    pub username: String,
}

/// What a recommendation is about: its action type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Plans stored before topics existed were all about the cache.
    #[default]
    Cache,
    Connections,
}

impl Topic {
    pub fn action_type(self) -> ActionType {
        match self {
            Topic::Cache => ActionType::CacheRecommendation,
            Topic::Connections => ActionType::ConnectionRecommendation,
        }
    }
}

/// `cache_optimization_recommendation`, `connection_recommendation`: steps for a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    #[serde(default)]
    pub topic: Topic,
    pub title: String,
    pub options: Vec<Value>,
}

/// PgBouncer's `pool_mode`, from a closed list (it is written into pgbouncer.ini).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolMode {
    #[default]
    Session,
    Transaction,
}

impl PoolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

impl fmt::Display for PoolMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `deploy_connection_pooler`: PgBouncer in front of the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployPooler {
    pub database_id: String,
    pub pool_size: u32,
    pub pool_mode: PoolMode,
}

/// `deploy_redis`: a Redis cache. `max_memory` and `eviction_policy` go into redis.conf, so
/// they are checked whenever a plan is made or read ([`DeployRedis::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedRedis")]
pub struct DeployRedis {
    pub database_id: String,
    /// Redis `maxmemory` syntax: `256mb`, `1gb`.
    pub max_memory: String,
    pub eviction_policy: String,
}

#[derive(Deserialize)]
struct UncheckedRedis {
    database_id: String,
    max_memory: String,
    eviction_policy: String,
}

impl TryFrom<UncheckedRedis> for DeployRedis {
    type Error = InvalidPlan;

    fn try_from(r: UncheckedRedis) -> Result<Self, Self::Error> {
        DeployRedis::new(&r.database_id, &r.max_memory, &r.eviction_policy)
    }
}

/// Redis's eviction policies.
pub const EVICTION_POLICIES: [&str; 8] = [
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "noeviction",
];

impl DeployRedis {
    /// Empty `max_memory` means `256mb`, empty `eviction_policy` `allkeys-lru`.
    pub fn new(
        database_id: &str,
        max_memory: &str,
        eviction_policy: &str,
    ) -> Result<Self, InvalidPlan> {
        let max_memory = if max_memory.is_empty() {
            "256mb"
        } else {
            max_memory
        }
        .to_lowercase();
        let digits = max_memory.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &max_memory[digits.len()..];
        if digits.is_empty()
            || !digits.chars().all(|c| c.is_ascii_digit())
            || !["", "b", "kb", "mb", "gb"].contains(&unit)
        {
            return Err(InvalidPlan(format!(
                "max_memory {} must look like 256mb or 1gb",
                shown(format!("{max_memory:?}"))
            )));
        }
        let eviction_policy = if eviction_policy.is_empty() {
            "allkeys-lru"
        } else {
            eviction_policy
        };
        if !EVICTION_POLICIES.contains(&eviction_policy) {
            return Err(InvalidPlan(format!(
                "eviction_policy {} must be one of {}",
                shown(format!("{eviction_policy:?}")),
                EVICTION_POLICIES.join(", ")
            )));
        }
        Ok(Self {
            database_id: database_id.to_owned(),
            max_memory,
            eviction_policy: eviction_policy.to_owned(),
        })
    }
}

/// The settings `tune_config_high_latency` may change with `ALTER SYSTEM` and put back on
/// rollback; the doctor checks the executor's role may change exactly these.
pub const TUNED_PARAMETERS: [&str; 3] = ["effective_cache_size", "work_mem", "random_page_cost"];

/// `tune_config_high_latency`: planner and memory settings from the measured RAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuneConfig {
    /// The host's RAM as the collector read it; `None` when the database is not local.
    pub host_memory_bytes: Option<i64>,
}

/// The per-role timeouts the executor sets: a closed list, because the name goes into
/// `ALTER ROLE … SET <name>` as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleSetting {
    IdleInTransactionSessionTimeout,
    StatementTimeout,
}

impl RoleSetting {
    pub const ALL: [RoleSetting; 2] = [
        RoleSetting::IdleInTransactionSessionTimeout,
        RoleSetting::StatementTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RoleSetting::IdleInTransactionSessionTimeout => "idle_in_transaction_session_timeout",
            RoleSetting::StatementTimeout => "statement_timeout",
        }
    }
}

impl fmt::Display for RoleSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RoleSetting {
    type Err = InvalidPlan;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|setting| setting.as_str() == s)
            .ok_or_else(|| {
                InvalidPlan(format!(
                    "{} is not a per-role timeout we set",
                    shown(format!("{s:?}"))
                ))
            })
    }
}

/// `set_role_timeout`: a role's timeout in one database. Checked whenever it is made or read
/// ([`RoleTimeout::new`]): a role that is an identifier, a setting from [`RoleSetting`], 1 s to
/// 24 h.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedRoleTimeout")]
pub struct RoleTimeout {
    pub role: String,
    pub setting: RoleSetting,
    pub value_ms: i64,
    /// Why it is proposed, for people.
    pub reason: String,
}

#[derive(Deserialize)]
struct UncheckedRoleTimeout {
    role: String,
    setting: String,
    value_ms: i64,
    reason: String,
}

impl TryFrom<UncheckedRoleTimeout> for RoleTimeout {
    type Error = InvalidPlan;

    fn try_from(r: UncheckedRoleTimeout) -> Result<Self, Self::Error> {
        RoleTimeout::new(&r.role, &r.setting, r.value_ms, r.reason)
    }
}

impl RoleTimeout {
    pub fn new(
        role: &str,
        setting: &str,
        value_ms: i64,
        reason: String,
    ) -> Result<Self, InvalidPlan> {
        if !valid_identifier(role) {
            return Err(InvalidPlan(format!(
                "role {} is not a valid identifier",
                shown(format!("{role:?}"))
            )));
        }
        let setting: RoleSetting = setting.parse()?;
        if !(1_000..=86_400_000).contains(&value_ms) {
            return Err(InvalidPlan(format!("{value_ms} ms is outside 1 s to 24 h")));
        }
        Ok(Self {
            role: role.to_owned(),
            setting,
            value_ms,
            reason,
        })
    }
}

// ------------------------------------------------------------------ results

/// While an action runs, its `result_json` names the executor that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub executor: String,
}

impl Claim {
    /// The executor named in `result_json`, when it names one (actions from before executors
    /// had names do not).
    pub fn from_result_json(result_json: &str) -> Option<Self> {
        serde_json::from_str(result_json).ok()
    }
}

/// `create_index`'s result: the index built (or, after an executor restart, found built).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBuilt {
    pub index_name: String,
    pub schema: String,
    pub table_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<KeyColumn>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<IndexPredicate>,
    pub statement: String,
    pub index_oid: i64,
    /// `pg_relation_size` right after the build; absent when the build was confirmed after a
    /// restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default)]
    pub concurrent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `vacuum_table`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vacuumed {
    pub schema: String,
    pub table_name: String,
    pub operation: String,
    pub statement: String,
    pub dead_tuples_before: i64,
    pub dead_tuples_after: i64,
    pub tuples_reclaimed: i64,
    pub live_tuples: i64,
    pub duration_ms: i64,
    #[serde(default)]
    pub blocked_by_xmin_holder: bool,
    #[serde(default)]
    pub waited_for_holder: Option<HolderWait>,
}

/// How long VACUUM waited for the session holding the xmin horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderWait {
    pub pid: i32,
    pub waited_ms: i64,
}

/// What became of the reported session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminateOutcome {
    /// The session was gone (or a different one had its pid).
    AlreadyGone,
    /// It was no longer doing what was reported.
    MovedOn,
    Cancelled,
    Terminated,
}

/// `terminate_query`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminated {
    pub pid: i32,
    #[serde(default)]
    pub username: String,
    pub outcome: TerminateOutcome,
    /// The signal(s) sent, `None` when none was.
    #[serde(default)]
    pub method: Option<String>,
    pub graceful: bool,
}

/// A recommendation's result: nothing changed, the steps for a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommended {
    pub recommendation: bool,
    pub title: String,
    pub options: Vec<Value>,
    pub note: String,
}

/// Where a deployed helper (PgBouncer, Redis) runs, as its backend reports it. Fields are absent
/// when a helper found running again has no record of them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Deployed {
    /// `process` or `docker`.
    pub backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Password masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// A local process's pid and directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<String>,
    /// A container's id, name and image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// "already running; nothing started" when a second run found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `deploy_connection_pooler`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolerDeployed {
    #[serde(flatten)]
    pub site: Deployed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_mode: Option<PoolMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_pool_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_pool_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_client_conn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<String>,
}

/// `deploy_redis`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RedisDeployed {
    #[serde(flatten)]
    pub site: Deployed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_policy: Option<String>,
    /// The 0600 file holding the generated password (never the password itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_code_change: Option<bool>,
}

/// One setting changed with `ALTER SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    pub name: String,
    pub before: String,
    pub after: String,
    /// The previous value was itself set with `ALTER SYSTEM` (rollback sets it back, else
    /// resets).
    pub before_was_altered: bool,
}

/// `tune_config_high_latency`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuned {
    pub config_changes: Vec<ConfigChange>,
    /// Settings that need a restart or a person, with steps.
    pub recommendations: Vec<Value>,
    pub host_memory_bytes: Option<i64>,
    pub reloaded: bool,
}

/// `set_role_timeout`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleTimeoutSet {
    pub role: String,
    pub setting: RoleSetting,
    /// The role's own value in this database before, `None` when it had none.
    pub before: Option<String>,
    pub after: String,
    pub statement: String,
    #[serde(default)]
    pub note: String,
}

/// What a completed action did, by action type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    IndexBuilt(IndexBuilt),
    Vacuumed(Vacuumed),
    Terminated(Terminated),
    Recommended(Recommended),
    PoolerDeployed(PoolerDeployed),
    RedisDeployed(RedisDeployed),
    Tuned(Tuned),
    RoleTimeoutSet(RoleTimeoutSet),
}

impl Outcome {
    /// `result` read as the result of `action_type`.
    pub fn from_value(action_type: ActionType, result: Value) -> Result<Self, serde_json::Error> {
        use serde_json::from_value as read;
        Ok(match action_type {
            ActionType::CreateIndex => Outcome::IndexBuilt(read(result)?),
            ActionType::VacuumTable => Outcome::Vacuumed(read(result)?),
            ActionType::TerminateQuery => Outcome::Terminated(read(result)?),
            ActionType::CacheRecommendation | ActionType::ConnectionRecommendation => {
                Outcome::Recommended(read(result)?)
            }
            ActionType::DeployConnectionPooler => Outcome::PoolerDeployed(read(result)?),
            ActionType::DeployRedis => Outcome::RedisDeployed(read(result)?),
            ActionType::TuneConfigHighLatency => Outcome::Tuned(read(result)?),
            ActionType::SetRoleTimeout => Outcome::RoleTimeoutSet(read(result)?),
        })
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// `create_index`'s rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDropped {
    pub dropped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A deployed helper's rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperRemoved {
    pub stopped: bool,
    /// The directory or container removed; `None` when there was nothing to remove.
    pub removed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `tune_config_high_latency`'s rollback: the statements run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsRestored {
    pub restored: Vec<String>,
}

/// `set_role_timeout`'s rollback: the statement run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleTimeoutRestored {
    pub restored: String,
}

/// What a rollback did, by action type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RollbackOutcome {
    IndexDropped(IndexDropped),
    HelperRemoved(HelperRemoved),
    SettingsRestored(SettingsRestored),
    RoleTimeoutRestored(RoleTimeoutRestored),
}

impl RollbackOutcome {
    /// `rollback` read as the rollback of `action_type`; `None` for an action type that
    /// cannot be rolled back.
    pub fn from_value(
        action_type: ActionType,
        rollback: Value,
    ) -> Result<Option<Self>, serde_json::Error> {
        use serde_json::from_value as read;
        Ok(Some(match action_type {
            ActionType::CreateIndex => RollbackOutcome::IndexDropped(read(rollback)?),
            ActionType::DeployConnectionPooler | ActionType::DeployRedis => {
                RollbackOutcome::HelperRemoved(read(rollback)?)
            }
            ActionType::TuneConfigHighLatency => RollbackOutcome::SettingsRestored(read(rollback)?),
            ActionType::SetRoleTimeout => RollbackOutcome::RoleTimeoutRestored(read(rollback)?),
            _ => return Ok(None),
        }))
    }
}

/// An action's `result_json` once it completed: what it did and, once rolled back, what the
/// rollback did (stored under `rollback` beside the result's own fields).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionOutcome {
    pub outcome: Outcome,
    pub rollback: Option<RollbackOutcome>,
}

impl ActionOutcome {
    /// `result_json` of a completed or rolled-back action of `action_type`.
    pub fn from_result_json(
        action_type: ActionType,
        result_json: &str,
    ) -> Result<Self, serde_json::Error> {
        let mut result: Map<String, Value> = serde_json::from_str(result_json)?;
        let rollback = match result.remove("rollback") {
            Some(rollback) => RollbackOutcome::from_value(action_type, rollback)?,
            None => None,
        };
        Ok(Self {
            outcome: Outcome::from_value(action_type, Value::Object(result))?,
            rollback,
        })
    }

    pub fn to_result_json(&self) -> String {
        let mut result = self.outcome.to_value();
        if let (Some(rollback), Value::Object(fields)) = (&self.rollback, &mut result) {
            fields.insert(
                "rollback".into(),
                serde_json::to_value(rollback).unwrap_or(Value::Null),
            );
        }
        result.to_string()
    }

    /// The index's size right after it was built (verification's storage cost).
    pub fn size_bytes(&self) -> Option<i64> {
        match &self.outcome {
            Outcome::IndexBuilt(built) => built.size_bytes,
            _ => None,
        }
    }

    /// The table's dead tuples before VACUUM.
    pub fn dead_tuples_before(&self) -> Option<i64> {
        match &self.outcome {
            Outcome::Vacuumed(vacuumed) => Some(vacuumed.dead_tuples_before),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `params_json` as executors stored it before this module, one per plan kind.
    fn stored_params() -> Vec<(ActionType, Value)> {
        vec![
            (
                ActionType::CreateIndex,
                json!({"plan": {"kind": "create_index", "schema": "public", "table": "orders",
                    "index_name": "idx_orders_customer_id",
                    "columns": [{"name": "customer_id", "descending": false}]},
                    "detection_key": "db:missing_index:public.orders.customer_id",
                    "description": "CREATE INDEX CONCURRENTLY \"idx_orders_customer_id\" ON \"public\".\"orders\" (\"customer_id\")"}),
            ),
            (
                ActionType::CreateIndex,
                json!({"plan": {"kind": "create_index", "schema": "app", "table": "users",
                    "index_name": "idx_users_email",
                    "columns": [{"name": "email", "descending": true, "function": "lower"}],
                    "include": ["id"]},
                    "detection_key": "k", "description": "d"}),
            ),
            (
                ActionType::VacuumTable,
                json!({"plan": {"kind": "vacuum", "schema": "public", "table": "events", "blocked_by_xmin_holder": false},
                    "detection_key": "db:table_bloat:public.events", "description": "VACUUM (ANALYZE) \"public\".\"events\""}),
            ),
            (
                ActionType::VacuumTable,
                json!({"plan": {"kind": "vacuum", "schema": "public", "table": "events",
                    "blocked_by_xmin_holder": true, "holder": {"pid": 42, "backend_start_us": 7}},
                    "detection_key": "k", "description": "d"}),
            ),
            (
                ActionType::TerminateQuery,
                json!({"plan": {"kind": "terminate", "pid": 4242, "backend_start_us": 1700000000000000_i64,
                    "graceful": false, "since_us": 1700000000500000_i64, "username": "app"},
                    "detection_key": "db:idle_transaction:4242", "description": "terminate session 4242 (idle in transaction)"}),
            ),
            (
                ActionType::CacheRecommendation,
                json!({"plan": {"kind": "recommendation", "topic": "cache", "title": "Cache hit ratio is low",
                    "options": [{"title": "raise shared_buffers"}]},
                    "detection_key": "k", "description": "Cache hit ratio is low"}),
            ),
            (
                ActionType::ConnectionRecommendation,
                json!({"plan": {"kind": "recommendation", "topic": "connections", "title": "t", "options": []},
                    "detection_key": "k", "description": "t"}),
            ),
            (
                ActionType::DeployConnectionPooler,
                json!({"plan": {"kind": "deploy_pooler", "database_id": "db", "pool_size": 20, "pool_mode": "session"},
                    "detection_key": "k", "description": "deploy PgBouncer (session mode, pool of 20) in front of db"}),
            ),
            (
                ActionType::DeployRedis,
                json!({"plan": {"kind": "deploy_redis", "database_id": "db", "max_memory": "256mb", "eviction_policy": "allkeys-lru"},
                    "detection_key": "", "description": "deploy a Redis cache (256mb, allkeys-lru) for db"}),
            ),
            (
                ActionType::TuneConfigHighLatency,
                json!({"plan": {"kind": "tune_config", "host_memory_bytes": 8589934592_i64},
                    "detection_key": "k", "description": "tune memory and planner settings from the measured values"}),
            ),
            (
                ActionType::TuneConfigHighLatency,
                json!({"plan": {"kind": "tune_config", "host_memory_bytes": null},
                    "detection_key": "k", "description": "d"}),
            ),
            (
                ActionType::SetRoleTimeout,
                json!({"plan": {"kind": "role_timeout", "role": "app",
                    "setting": "idle_in_transaction_session_timeout", "value_ms": 300000,
                    "reason": "role app's transactions were left idle and terminated 2 times in a day"},
                    "detection_key": "", "description": "ALTER ROLE \"app\" IN DATABASE <this database> SET idle_in_transaction_session_timeout = '300000ms'"}),
            ),
        ]
    }

    #[test]
    fn every_stored_plan_reads_and_writes_back_the_same_json() {
        for (action_type, params) in stored_params() {
            let stored = StoredAction::from_params_json(&params.to_string())
                .unwrap_or_else(|e| panic!("{params}: {e}"));
            assert_eq!(stored.plan.action_type(), action_type, "{params}");
            let back: Value = serde_json::from_str(&stored.to_params_json()).unwrap();
            assert_eq!(back, params);
        }
        // Plans stored before holders and topics were recorded still read.
        for (action_type, old) in [
            (
                ActionType::VacuumTable,
                json!({"plan": {"kind": "vacuum", "schema": "public", "table": "t"},
                    "detection_key": "k", "description": "d"}),
            ),
            (
                ActionType::CacheRecommendation,
                json!({"plan": {"kind": "recommendation", "title": "t", "options": []},
                    "detection_key": "k", "description": "d"}),
            ),
        ] {
            let stored = StoredAction::from_params_json(&old.to_string()).unwrap();
            assert_eq!(stored.plan.action_type(), action_type);
        }
        let index = StoredAction::from_params_json(&stored_params()[0].1.to_string()).unwrap();
        assert_eq!(index.plan.table(), Some(("public", "orders")));
        assert_eq!(
            index.detection_key,
            "db:missing_index:public.orders.customer_id"
        );
    }

    /// `result_json` as executors stored it before this module, one per action type, some
    /// rolled back.
    fn stored_results() -> Vec<(ActionType, Value)> {
        vec![
            (
                ActionType::CreateIndex,
                json!({"index_name": "idx_orders_customer_id", "schema": "public", "table_name": "orders",
                    "columns": [{"name": "customer_id", "descending": false}], "include": [],
                    "statement": "CREATE INDEX CONCURRENTLY \"idx_orders_customer_id\" ON \"public\".\"orders\" (\"customer_id\")",
                    "index_oid": 16500, "size_bytes": 2260992, "build_ms": 840, "attempts": 1, "concurrent": true}),
            ),
            (
                ActionType::CreateIndex,
                json!({"index_name": "i", "schema": "public", "table_name": "t", "statement": "s",
                    "index_oid": 1, "concurrent": true,
                    "note": "the build finished while the executor was stopped"}),
            ),
            (
                ActionType::CreateIndex,
                json!({"index_name": "i", "schema": "public", "table_name": "t",
                    "columns": [{"name": "c", "descending": false}], "include": [], "statement": "s",
                    "index_oid": 1, "size_bytes": 8192, "build_ms": 3, "attempts": 2, "concurrent": true,
                    "rollback": {"dropped": true, "index_name": "i"}}),
            ),
            (
                ActionType::CreateIndex,
                json!({"index_name": "i", "schema": "public", "table_name": "t", "include": [],
                    "columns": [{"name": "c", "descending": false}], "statement": "s",
                    "index_oid": 1, "size_bytes": 8192, "build_ms": 3, "attempts": 1, "concurrent": true,
                    "rollback": {"dropped": false, "note": "the index was already gone"}}),
            ),
            (
                ActionType::VacuumTable,
                json!({"schema": "public", "table_name": "events", "operation": "VACUUM (ANALYZE)",
                    "statement": "VACUUM (ANALYZE) \"public\".\"events\"", "dead_tuples_before": 50000,
                    "dead_tuples_after": 0, "tuples_reclaimed": 50000, "live_tuples": 10000,
                    "duration_ms": 120, "blocked_by_xmin_holder": false, "waited_for_holder": null}),
            ),
            (
                ActionType::VacuumTable,
                json!({"schema": "public", "table_name": "events", "operation": "VACUUM (ANALYZE)",
                    "statement": "s", "dead_tuples_before": 5, "dead_tuples_after": 0,
                    "tuples_reclaimed": 5, "live_tuples": 1, "duration_ms": 1,
                    "blocked_by_xmin_holder": true, "waited_for_holder": {"pid": 42, "waited_ms": 1500}}),
            ),
            (
                ActionType::TerminateQuery,
                json!({"pid": 4242, "username": "app", "outcome": "terminated",
                    "method": "pg_terminate_backend", "graceful": false}),
            ),
            (
                ActionType::TerminateQuery,
                json!({"pid": 4242, "username": "", "outcome": "already_gone", "method": null, "graceful": true}),
            ),
            (
                ActionType::TerminateQuery,
                json!({"pid": 1, "username": "app", "outcome": "terminated",
                    "method": "pg_cancel_backend, then pg_terminate_backend", "graceful": true}),
            ),
            (
                ActionType::CacheRecommendation,
                json!({"recommendation": true, "title": "t", "options": [{"a": 1}],
                    "note": "Nothing was changed: these steps need a person (a restart or a code change)."}),
            ),
            (
                ActionType::DeployConnectionPooler,
                json!({"backend": "process", "host": "127.0.0.1", "port": 40001, "network": null,
                    "pool_mode": "session", "default_pool_size": 20, "reserve_pool_size": 2,
                    "max_client_conn": 200, "connection_string": "postgres://app:***@127.0.0.1:40001/app",
                    "instruction": "Point the application at this connection string (same user and password); nothing else changes.",
                    "compatibility": "session pooling", "pid": 777, "config_dir": "/var/lib/startupmonkey/poolers/db",
                    "rollback": {"stopped": true, "removed": "/var/lib/startupmonkey/poolers/db"}}),
            ),
            (
                ActionType::DeployConnectionPooler,
                json!({"backend": "docker", "container_name": "startupmonkey-pooler-db",
                    "note": "already running; nothing started"}),
            ),
            (
                ActionType::DeployRedis,
                json!({"backend": "docker", "host": "startupmonkey-redis-db", "port": 6379, "network": "app",
                    "max_memory": "256mb", "eviction_policy": "allkeys-lru", "config_dir": "/etc/startupmonkey",
                    "password_file": "/etc/startupmonkey/password", "connection_string": "redis://:***@startupmonkey-redis-db:6379",
                    "persistence": "none", "instruction": "i", "requires_code_change": true,
                    "container_id": "abc", "container_name": "startupmonkey-redis-db", "image": "redis:7",
                    "rollback": {"stopped": false, "removed": null, "note": "no container named x; nothing to remove"}}),
            ),
            (
                ActionType::TuneConfigHighLatency,
                json!({"config_changes": [{"name": "work_mem", "before": "4096kB", "after": "65536kB", "before_was_altered": false}],
                    "recommendations": [{"name": "shared_buffers", "current": "128MB"}],
                    "host_memory_bytes": 8589934592_i64, "reloaded": true,
                    "rollback": {"restored": ["ALTER SYSTEM RESET work_mem"]}}),
            ),
            (
                ActionType::SetRoleTimeout,
                json!({"role": "app", "setting": "idle_in_transaction_session_timeout", "before": null,
                    "after": "300000ms", "statement": "ALTER ROLE \"app\" IN DATABASE \"app\" SET idle_in_transaction_session_timeout = '300000ms'",
                    "note": "applies to the role's new sessions in this database",
                    "rollback": {"restored": "ALTER ROLE \"app\" IN DATABASE \"app\" RESET idle_in_transaction_session_timeout"}}),
            ),
        ]
    }

    fn without_nulls(value: Value) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, without_nulls(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    #[test]
    fn every_stored_result_reads_and_writes_back_the_same_json() {
        for (action_type, result) in stored_results() {
            let outcome = ActionOutcome::from_result_json(action_type, &result.to_string())
                .unwrap_or_else(|e| panic!("{action_type}: {result}: {e}"));
            assert_eq!(
                outcome.rollback.is_some(),
                result.get("rollback").is_some(),
                "{result}"
            );
            let back: Value = serde_json::from_str(&outcome.to_result_json()).unwrap();
            // Written back, a result keeps every field it had (a null and an absent field read
            // the same); `include` is now always written.
            let mut expected = result.clone();
            if action_type == ActionType::CreateIndex {
                expected["include"] = result.get("include").cloned().unwrap_or(json!([]));
            }
            assert_eq!(without_nulls(back), without_nulls(expected));
        }
        let results = stored_results();
        let index =
            ActionOutcome::from_result_json(ActionType::CreateIndex, &results[0].1.to_string())
                .unwrap();
        assert_eq!(index.size_bytes(), Some(2260992));
        let vacuum =
            ActionOutcome::from_result_json(ActionType::VacuumTable, &results[4].1.to_string())
                .unwrap();
        assert_eq!(vacuum.dead_tuples_before(), Some(50000));
        assert_eq!(
            Claim::from_result_json(r#"{"executor": "executor-1"}"#),
            Some(Claim {
                executor: "executor-1".into()
            })
        );
    }

    #[test]
    fn a_tampered_role_timeout_is_refused_when_read() {
        let stored = |setting: &str, role: &str, value_ms: i64| {
            json!({"plan": {"kind": "role_timeout", "role": role, "setting": setting,
                "value_ms": value_ms, "reason": "r"}, "detection_key": "", "description": "d"})
            .to_string()
        };
        assert!(StoredAction::from_params_json(&stored("statement_timeout", "app", 5000)).is_ok());
        for (setting, role, value_ms, reason) in [
            (
                "statement_timeout = '1s'; DROP TABLE t; --",
                "app",
                5000,
                "not a per-role timeout",
            ),
            ("work_mem", "app", 5000, "not a per-role timeout"),
            (
                "statement_timeout",
                "a\u{0}b",
                5000,
                "not a valid identifier",
            ),
            ("statement_timeout", "app", 10, "outside 1 s to 24 h"),
        ] {
            let error = StoredAction::from_params_json(&stored(setting, role, value_ms))
                .unwrap_err()
                .to_string();
            assert!(error.contains(reason), "{setting} {role}: {error}");
        }
    }

    #[test]
    fn a_tampered_redis_or_pooler_plan_is_refused_when_read() {
        let redis = |max_memory: &str, policy: &str| {
            json!({"plan": {"kind": "deploy_redis", "database_id": "db", "max_memory": max_memory,
                "eviction_policy": policy}, "detection_key": "", "description": "d"})
            .to_string()
        };
        assert!(StoredAction::from_params_json(&redis("1gb", "volatile-ttl")).is_ok());
        assert!(
            StoredAction::from_params_json(&redis("1gb\nrequirepass x", "allkeys-lru")).is_err()
        );
        assert!(StoredAction::from_params_json(&redis("1gb", "lru\nsave 1 1")).is_err());
        let pooler = json!({"plan": {"kind": "deploy_pooler", "database_id": "db", "pool_size": 20,
            "pool_mode": "session\nadmin_users = x"}, "detection_key": "", "description": "d"});
        assert!(StoredAction::from_params_json(&pooler.to_string()).is_err());
    }
}
