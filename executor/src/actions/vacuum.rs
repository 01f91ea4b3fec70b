//! `vacuum_table`: `VACUUM (ANALYZE)` on the quoted, schema-qualified table, on a connection of
//! its own with the action's time limit; dead tuples before and after in the result. It cannot
//! be rolled back (and removes nothing a user could want back).
//!
//! Root cause first (S3): when the analyser named a session holding back the xmin horizon, VACUUM
//! could reclaim none of the dead tuples that session can still see. The action waits (up to
//! half its time limit) for that session to let go — the idle-transaction or long-query policy
//! ends it, or it finishes — and only then runs VACUUM; if it still holds on, the action fails
//! saying so (and the detection cools down) instead of running a VACUUM that reclaims nothing.

use std::time::{Duration, Instant};

use proto::sql::qualified;
use std::future::Future;

use proto::actions::{Holder, HolderWait, Vacuum, Vacuumed};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use super::{Context, identifier};
use crate::databases::execute_or_stop;
use crate::databases::marked_sql;
use crate::error::ActionError;

/// How often the holder is looked at while waiting for it.
const HOLDER_POLL: Duration = Duration::from_millis(500);

/// `vacuum_table` as the executor runs it.
pub trait VacuumRun: Sized {
    fn from_metadata(metadata: &Value, evidence: &Value) -> Result<Self, ActionError>;
    fn statement(&self) -> String;
    fn execute(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<Vacuumed, ActionError>> + Send;
}

impl VacuumRun for Vacuum {
    /// From the bloat detector's metadata (schema, table) or the original's (table_name, schema
    /// `public`).
    fn from_metadata(metadata: &Value, evidence: &Value) -> Result<Self, ActionError> {
        let (schema, table) = match metadata.get("table") {
            Some(Value::String(_)) => (
                identifier(metadata, "schema")?,
                identifier(metadata, "table")?,
            ),
            _ => ("public".to_owned(), identifier(metadata, "table_name")?),
        };
        let blocked_by_xmin_holder = metadata
            .get("blocked_by_xmin_holder")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Self {
            schema,
            table,
            blocked_by_xmin_holder,
            holder: blocked_by_xmin_holder
                .then(|| session_holder(evidence))
                .flatten(),
        })
    }

    fn statement(&self) -> String {
        format!("VACUUM (ANALYZE) {}", qualified(&self.schema, &self.table))
    }

    async fn execute(&self, context: &Context) -> Result<Vacuumed, ActionError> {
        let database = context.database()?;
        let waited = match &self.holder {
            Some(holder) => Some(wait(holder, &database.pool, context.timeout / 2).await?),
            None => None,
        };
        // What is left of the action's time limit is VACUUM's statement_timeout.
        let left = context
            .timeout
            .saturating_sub(waited.unwrap_or_default())
            .max(Duration::from_secs(1));
        let mut conn = database.dedicated(left).await?;
        let before = tuples(self, &mut conn).await?;
        let started = Instant::now();
        let run = execute_or_stop(database, &mut conn, &self.statement(), &context.stop).await?;
        if run.stopped && run.outcome.is_err() {
            return Err(ActionError::Cancelled("VACUUM was cancelled".into()));
        }
        run.outcome?;
        let duration_ms = started.elapsed().as_millis() as i64;
        let after = tuples(self, &mut conn).await?;
        Ok(Vacuumed {
            schema: self.schema.clone(),
            table_name: self.table.clone(),
            operation: "VACUUM (ANALYZE)".into(),
            statement: self.statement(),
            dead_tuples_before: before.0,
            dead_tuples_after: after.0,
            tuples_reclaimed: (before.0 - after.0).max(0),
            live_tuples: after.1,
            duration_ms,
            blocked_by_xmin_holder: self.blocked_by_xmin_holder,
            waited_for_holder: self.holder.zip(waited).map(|(h, waited)| HolderWait {
                pid: h.pid,
                waited_ms: waited.as_millis() as i64,
            }),
        })
    }
}

/// Dead and live tuples from the statistics collector.
async fn tuples(plan: &Vacuum, conn: &mut PgConnection) -> Result<(i64, i64), ActionError> {
    sqlx::query_as::<_, (i64, i64)>(marked_sql!(
        "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables \
             WHERE schemaname = $1 AND relname = $2"
    ))
    .bind(&plan.schema)
    .bind(&plan.table)
    .fetch_optional(conn)
    .await
    .map_err(ActionError::from)?
    .ok_or_else(|| {
        ActionError::Refused(format!(
            "table {} does not exist",
            qualified(&plan.schema, &plan.table)
        ))
    })
}

/// The session named in the evidence's `xmin_holder`, when it is one (prepared transactions and
/// replication slots are not waited for: nothing here ends them).
fn session_holder(evidence: &Value) -> Option<Holder> {
    let holder = evidence.get("xmin_holder")?;
    if holder.get("kind")?.as_str()? != "session" {
        return None;
    }
    let pid = i32::try_from(holder.get("pid")?.as_i64()?).ok()?;
    let backend_start_us = holder.get("backend_start_us")?.as_i64()?;
    (pid > 0 && backend_start_us > 0).then_some(Holder {
        pid,
        backend_start_us,
    })
}

/// Waits until `holder` no longer holds a snapshot or transaction id (it ended, or finished its
/// transaction); how long that took, or why VACUUM is not run.
async fn wait(holder: &Holder, pool: &PgPool, patience: Duration) -> Result<Duration, ActionError> {
    let started = Instant::now();
    loop {
        let holding: bool = sqlx::query_scalar(marked_sql!(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 \
                   AND (extract(epoch FROM backend_start) * 1000000)::bigint = $2 \
                   AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL))"
        ))
        .bind(holder.pid)
        .bind(holder.backend_start_us)
        .fetch_one(pool)
        .await
        .map_err(ActionError::from)?;
        if !holding {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= patience {
            return Err(ActionError::Refused(format!(
                "session {} still holds back the xmin horizon after {} s: VACUUM would \
                     reclaim none of the dead tuples it can see, so it was not run; end that \
                     session (or its transaction) first",
                holder.pid,
                patience.as_secs()
            )));
        }
        tokio::time::sleep(HOLDER_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_session_named_as_the_xmin_holder_is_waited_for_and_nothing_else() {
        let metadata =
            json!({"schema": "public", "table": "events", "blocked_by_xmin_holder": true});
        let session = json!({"xmin_holder": {"kind": "session", "pid": 42, "backend_start_us": 7}});
        let plan = Vacuum::from_metadata(&metadata, &session).unwrap();
        assert_eq!(
            plan.holder,
            Some(Holder {
                pid: 42,
                backend_start_us: 7
            })
        );
        for evidence in [
            json!({"xmin_holder": {"kind": "prepared_transaction", "gid": "x"}}),
            json!({"xmin_holder": {"kind": "session", "pid": 42}}),
            json!({"xmin_holder": {"kind": "session", "pid": 1_i64 << 40, "backend_start_us": 7}}),
            json!({"xmin_holder": null}),
            json!("nothing"),
        ] {
            let plan = Vacuum::from_metadata(&metadata, &evidence).unwrap();
            assert_eq!(plan.holder, None, "{evidence}");
        }
        // Not blocked according to the analyser: not waited for.
        let unblocked = json!({"schema": "public", "table": "events"});
        assert_eq!(
            Vacuum::from_metadata(&unblocked, &session).unwrap().holder,
            None
        );
    }
}
