//! Sessions (`pg_stat_activity`, `pg_blocking_pids`, PostgreSQL 10+), read once for the whole
//! server (`server_wide`): connection counts, long-running statements, idle transactions, blocked
//! sessions, who holds back the xmin horizon (sessions, replication slots, prepared transactions),
//! and each client session's latest statement with its literals (`QuerySample`, PostgreSQL 14+).

use std::collections::HashMap;

use proto::metrics::{
    BlockedSession, PreparedTransaction, ReplicationSlotHorizon, SessionInfo, XminHorizon,
};
use sqlx::{PgPool, Row};

/// Sessions shorter than this are not reported as long-running or idle in transaction; the
/// analyser applies the real thresholds.
pub const REPORT_FLOOR_SECS: f64 = 5.0;
/// At most this many sessions of each kind are reported, longest first.
pub const MAX_REPORTED: usize = 20;
/// Statement text kept per reported session (redacted).
const QUERY_CHARS: usize = 1000;
/// Statement text read per session: as much as pg_stat_statements' text, for `QuerySample`.
const SAMPLE_CHARS: i32 = 2000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connections {
    pub active: i32,
    pub idle: i32,
    pub idle_in_transaction: i32,
    /// Waiting on a lock.
    pub waiting: i32,
    /// Every client backend, of every database: what counts against max_connections.
    pub total: i32,
    /// Client backends of the database collected.
    pub database: i32,
    /// The collected database's name, and the database with the most client backends (ties by
    /// name): a pooler helps the server only in front of the database that holds them.
    pub database_name: String,
    pub busiest_database: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    pub long_running: Vec<SessionInfo>,
    pub idle_in_transaction: Vec<SessionInfo>,
    pub blocked: Vec<BlockedSession>,
    pub xmin_horizon: XminHorizon,
}

/// One client session's latest statement, for fixed constants (`constants`): its text carries
/// literal values; it is read, reduced to the constants that never vary, and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySample {
    pub pid: i32,
    pub queryid: i64,
    /// When the statement started, so a session idle since the last cycle is not sampled twice.
    pub query_start_us: i64,
    pub text: String,
}

/// Every session of the server, from one read.
#[derive(Debug, Clone, Default)]
pub struct ServerSessions {
    /// Every session but the reading one, of every database (the analyser keeps a database's).
    pub activity: Activity,
    /// Client backends by state, of every database (the reading session included).
    clients: Connections,
    by_database: HashMap<String, i32>,
    /// Each database's client sessions' latest statements (PostgreSQL 14+), ours left out.
    samples: HashMap<String, Vec<QuerySample>>,
}

impl ServerSessions {
    pub fn connections(&self, database_name: &str) -> Connections {
        Connections {
            database: self.by_database.get(database_name).copied().unwrap_or(0),
            database_name: database_name.to_owned(),
            ..self.clients.clone()
        }
    }

    pub fn samples(&self, database_name: &str) -> Vec<QuerySample> {
        self.samples.get(database_name).cloned().unwrap_or_default()
    }
}

/// One statement per server version (`query_id` is PostgreSQL 14+), no SQL built at run time.
macro_rules! sessions_sql {
    ($query_id:literal) => {
        concat!(
            "/* startupmonkey-collector */ SELECT a.pid, ",
            "(extract(epoch FROM a.backend_start) * 1000000)::bigint, ",
            "coalesce(a.usename::text, ''), coalesce(a.application_name, ''), ",
            "coalesce(a.datname::text, ''), coalesce(a.state, ''), ",
            "left(coalesce(a.query, ''), $1), ",
            "coalesce(extract(epoch FROM now() - CASE WHEN a.state = 'active' ",
            "THEN a.query_start ELSE a.state_change END), 0)::float8, ",
            "coalesce(a.wait_event_type, ''), coalesce(a.wait_event, ''), ",
            "coalesce(a.backend_type, ''), ",
            "coalesce((extract(epoch FROM a.query_start) * 1000000)::bigint, 0), ",
            "coalesce((extract(epoch FROM a.state_change) * 1000000)::bigint, 0), ",
            "coalesce(r.rolsuper, false), ",
            "CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) ",
            "ELSE '{}'::int[] END, ",
            "coalesce(age(a.backend_xmin), 0)::bigint, ",
            $query_id,
            ", a.pid = pg_backend_pid() ",
            "FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid"
        )
    };
}

pub async fn read(pool: &PgPool, server_version_num: i32) -> Result<ServerSessions, sqlx::Error> {
    let sql = if server_version_num >= 140_000 {
        sessions_sql!("coalesce(a.query_id, 0)")
    } else {
        sessions_sql!("0::bigint")
    };
    let rows = sqlx::query(sql).bind(SAMPLE_CHARS).fetch_all(pool).await?;

    let mut sessions = ServerSessions::default();
    let activity = &mut sessions.activity;
    let mut oldest: Option<(i64, SessionInfo)> = None;
    for row in rows {
        let text: String = row.try_get(6)?;
        let queryid: i64 = row.try_get(16)?;
        let reader: bool = row.try_get(17)?;
        let session = SessionInfo {
            pid: row.try_get(0)?,
            backend_start_us: row.try_get::<Option<i64>, _>(1)?.unwrap_or_default(),
            username: row.try_get(2)?,
            application_name: row.try_get(3)?,
            database: row.try_get(4)?,
            state: row.try_get(5)?,
            query: crate::literals::redact(&first_chars(&text, QUERY_CHARS)),
            duration_secs: row.try_get(7)?,
            wait_event_type: row.try_get(8)?,
            wait_event: row.try_get(9)?,
            backend_type: row.try_get(10)?,
            query_start_us: row.try_get(11)?,
            state_change_us: row.try_get(12)?,
            superuser: row.try_get(13)?,
        };
        let client = session.backend_type == "client backend";
        if client {
            count(&mut sessions.clients, &mut sessions.by_database, &session);
        }
        if reader {
            continue;
        }
        if client
            && queryid != 0
            && !session.application_name.starts_with("startupmonkey-")
            && !text.starts_with("/* startupmonkey-")
        {
            sessions
                .samples
                .entry(session.database.clone())
                .or_default()
                .push(QuerySample {
                    pid: session.pid,
                    queryid,
                    query_start_us: session.query_start_us,
                    text,
                });
        }
        let blocking: Vec<i32> = row.try_get(14)?;
        let xmin_age: i64 = row.try_get(15)?;
        if xmin_age > 0 && oldest.as_ref().is_none_or(|(age, _)| xmin_age > *age) {
            oldest = Some((xmin_age, session.clone()));
        }
        if !blocking.is_empty() {
            activity.blocked.push(BlockedSession {
                session: Some(session.clone()),
                blocking_pids: blocking,
            });
        }
        if client && session.duration_secs >= REPORT_FLOOR_SECS {
            if session.state == "active" {
                activity.long_running.push(session);
            } else if session.state.starts_with("idle in transaction") {
                activity.idle_in_transaction.push(session);
            }
        }
    }
    sessions.clients.busiest_database = busiest(&sessions.by_database);
    for list in [
        &mut activity.long_running,
        &mut activity.idle_in_transaction,
    ] {
        list.sort_by(|a, b| b.duration_secs.total_cmp(&a.duration_secs));
        list.truncate(MAX_REPORTED);
    }
    activity.blocked.truncate(MAX_REPORTED * 5);
    if let Some((age, session)) = oldest {
        activity.xmin_horizon.oldest_session = Some(session);
        activity.xmin_horizon.oldest_session_xmin_age = age;
    }
    activity.xmin_horizon.replication_slots = replication_slots(pool).await?;
    activity.xmin_horizon.prepared_transactions = prepared_transactions(pool).await?;
    Ok(sessions)
}

fn count(clients: &mut Connections, by_database: &mut HashMap<String, i32>, s: &SessionInfo) {
    clients.total += 1;
    match s.state.as_str() {
        "active" => clients.active += 1,
        "idle" => clients.idle += 1,
        state if state.starts_with("idle in transaction") => clients.idle_in_transaction += 1,
        _ => {}
    }
    if s.wait_event_type == "Lock" {
        clients.waiting += 1;
    }
    if !s.database.is_empty() {
        *by_database.entry(s.database.clone()).or_default() += 1;
    }
}

/// The database with the most client backends, ties by name; empty when there are none.
fn busiest(by_database: &HashMap<String, i32>) -> String {
    by_database
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(name, _)| name.clone())
        .unwrap_or_default()
}

/// At most `n` characters of `text` (what `left(text, n)` gives).
fn first_chars(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

async fn replication_slots(pool: &PgPool) -> Result<Vec<ReplicationSlotHorizon>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT slot_name::text, active, \
           coalesce(age(xmin), 0)::bigint, coalesce(age(catalog_xmin), 0)::bigint \
         FROM pg_replication_slots",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ReplicationSlotHorizon {
                slot_name: row.try_get(0)?,
                active: row.try_get(1)?,
                xmin_age: row.try_get(2)?,
                catalog_xmin_age: row.try_get(3)?,
            })
        })
        .collect()
}

async fn prepared_transactions(pool: &PgPool) -> Result<Vec<PreparedTransaction>, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT gid, age(transaction)::bigint, \
           extract(epoch FROM now() - prepared)::float8, owner::text \
         FROM pg_prepared_xacts",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PreparedTransaction {
                gid: row.try_get(0)?,
                xmin_age: row.try_get(1)?,
                age_secs: row.try_get(2)?,
                owner: row.try_get(3)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_database_breaks_ties_by_name() {
        let by_database =
            HashMap::from([("b".to_owned(), 3), ("a".to_owned(), 3), ("c".into(), 1)]);
        assert_eq!(busiest(&by_database), "a");
        assert_eq!(busiest(&HashMap::new()), "");
    }

    #[test]
    fn text_is_cut_at_characters_not_bytes() {
        assert_eq!(first_chars("héllo", 2), "hé");
        assert_eq!(first_chars("hi", 5), "hi");
    }
}
