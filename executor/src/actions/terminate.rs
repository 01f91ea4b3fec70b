//! `terminate_query`: ends one session the analyser reported — a long-running statement is
//! cancelled (and terminated only if cancelling does not stop it and the policy allows), a
//! session idle in its transaction is terminated.
//!
//! Right before acting, and in the same statement that sends the signal, the session must still
//! be the one reported: same pid and backend start (pids are reused), same statement start for a
//! running query, same idle stretch for an idle transaction. Never touched: our own sessions
//! (`startupmonkey-*`), anything that is not a client backend (autovacuum, walsenders,
//! background workers), sessions of other databases, and superusers unless allowed.

use std::time::{Duration, Instant};

use std::future::Future;

use proto::actions::{Terminate, TerminateOutcome, Terminated};
use serde_json::Value;
use sqlx::PgPool;

use super::{Context, shown, text};
use crate::databases::{marked, marked_sql};
use crate::error::ActionError;

/// What the operator allows beyond the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Terminate a statement that a cancel did not stop.
    pub terminate_after_cancel: bool,
    /// Touch superusers' sessions.
    pub superusers: bool,
}

/// How the session looks now.
struct Now {
    protected: Option<String>,
    same_backend: bool,
    query_start_us: i64,
    state_change_us: i64,
    state: String,
}

/// `terminate_query` as the executor runs it.
pub trait TerminateRun: Sized {
    fn from_metadata(metadata: &Value) -> Result<Self, ActionError>;
    fn describe(&self) -> String;
    fn execute(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<Terminated, ActionError>> + Send;
}

impl TerminateRun for Terminate {
    fn from_metadata(metadata: &Value) -> Result<Self, ActionError> {
        let pid: i32 = match metadata.get("pid") {
            Some(Value::String(s)) => s.parse().map_err(|_| {
                ActionError::Invalid(format!("pid {} is not a number", shown(format!("{s:?}"))))
            })?,
            Some(Value::Number(n)) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| ActionError::Invalid(format!("pid {n} is out of range")))?,
            _ => return Err(ActionError::Invalid("pid is missing".into())),
        };
        if pid <= 0 {
            return Err(ActionError::Invalid(format!("pid {pid} is not a session")));
        }
        let number = |field: &str| metadata.get(field).and_then(Value::as_i64).unwrap_or(0);
        let backend_start_us = number("backend_start_us");
        if backend_start_us <= 0 {
            return Err(ActionError::Invalid("backend_start_us is missing: the session cannot be told apart from a later one with the same pid".into()));
        }
        let graceful = metadata
            .get("graceful")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let since_us = if graceful {
            number("query_start_us")
        } else {
            number("state_change_us")
        };
        if since_us <= 0 {
            return Err(ActionError::Invalid(if graceful {
                "query_start_us is missing: the statement cannot be re-checked".into()
            } else {
                "state_change_us is missing: the idle period cannot be re-checked".into()
            }));
        }
        Ok(Self {
            pid,
            backend_start_us,
            graceful,
            since_us,
            username: text(metadata, "username").unwrap_or_default(),
        })
    }

    fn describe(&self) -> String {
        if self.graceful {
            format!("cancel the running statement of session {}", self.pid)
        } else {
            format!("terminate session {} (idle in transaction)", self.pid)
        }
    }

    async fn execute(&self, context: &Context) -> Result<Terminated, ActionError> {
        let pool = &context.database()?.pool;
        let outcome = |outcome: TerminateOutcome, method: Option<&str>| Terminated {
            pid: self.pid,
            username: self.username.clone(),
            outcome,
            method: method.map(str::to_owned),
            graceful: self.graceful,
        };
        let Some(now) = look(self, pool, context.policy.superusers).await? else {
            return Ok(outcome(TerminateOutcome::AlreadyGone, None));
        };
        if !now.same_backend {
            return Ok(outcome(TerminateOutcome::AlreadyGone, None));
        }
        if let Some(reason) = now.protected {
            return Err(ActionError::Refused(format!(
                "session {} is protected: {reason}; not touched",
                self.pid
            )));
        }
        if !still_the_same(self, &now) {
            return Ok(outcome(TerminateOutcome::MovedOn, None));
        }
        if !self.graceful {
            if !signal(self, pool, "pg_terminate_backend").await? {
                return Ok(outcome(TerminateOutcome::MovedOn, None));
            }
            wait(self, pool, Duration::from_secs(5)).await?;
            return Ok(outcome(
                TerminateOutcome::Terminated,
                Some("pg_terminate_backend"),
            ));
        }
        if !signal(self, pool, "pg_cancel_backend").await? {
            return Ok(outcome(TerminateOutcome::MovedOn, None));
        }
        if wait(self, pool, Duration::from_secs(3)).await? {
            return Ok(outcome(
                TerminateOutcome::Cancelled,
                Some("pg_cancel_backend"),
            ));
        }
        if !context.policy.terminate_after_cancel {
            return Err(ActionError::Refused(format!(
                "session {} ignored the cancel; terminating it is not allowed (TERMINATE_AFTER_CANCEL=false)",
                self.pid
            )));
        }
        if !signal(self, pool, "pg_terminate_backend").await? {
            return Ok(outcome(
                TerminateOutcome::Cancelled,
                Some("pg_cancel_backend"),
            ));
        }
        wait(self, pool, Duration::from_secs(5)).await?;
        Ok(outcome(
            TerminateOutcome::Terminated,
            Some("pg_cancel_backend, then pg_terminate_backend"),
        ))
    }
}

fn still_the_same(plan: &Terminate, now: &Now) -> bool {
    if plan.graceful {
        now.state == "active" && now.query_start_us == plan.since_us
    } else {
        now.state.starts_with("idle in transaction") && now.state_change_us == plan.since_us
    }
}

async fn look(
    plan: &Terminate,
    pool: &PgPool,
    superusers: bool,
) -> Result<Option<Now>, ActionError> {
    let row: Option<(Option<String>, bool, i64, i64, String)> = sqlx::query_as(
            marked_sql!("SELECT CASE \
               WHEN a.pid = pg_backend_pid() THEN 'our own session' \
               WHEN a.application_name LIKE 'startupmonkey-%' THEN 'a StartupMonkey session' \
               WHEN a.backend_type IS DISTINCT FROM 'client backend' \
                 THEN 'a ' || coalesce(a.backend_type, 'background') || ' process' \
               WHEN a.datname IS DISTINCT FROM current_database() THEN 'a session of another database' \
               WHEN coalesce(r.rolsuper, false) AND NOT $3 THEN 'a superuser session' \
               ELSE NULL END, \
             (extract(epoch FROM a.backend_start) * 1000000)::bigint = $2, \
             coalesce((extract(epoch FROM a.query_start) * 1000000)::bigint, 0), \
             coalesce((extract(epoch FROM a.state_change) * 1000000)::bigint, 0), \
             coalesce(a.state, '') \
             FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid WHERE a.pid = $1"),
        )
        .bind(plan.pid)
        .bind(plan.backend_start_us)
        .bind(superusers)
        .fetch_optional(pool)
        .await
        .map_err(ActionError::from)?;
    Ok(row.map(
        |(protected, same_backend, query_start_us, state_change_us, state)| Now {
            protected,
            same_backend,
            query_start_us,
            state_change_us,
            state,
        },
    ))
}

/// Sends `function` (pg_cancel_backend / pg_terminate_backend) only if the session is still
/// the one reported, checked in the same statement; true when it was sent.
async fn signal(plan: &Terminate, pool: &PgPool, function: &str) -> Result<bool, ActionError> {
    let since = if plan.graceful {
        "a.state = 'active' AND coalesce((extract(epoch FROM a.query_start) * 1000000)::bigint, 0) = $3"
    } else {
        "a.state LIKE 'idle in transaction%' AND coalesce((extract(epoch FROM a.state_change) * 1000000)::bigint, 0) = $3"
    };
    let sql = format!(
        "SELECT {function}(a.pid) FROM pg_stat_activity a \
             WHERE a.pid = $1 AND (extract(epoch FROM a.backend_start) * 1000000)::bigint = $2 \
             AND a.backend_type = 'client backend' AND a.datname = current_database() \
             AND a.application_name NOT LIKE 'startupmonkey-%' AND a.pid <> pg_backend_pid() AND {since}"
    );
    let sent: Option<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(marked(&sql)))
        .bind(plan.pid)
        .bind(plan.backend_start_us)
        .bind(plan.since_us)
        .fetch_optional(pool)
        .await
        .map_err(ActionError::from)?;
    match sent {
        None => Ok(false),
        Some(true) => Ok(true),
        Some(false) => Err(ActionError::Refused(format!(
            "{function}({}) was refused: the role lacks pg_signal_backend or the session belongs to a superuser",
            plan.pid
        ))),
    }
}

/// Waits until the reported statement (or session) is over; true when it is.
async fn wait(plan: &Terminate, pool: &PgPool, limit: Duration) -> Result<bool, ActionError> {
    let started = Instant::now();
    loop {
        let now = look(plan, pool, true).await?;
        let over = match now {
            None => true,
            Some(now) => !now.same_backend || !still_the_same(plan, &now),
        };
        if over {
            return Ok(true);
        }
        if started.elapsed() >= limit {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_session_must_be_identified_beyond_its_pid() {
        let plan = Terminate::from_metadata(&json!({
            "pid": "42", "backend_start_us": 1, "graceful": false, "state_change_us": 5, "username": "app"
        }))
        .unwrap();
        assert_eq!((plan.pid, plan.since_us, plan.graceful), (42, 5, false));
        for (metadata, reason) in [
            (json!({"pid": "x"}), "not a number"),
            (json!({"pid": 0, "backend_start_us": 1}), "not a session"),
            (json!({"pid": 7}), "backend_start_us is missing"),
            (
                json!({"pid": 7, "backend_start_us": 1, "graceful": true}),
                "query_start_us is missing",
            ),
            (
                json!({"pid": 99_999_999_999_i64, "backend_start_us": 1}),
                "out of range",
            ),
        ] {
            let error = Terminate::from_metadata(&metadata).unwrap_err().to_string();
            assert!(error.contains(reason), "{metadata}: {error}");
        }
    }
}
