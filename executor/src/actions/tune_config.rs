//! `tune_config_high_latency`: planner and memory settings computed from what was measured —
//! the server's current values and the host's RAM (when the collector could read it) — never a
//! fixed "8GB". Reloadable settings are changed with `ALTER SYSTEM` + `pg_reload_conf()`;
//! settings that need a restart become a recommendation with steps. Rollback puts each changed
//! setting back as it was (its previous `ALTER SYSTEM` value, or `RESET` when it had none).
//!
//! The rules: `effective_cache_size` = 75 % of RAM when it is under half of RAM; `work_mem` =
//! a quarter of RAM shared by `max_connections`, between 4 MB and 64 MB, when under half of
//! that; `random_page_cost` 4 → 1.1 (solid-state or cloud storage, where random reads cost
//! little more than sequential ones); `shared_buffers` (restart) recommended at 25 % of RAM, at
//! most 16 GB, when under half of that.

use std::future::Future;

use proto::actions::{ConfigChange, SettingsRestored, TuneConfig, Tuned};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::Context;
use crate::databases::{marked, marked_sql};
use crate::error::ActionError;

const MB: i64 = 1024 * 1024;
/// The most RAM a host is believed to have (1 PiB): a larger figure is a mistake, and would
/// overflow the arithmetic below.
const MAX_HOST_MEMORY_BYTES: i64 = 1 << 50;

/// One setting as pg_settings reports it.
#[derive(Debug, Clone)]
struct Setting {
    name: String,
    /// In bytes for memory settings, as a number otherwise.
    value: f64,
    /// Set with ALTER SYSTEM (postgresql.auto.conf)?
    in_auto_conf: bool,
    raw: String,
}

/// `tune_config_high_latency` as the executor runs it.
pub trait TuneConfigRun {
    fn from_metadata(metadata: &Value) -> Self;
    fn describe(&self) -> String;
    fn execute(&self, context: &Context)
    -> impl Future<Output = Result<Tuned, ActionError>> + Send;
    fn rollback(
        &self,
        context: &Context,
        result: &Tuned,
    ) -> impl Future<Output = Result<SettingsRestored, ActionError>> + Send;
}

impl TuneConfigRun for TuneConfig {
    /// The host's RAM when the metadata gives a believable figure, else unknown.
    fn from_metadata(metadata: &Value) -> Self {
        Self {
            host_memory_bytes: metadata
                .get("host_memory_bytes")
                .and_then(Value::as_i64)
                .filter(|b| (1..=MAX_HOST_MEMORY_BYTES).contains(b)),
        }
    }

    fn describe(&self) -> String {
        "tune memory and planner settings from the measured values".into()
    }

    async fn execute(&self, context: &Context) -> Result<Tuned, ActionError> {
        let database = context.database()?;
        let mut conn = database.dedicated(context.timeout).await?;
        let settings = read(&mut conn).await?;
        let get = |name: &str| settings.iter().find(|s| s.name == name);
        let mut changes: Vec<(String, String, &Setting)> = Vec::new();
        let mut recommendations = Vec::new();
        // A stored plan is read back as it was written: check the figure again.
        if let Some(ram) = self
            .host_memory_bytes
            .filter(|b| (1..=MAX_HOST_MEMORY_BYTES).contains(b))
        {
            if let Some(s) = get("effective_cache_size")
                && s.value < ram as f64 / 2.0
            {
                changes.push(("effective_cache_size".into(), kb(ram * 3 / 4), s));
            }
            if let (Some(s), Some(max)) = (get("work_mem"), get("max_connections")) {
                let target = (ram / 4 / (max.value.max(1.0) as i64)).clamp(4 * MB, 64 * MB);
                if s.value < target as f64 / 2.0 {
                    changes.push(("work_mem".into(), kb(target), s));
                }
            }
            if let Some(s) = get("shared_buffers") {
                let target = (ram / 4).min(16 * 1024 * MB);
                if s.value < target as f64 / 2.0 {
                    recommendations.push(json!({
                        "name": "shared_buffers",
                        "current": s.raw,
                        "recommended": kb(target),
                        "requires_restart": true,
                        "steps": [
                            format!("ALTER SYSTEM SET shared_buffers = '{}';", kb(target)),
                            "Restart PostgreSQL at a quiet moment (shared_buffers is read only at start).",
                        ],
                    }));
                }
            }
        } else {
            recommendations.push(json!({
                "name": "memory settings",
                "note": "The host's RAM is unknown (the database is not on the collector's machine): \
                         effective_cache_size, work_mem and shared_buffers were left alone.",
            }));
        }
        if let Some(s) = get("random_page_cost")
            && s.value >= 4.0
        {
            changes.push(("random_page_cost".into(), "1.1".into(), s));
        }
        let mut applied = Vec::new();
        for (name, value, before) in &changes {
            sqlx::query(sqlx::AssertSqlSafe(marked(&format!("ALTER SYSTEM SET {name} = '{value}'"))))
                .persistent(false)
                .execute(&mut conn)
                .await
                .map_err(|e| {
                    ActionError::sql(
                        format!(
                            "ALTER SYSTEM SET {name} = '{value}' failed (it needs a superuser, or GRANT ALTER SYSTEM ON PARAMETER {name})"
                        ),
                        e,
                    )
                })?;
            applied.push(ConfigChange {
                name: name.clone(),
                before: before.raw.clone(),
                after: value.clone(),
                before_was_altered: before.in_auto_conf,
            });
        }
        if !applied.is_empty() {
            sqlx::query(marked_sql!("SELECT pg_reload_conf()"))
                .execute(&mut conn)
                .await
                .map_err(ActionError::from)?;
        }
        let reloaded = !applied.is_empty();
        Ok(Tuned {
            config_changes: applied,
            recommendations,
            host_memory_bytes: self.host_memory_bytes,
            reloaded,
        })
    }

    async fn rollback(
        &self,
        context: &Context,
        result: &Tuned,
    ) -> Result<SettingsRestored, ActionError> {
        let changes = &result.config_changes;
        let database = context.database()?;
        let mut conn = database.dedicated(context.timeout).await?;
        let mut restored = Vec::new();
        for change in changes {
            let name = change.name.as_str();
            if !proto::actions::TUNED_PARAMETERS.contains(&name) {
                return Err(ActionError::Refused(format!(
                    "unexpected setting {name:?} in the action's result"
                )));
            }
            let statement = if change.before_was_altered {
                let before = change.before.replace('\'', "''");
                format!("ALTER SYSTEM SET {name} = '{before}'")
            } else {
                format!("ALTER SYSTEM RESET {name}")
            };
            sqlx::query(sqlx::AssertSqlSafe(marked(&statement)))
                .persistent(false)
                .execute(&mut conn)
                .await
                .map_err(|e| ActionError::sql(statement.clone(), e))?;
            restored.push(statement);
        }
        sqlx::query(marked_sql!("SELECT pg_reload_conf()"))
            .execute(&mut conn)
            .await
            .map_err(ActionError::from)?;
        Ok(SettingsRestored { restored })
    }
}

async fn read(conn: &mut PgConnection) -> Result<Vec<Setting>, ActionError> {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        marked_sql!("SELECT name, setting, unit, sourcefile FROM pg_settings WHERE name IN \
         ('effective_cache_size', 'work_mem', 'random_page_cost', 'shared_buffers', 'max_connections')"),
    )
    .fetch_all(conn)
    .await
    .map_err(ActionError::from)?;
    Ok(rows
        .into_iter()
        .map(|(name, setting, unit, sourcefile)| {
            let number: f64 = setting.parse().unwrap_or(0.0);
            let bytes = match unit.as_deref() {
                Some("kB") => number * 1024.0,
                Some("8kB") => number * 8192.0,
                Some("MB") => number * MB as f64,
                _ => number,
            };
            let raw = match unit.as_deref() {
                Some("kB") => format!("{setting}kB"),
                Some("8kB") => kb(bytes as i64),
                Some(unit) => format!("{setting}{unit}"),
                None => setting.clone(),
            };
            Setting {
                name,
                value: bytes,
                in_auto_conf: sourcefile.is_some_and(|f| f.ends_with("postgresql.auto.conf")),
                raw,
            }
        })
        .collect())
}

/// Bytes as a PostgreSQL memory value in kB.
fn kb(bytes: i64) -> String {
    format!("{}kB", bytes / 1024)
}
