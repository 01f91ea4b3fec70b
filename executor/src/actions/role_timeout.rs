//! `set_role_timeout`: the cause rather than the symptom — when the same role keeps leaving
//! transactions idle (or statements running), PostgreSQL itself should end them. Sets the role's
//! `idle_in_transaction_session_timeout` or `statement_timeout` in this database only
//! (`ALTER ROLE … IN DATABASE …`); rollback puts back the role's previous value or removes it.
//! Proposed by the engine after repeated terminations of one role's sessions.

use proto::sql::quote_ident;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::{Context, shown};
use crate::databases::describe;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleTimeout {
    pub role: String,
    /// `idle_in_transaction_session_timeout` or `statement_timeout`.
    pub setting: String,
    pub value_ms: i64,
    /// Why it is proposed, for people.
    pub reason: String,
}

const SETTINGS: [&str; 2] = ["idle_in_transaction_session_timeout", "statement_timeout"];

impl RoleTimeout {
    pub fn new(role: &str, setting: &str, value_ms: i64, reason: String) -> Result<Self, String> {
        if !proto::sql::valid_identifier(role) {
            return Err(format!(
                "role {} is not a valid identifier",
                shown(format!("{role:?}"))
            ));
        }
        if !SETTINGS.contains(&setting) {
            return Err(format!(
                "{} is not a per-role timeout we set",
                shown(format!("{setting:?}"))
            ));
        }
        if !(1_000..=86_400_000).contains(&value_ms) {
            return Err(format!("{value_ms} ms is outside 1 s to 24 h"));
        }
        Ok(Self {
            role: role.to_owned(),
            setting: setting.to_owned(),
            value_ms,
            reason,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "ALTER ROLE {} IN DATABASE <this database> SET {} = '{}ms'",
            quote_ident(&self.role),
            self.setting,
            self.value_ms
        )
    }

    pub async fn execute(&self, context: &Context) -> Result<Value, String> {
        let database = context.database()?;
        let mut conn = database.dedicated(context.timeout).await?;
        let before = current(&mut conn, &self.role, &self.setting).await?;
        let statement = format!(
            "ALTER ROLE {} IN DATABASE {} SET {} = '{}ms'",
            quote_ident(&self.role),
            quote_ident(&database_name(&mut conn).await?),
            self.setting,
            self.value_ms
        );
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .persistent(false)
            .execute(&mut conn)
            .await
            .map_err(|e| format!("{statement}: {}", describe(&e)))?;
        Ok(json!({
            "role": self.role,
            "setting": self.setting,
            "before": before,
            "after": format!("{}ms", self.value_ms),
            "statement": statement,
            "note": "applies to the role's new sessions in this database",
        }))
    }

    pub async fn rollback(&self, context: &Context, result: &Value) -> Result<Value, String> {
        let database = context.database()?;
        let mut conn = database.dedicated(context.timeout).await?;
        let name = quote_ident(&database_name(&mut conn).await?);
        let statement = match result.get("before").and_then(Value::as_str) {
            Some(before) => format!(
                "ALTER ROLE {} IN DATABASE {name} SET {} = '{}'",
                quote_ident(&self.role),
                self.setting,
                before.replace('\'', "''")
            ),
            None => format!(
                "ALTER ROLE {} IN DATABASE {name} RESET {}",
                quote_ident(&self.role),
                self.setting
            ),
        };
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .persistent(false)
            .execute(&mut conn)
            .await
            .map_err(|e| format!("{statement}: {}", describe(&e)))?;
        Ok(json!({"restored": statement}))
    }
}

async fn database_name(conn: &mut PgConnection) -> Result<String, String> {
    sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(conn)
        .await
        .map_err(|e| describe(&e))
}

/// The role's own value of `setting` in this database, if it has one.
pub async fn current(
    conn: &mut PgConnection,
    role: &str,
    setting: &str,
) -> Result<Option<String>, String> {
    let entries: Option<Vec<String>> = sqlx::query_scalar(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole \
         WHERE r.rolname = $1 AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(role)
    .fetch_optional(conn)
    .await
    .map_err(|e| describe(&e))?
    .flatten();
    let prefix = format!("{setting}=");
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .find_map(|e| e.strip_prefix(&prefix).map(str::to_owned)))
}
