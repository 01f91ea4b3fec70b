//! Sessions (`pg_stat_activity`, `pg_blocking_pids`, PostgreSQL 10+): connection counts,
//! long-running statements, idle transactions, blocked sessions and who holds back the xmin
//! horizon (sessions, replication slots, prepared transactions).

use proto::metrics::{
    BlockedSession, PreparedTransaction, ReplicationSlotHorizon, SessionInfo, XminHorizon,
};
use sqlx::{PgPool, Row};

/// Sessions shorter than this are not reported as long-running or idle in transaction; the
/// analyser applies the real thresholds.
pub const REPORT_FLOOR_SECS: f64 = 5.0;
/// At most this many sessions of each kind are reported, longest first.
pub const MAX_REPORTED: usize = 20;
/// Statement text kept per session.
const QUERY_CHARS: i32 = 1000;

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

pub async fn connections(pool: &PgPool) -> Result<Connections, sqlx::Error> {
    let row = sqlx::query(
        "/* startupmonkey-collector */ SELECT \
           count(*) FILTER (WHERE state = 'active')::int, \
           count(*) FILTER (WHERE state = 'idle')::int, \
           count(*) FILTER (WHERE state LIKE 'idle in transaction%')::int, \
           count(*) FILTER (WHERE wait_event_type = 'Lock')::int, \
           count(*)::int, \
           count(*) FILTER (WHERE datname = current_database())::int, \
           current_database()::text, \
           coalesce((SELECT datname::text FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND datname IS NOT NULL \
             GROUP BY datname ORDER BY count(*) DESC, datname LIMIT 1), '') \
         FROM pg_stat_activity WHERE backend_type = 'client backend'",
    )
    .fetch_one(pool)
    .await?;
    Ok(Connections {
        active: row.try_get(0)?,
        idle: row.try_get(1)?,
        idle_in_transaction: row.try_get(2)?,
        waiting: row.try_get(3)?,
        total: row.try_get(4)?,
        database: row.try_get(5)?,
        database_name: row.try_get(6)?,
        busiest_database: row.try_get(7)?,
    })
}

pub async fn read(pool: &PgPool) -> Result<Activity, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT a.pid, \
           (extract(epoch FROM a.backend_start) * 1000000)::bigint, \
           coalesce(a.usename::text, ''), coalesce(a.application_name, ''), \
           coalesce(a.datname::text, ''), coalesce(a.state, ''), \
           left(coalesce(a.query, ''), $1), \
           coalesce(extract(epoch FROM now() - CASE WHEN a.state = 'active' \
             THEN a.query_start ELSE a.state_change END), 0)::float8, \
           coalesce(a.wait_event_type, ''), coalesce(a.wait_event, ''), \
           coalesce(a.backend_type, ''), \
           coalesce((extract(epoch FROM a.query_start) * 1000000)::bigint, 0), \
           coalesce((extract(epoch FROM a.state_change) * 1000000)::bigint, 0), \
           coalesce(r.rolsuper, false), \
           CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) \
             ELSE '{}'::int[] END, \
           coalesce(age(a.backend_xmin), 0)::bigint \
         FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid \
         WHERE a.pid <> pg_backend_pid()",
    )
    .bind(QUERY_CHARS)
    .fetch_all(pool)
    .await?;

    let mut activity = Activity::default();
    let mut oldest: Option<(i64, SessionInfo)> = None;
    for row in rows {
        let session = SessionInfo {
            pid: row.try_get(0)?,
            backend_start_us: row.try_get::<Option<i64>, _>(1)?.unwrap_or_default(),
            username: row.try_get(2)?,
            application_name: row.try_get(3)?,
            database: row.try_get(4)?,
            state: row.try_get(5)?,
            query: crate::literals::redact(&row.try_get::<String, _>(6)?),
            duration_secs: row.try_get(7)?,
            wait_event_type: row.try_get(8)?,
            wait_event: row.try_get(9)?,
            backend_type: row.try_get(10)?,
            query_start_us: row.try_get(11)?,
            state_change_us: row.try_get(12)?,
            superuser: row.try_get(13)?,
        };
        let blocking: Vec<i32> = row.try_get(14)?;
        let xmin_age: i64 = row.try_get(15)?;
        if xmin_age > 0 && oldest.as_ref().is_none_or(|(age, _)| xmin_age > *age) {
            oldest = Some((xmin_age, session.clone()));
        }
        let client = session.backend_type == "client backend";
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
    Ok(activity)
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
