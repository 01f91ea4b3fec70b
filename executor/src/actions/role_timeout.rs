//! `set_role_timeout`: the cause rather than the symptom — when the same role keeps leaving
//! transactions idle (or statements running), PostgreSQL itself should end them. Sets the role's
//! `idle_in_transaction_session_timeout` or `statement_timeout` in this database only
//! (`ALTER ROLE … IN DATABASE …`); rollback puts back the role's previous value or removes it.
//! Proposed by the engine after repeated terminations of one role's sessions.

use proto::sql::quote_ident;
use std::future::Future;

use proto::actions::{RoleTimeout, RoleTimeoutRestored, RoleTimeoutSet};
use sqlx::PgConnection;

use super::Context;
use crate::databases::{marked, marked_sql};
use crate::error::ActionError;

/// `set_role_timeout` as the executor runs it (the plan checks itself when made or read:
/// `proto::actions::RoleTimeout`).
pub trait RoleTimeoutRun {
    fn describe(&self) -> String;
    fn execute(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<RoleTimeoutSet, ActionError>> + Send;
    fn rollback(
        &self,
        context: &Context,
        result: &RoleTimeoutSet,
    ) -> impl Future<Output = Result<RoleTimeoutRestored, ActionError>> + Send;
}

impl RoleTimeoutRun for RoleTimeout {
    fn describe(&self) -> String {
        format!(
            "ALTER ROLE {} IN DATABASE <this database> SET {} = '{}ms'",
            quote_ident(&self.role),
            self.setting,
            self.value_ms
        )
    }

    async fn execute(&self, context: &Context) -> Result<RoleTimeoutSet, ActionError> {
        let database = context.database()?;
        let mut conn = database.dedicated(context.timeout).await?;
        let before = current(&mut conn, &self.role, self.setting.as_str()).await?;
        let statement = format!(
            "ALTER ROLE {} IN DATABASE {} SET {} = '{}ms'",
            quote_ident(&self.role),
            quote_ident(&database_name(&mut conn).await?),
            self.setting,
            self.value_ms
        );
        sqlx::query(sqlx::AssertSqlSafe(marked(&statement)))
            .persistent(false)
            .execute(&mut conn)
            .await
            .map_err(|e| ActionError::sql(statement.clone(), e))?;
        Ok(RoleTimeoutSet {
            role: self.role.clone(),
            setting: self.setting,
            before,
            after: format!("{}ms", self.value_ms),
            statement,
            note: "applies to the role's new sessions in this database".into(),
        })
    }

    async fn rollback(
        &self,
        context: &Context,
        result: &RoleTimeoutSet,
    ) -> Result<RoleTimeoutRestored, ActionError> {
        let database = context.database()?;
        let mut conn = database.dedicated(context.timeout).await?;
        let name = quote_ident(&database_name(&mut conn).await?);
        let statement = match &result.before {
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
        sqlx::query(sqlx::AssertSqlSafe(marked(&statement)))
            .persistent(false)
            .execute(&mut conn)
            .await
            .map_err(|e| ActionError::sql(statement.clone(), e))?;
        Ok(RoleTimeoutRestored {
            restored: statement,
        })
    }
}

async fn database_name(conn: &mut PgConnection) -> Result<String, ActionError> {
    sqlx::query_scalar(marked_sql!("SELECT current_database()::text"))
        .fetch_one(conn)
        .await
        .map_err(ActionError::from)
}

/// The role's own value of `setting` in this database, if it has one.
pub async fn current(
    conn: &mut PgConnection,
    role: &str,
    setting: &str,
) -> Result<Option<String>, ActionError> {
    let entries: Option<Vec<String>> = sqlx::query_scalar(
        marked_sql!("SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole \
         WHERE r.rolname = $1 AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"),
    )
    .bind(role)
    .fetch_optional(conn)
    .await
    .map_err(ActionError::from)?
    .flatten();
    let prefix = format!("{setting}=");
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .find_map(|e| e.strip_prefix(&prefix).map(str::to_owned)))
}
