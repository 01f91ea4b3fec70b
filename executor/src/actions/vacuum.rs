//! `vacuum_table`: `VACUUM (ANALYZE)` on the quoted, schema-qualified table, on a connection of
//! its own with the action's time limit; dead tuples before and after in the result. It cannot
//! be rolled back (and removes nothing a user could want back).

use std::time::Instant;

use proto::sql::qualified;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::{Context, identifier};
use crate::databases::describe;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vacuum {
    pub schema: String,
    pub table: String,
    /// The analyser saw a session, prepared transaction or slot holding the xmin horizon: VACUUM
    /// runs but may reclaim little until it is gone.
    #[serde(default)]
    pub blocked_by_xmin_holder: bool,
}

impl Vacuum {
    /// From the bloat detector's metadata (schema, table) or the original's (table_name, schema
    /// `public`).
    pub fn from_metadata(metadata: &Value, _evidence: &Value) -> Result<Self, String> {
        let (schema, table) = match metadata.get("table") {
            Some(Value::String(_)) => (
                identifier(metadata, "schema")?,
                identifier(metadata, "table")?,
            ),
            _ => ("public".to_owned(), identifier(metadata, "table_name")?),
        };
        Ok(Self {
            schema,
            table,
            blocked_by_xmin_holder: metadata
                .get("blocked_by_xmin_holder")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    pub fn statement(&self) -> String {
        format!("VACUUM (ANALYZE) {}", qualified(&self.schema, &self.table))
    }

    pub async fn execute(&self, context: &Context) -> Result<Value, String> {
        let database = context.database()?;
        let mut conn = database.dedicated(context.timeout).await?;
        let before = self.tuples(&mut conn).await?;
        let started = Instant::now();
        sqlx::query(sqlx::AssertSqlSafe(self.statement()))
            .persistent(false)
            .execute(&mut conn)
            .await
            .map_err(|e| describe(&e))?;
        let duration_ms = started.elapsed().as_millis() as i64;
        let after = self.tuples(&mut conn).await?;
        Ok(json!({
            "schema": self.schema,
            "table_name": self.table,
            "operation": "VACUUM (ANALYZE)",
            "statement": self.statement(),
            "dead_tuples_before": before.0,
            "dead_tuples_after": after.0,
            "tuples_reclaimed": (before.0 - after.0).max(0),
            "live_tuples": after.1,
            "duration_ms": duration_ms,
            "blocked_by_xmin_holder": self.blocked_by_xmin_holder,
        }))
    }

    /// Dead and live tuples from the statistics collector.
    async fn tuples(&self, conn: &mut PgConnection) -> Result<(i64, i64), String> {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables \
             WHERE schemaname = $1 AND relname = $2",
        )
        .bind(&self.schema)
        .bind(&self.table)
        .fetch_optional(conn)
        .await
        .map_err(|e| describe(&e))?
        .ok_or_else(|| {
            format!(
                "table {} does not exist",
                qualified(&self.schema, &self.table)
            )
        })
    }
}
