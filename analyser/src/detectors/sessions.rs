//! `long_running_query` and `idle_transaction`: one detection per offending session of the
//! monitored database, identified by pid + backend start (a reused pid is another session), with
//! what the executor needs to re-check before acting. Our own sessions and other databases'
//! sessions are never reported.

use proto::events::Detection;
use proto::metrics::{MetricSnapshot, SessionInfo};
use serde_json::json;

use proto::status::{ActionType, Category, Detector, Severity};

use super::Finding;
use crate::thresholds::Thresholds;

/// Our services' sessions carry an application_name starting with this.
const OWN_PREFIX: &str = "startupmonkey-";

fn candidates<'a>(
    s: &'a MetricSnapshot,
    sessions: &'a [SessionInfo],
) -> impl Iterator<Item = &'a SessionInfo> {
    let database = s
        .postgres
        .as_ref()
        .map(|d| d.database_name.as_str())
        .unwrap_or_default();
    sessions
        .iter()
        .filter(move |session| session.database == database && !database.is_empty())
        .filter(|session| !session.application_name.starts_with(OWN_PREFIX))
}

fn session_evidence(session: &SessionInfo) -> serde_json::Value {
    json!({
        "pid": session.pid.to_string(),
        "backend_start_us": session.backend_start_us,
        "username": session.username,
        "application_name": session.application_name,
        "state": session.state,
        "query": session.query,
        "duration_secs": session.duration_secs,
        "query_start_us": session.query_start_us,
        "state_change_us": session.state_change_us,
        "superuser": session.superuser,
    })
}

pub fn long_running_query(s: &MetricSnapshot, t: &Thresholds) -> Vec<Detection> {
    let Some(detail) = s.postgres.as_ref() else {
        return Vec::new();
    };
    candidates(s, &detail.long_running)
        .filter(|session| session.duration_secs >= t.long_query_seconds)
        .map(|session| {
            let severity = match session.duration_secs {
                d if d >= 120.0 => Severity::Critical,
                d if d >= 60.0 => Severity::Warning,
                _ => Severity::Info,
            };
            Finding {
                snapshot: s,
                detector: Detector::LongRunningQuery,
                category: Category::Query,
                severity,
                identifier: format!("{}:{}", session.pid, session.backend_start_us),
                title: format!(
                    "Long-running query detected ({:.0}s)",
                    session.duration_secs
                ),
                description: format!(
                    "Session {} of {} has run one statement for {:.0} s: {}",
                    session.pid, session.username, session.duration_secs, session.query
                ),
                evidence: session_evidence(session),
                recommendation: "Cancel the statement if it is not expected to run this long; \
                                 set a statement_timeout for the role that runs it"
                    .into(),
                action_type: ActionType::TerminateQuery,
                action_metadata: json!({
                    "pid": session.pid.to_string(),
                    "username": session.username,
                    "graceful": true,
                    "backend_start_us": session.backend_start_us,
                    "query_start_us": session.query_start_us,
                }),
            }
            .into_detection()
        })
        .collect()
}

pub fn idle_transaction(s: &MetricSnapshot, t: &Thresholds) -> Vec<Detection> {
    let Some(detail) = s.postgres.as_ref() else {
        return Vec::new();
    };
    candidates(s, &detail.idle_in_transaction)
        .filter(|session| session.duration_secs >= t.idle_transaction_seconds)
        .map(|session| {
            let severity = match session.duration_secs {
                d if d >= 900.0 => Severity::Critical,
                d if d >= 600.0 => Severity::Warning,
                _ => Severity::Info,
            };
            let minutes = (session.duration_secs / 60.0) as i64;
            Finding {
                snapshot: s,
                detector: Detector::IdleTransaction,
                category: Category::Connection,
                severity,
                identifier: format!("{}:{}", session.pid, session.backend_start_us),
                title: format!("Idle transaction detected ({minutes} minutes)"),
                description: format!(
                    "Session {} of {} opened a transaction and has done nothing for {:.0} s; it \
                     holds its locks and the xmin horizon meanwhile. Last statement: {}",
                    session.pid, session.username, session.duration_secs, session.query
                ),
                evidence: {
                    let mut e = session_evidence(session);
                    e["idle_duration_secs"] = json!(session.duration_secs);
                    e["idle_duration_mins"] = json!(minutes);
                    e
                },
                recommendation: format!(
                    "End the session, and set idle_in_transaction_session_timeout for role {}",
                    session.username
                ),
                action_type: ActionType::TerminateQuery,
                action_metadata: json!({
                    "pid": session.pid.to_string(),
                    "username": session.username,
                    "graceful": false,
                    "backend_start_us": session.backend_start_us,
                    "state_change_us": session.state_change_us,
                }),
            }
            .into_detection()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::fixtures::{snapshot, thresholds};

    fn session(pid: i32, database: &str, application: &str, secs: f64) -> SessionInfo {
        SessionInfo {
            pid,
            backend_start_us: 1_700_000_000_000_000 + i64::from(pid),
            username: "app".into(),
            application_name: application.into(),
            database: database.into(),
            state: "active".into(),
            query: "SELECT pg_sleep(?)".into(),
            duration_secs: secs,
            ..Default::default()
        }
    }

    #[test]
    fn each_long_query_of_this_database_fires_once_per_session() {
        let mut s = snapshot();
        s.postgres.as_mut().unwrap().long_running = vec![
            session(10, "app", "psql", 130.0),
            session(11, "app", "psql", 10.0),
            session(12, "other_db", "psql", 500.0),
            session(13, "app", "startupmonkey-executor", 500.0),
        ];
        let found = long_running_query(&s, &thresholds());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "db1:long_running_query:10:1700000000000010");
        assert_eq!(found[0].severity, "critical");
        assert_eq!(found[0].action_metadata.as_ref().unwrap()["graceful"], true);
    }

    #[test]
    fn idle_transactions_past_the_threshold_fire_and_propose_the_timeout() {
        let mut s = snapshot();
        let mut idle = session(20, "app", "worker", 700.0);
        idle.state = "idle in transaction".into();
        s.postgres.as_mut().unwrap().idle_in_transaction =
            vec![idle, session(21, "app", "w", 100.0)];
        let found = idle_transaction(&s, &thresholds());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, "warning");
        assert_eq!(found[0].title, "Idle transaction detected (11 minutes)");
        assert!(
            found[0]
                .recommendation
                .contains("idle_in_transaction_session_timeout")
        );
        assert_eq!(
            found[0].action_metadata.as_ref().unwrap()["graceful"],
            false
        );
    }
}
