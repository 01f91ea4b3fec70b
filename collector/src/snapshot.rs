//! Builds what the collector sends: the `MetricSnapshot` for the analyser and the JSON
//! `NormalisedMetrics` for NATS `metrics`, from one sample and its interval.
//!
//! The `pg.*` keys, in one place (everything windowed is over `time_delta_seconds`):
//!
//! | extended_metrics key | meaning |
//! |---|---|
//! | `pg.database_size_mb` | database size |
//! | `pg.connections_total` | client connections of every state, all databases |
//! | `pg.connections_database` | client connections to this database |
//! | `pg.idle_in_transaction_connections` | sessions idle in a transaction |
//! | `pg.long_running_query_count` | statements running ≥ 5 s |
//! | `pg.longest_query_duration_secs` | the longest of them |
//! | `pg.idle_transaction_count` | sessions idle in a transaction ≥ 5 s |
//! | `pg.idle_txn_duration_secs` | the longest of them |
//! | `pg.blocked_sessions` | sessions waiting on another's lock |
//! | `pg.oldest_xmin_age` | age in transactions of the oldest session xmin |
//! | `pg.worst_bloat_ratio` | dead / live tuples of `pg.worst_bloat_table` |
//! | `pg.cache_blocks_hit`, `pg.cache_blocks_read` | buffer hits and reads in the window, of the application's statements when pg_stat_statements is there (see `pg.cache_source`) |
//! | `pg.commits`, `pg.rollbacks` | transactions in the window |
//! | `pg.statements_calls`, `pg.statements_total_time_ms` | pg_stat_statements calls and time in the window |
//! | `pg.table.<schema.table>.seq_scans` / `.seq_tup_read` / `.idx_scans` | that table's scans in the window (`.idx_scans` absent without an index) |
//! | `pg.table.<schema.table>.live_tuples` / `.dead_tuples` / `.bloat_ratio` | that table's tuples now (the `pg.table.*` keys are on NATS only: the analyser reads the typed detail, `table_list::SentTables`) |
//!
//! | label | meaning |
//! |---|---|
//! | `pg.server_version` | e.g. `15.19` |
//! | `pg.database_name` | the database collected (its name on the server) |
//! | `pg.connections_busiest_database` | the database with the most client connections (ties by name) |
//! | `pg.worst_seq_scan_table` | table with the most rows read by sequential scans in the window |
//! | `pg.worst_bloat_table` | table with the most dead tuples |
//! | `pg.longest_query_pid` / `_user` / `_text` | the longest-running statement (literals redacted) |
//! | `pg.idle_txn_pid` / `_user` / `_query` | the longest idle transaction (literals redacted) |
//! | `pg.unavailable` | comma-separated capabilities that are missing |
//! | `pg.cache_source` | `pg_stat_statements` (the application's statements, ours excluded) or `pg_stat_database` (everything, ours included) |
//!
//! `metric_deltas`: `sequential_scans`, `cache_miss_count` (block reads) once windowed.
//! The typed detail (`MetricSnapshot.postgres`) carries the same and more, per table, index,
//! statement and session.

use std::collections::{BTreeMap, HashMap, HashSet};

use proto::events::{
    Measurements as JsonMeasurements, NormalisedMetrics, STATEMENTS_ON_NATS, StatementWindow,
};
use proto::metrics::{IndexStats, Measurements, MetricSnapshot, PostgresDetail, StatementStats};

use crate::normalise::{Inputs, scores};
use crate::pg_stats::Sample;
use crate::window::Interval;

pub const DATABASE_TYPE: &str = "postgresql";

/// `indexes`: those of the interval's tables (`pg_stats::Details`).
pub fn build(
    database_id: &str,
    timestamp: i64,
    sample: &Sample,
    interval: Interval,
    indexes: Vec<IndexStats>,
) -> MetricSnapshot {
    let mut extended = HashMap::new();
    let mut labels = HashMap::new();
    let mut deltas = HashMap::new();
    let mut metric = |key: String, value: f64| {
        extended.insert(key, value);
    };
    labels.insert(
        "pg.server_version".to_owned(),
        sample.server_version.clone(),
    );

    let mut measurements = Measurements::default();
    let usable = sample.settings.max_connections - sample.settings.superuser_reserved_connections;
    if let Some(c) = &sample.connections {
        measurements.active_connections = Some(c.active);
        measurements.idle_connections = Some(c.idle);
        measurements.waiting_connections = Some(c.waiting);
        metric("pg.connections_total".into(), c.total.into());
        metric("pg.connections_database".into(), c.database.into());
        labels.insert("pg.database_name".to_owned(), c.database_name.clone());
        labels.insert(
            "pg.connections_busiest_database".to_owned(),
            c.busiest_database.clone(),
        );
        metric(
            "pg.idle_in_transaction_connections".into(),
            c.idle_in_transaction.into(),
        );
    }
    if sample.settings.max_connections > 0 {
        measurements.max_connections = Some(sample.settings.max_connections);
    }
    if let Some(db) = sample.database {
        measurements.used_storage_bytes = Some(db.size_bytes);
        metric(
            "pg.database_size_mb".into(),
            db.size_bytes as f64 / 1_048_576.0,
        );
    }
    // The application's statements when pg_stat_statements can tell them apart (our own
    // monitoring queries must not make a cache look bad); the whole database otherwise.
    let (cache, source) = match (interval.statements_cache, interval.cache) {
        (Some(statements), _) => (Some(statements), "pg_stat_statements"),
        (None, Some(database)) => (Some(database), "pg_stat_database"),
        (None, None) => (None, ""),
    };
    if let Some(cache) = cache {
        measurements.cache_hit_count = Some(cache.hits);
        measurements.cache_miss_count = Some(cache.reads);
        measurements.cache_hit_rate = cache.hit_rate();
        metric("pg.cache_blocks_hit".into(), cache.hits as f64);
        metric("pg.cache_blocks_read".into(), cache.reads as f64);
        deltas.insert("cache_miss_count".to_owned(), cache.reads as f64);
        labels.insert("pg.cache_source".into(), source.into());
    }
    if let (Some(commits), Some(rollbacks)) = (interval.commits, interval.rollbacks) {
        metric("pg.commits".into(), commits as f64);
        metric("pg.rollbacks".into(), rollbacks as f64);
    }
    if let Some(scans) = interval.seq_scans {
        measurements.sequential_scans = Some(scans.min(i32::MAX as i64) as i32);
        deltas.insert("sequential_scans".to_owned(), scans as f64);
    }
    if let Some(latency) = &interval.latency
        && latency.calls > 0
    {
        measurements.avg_query_latency_ms = Some(latency.avg_ms);
        measurements.p50_query_latency_ms = Some(latency.p50_ms);
        measurements.p95_query_latency_ms = Some(latency.p95_ms);
        measurements.p99_query_latency_ms = Some(latency.p99_ms);
    }
    if let Some(latency) = &interval.latency {
        metric("pg.statements_calls".into(), latency.calls as f64);
        metric("pg.statements_total_time_ms".into(), latency.total_time_ms);
    }

    for table in &interval.tables {
        let prefix = format!("pg.table.{}", table.qualified_name);
        metric(format!("{prefix}.seq_scans"), table.seq_scan as f64);
        metric(format!("{prefix}.seq_tup_read"), table.seq_tup_read as f64);
        if let Some(idx) = table.idx_scan {
            metric(format!("{prefix}.idx_scans"), idx as f64);
        }
        metric(format!("{prefix}.live_tuples"), table.live_tuples as f64);
        metric(format!("{prefix}.dead_tuples"), table.dead_tuples as f64);
        if table.live_tuples > 0 {
            metric(
                format!("{prefix}.bloat_ratio"),
                table.dead_tuples as f64 / table.live_tuples as f64,
            );
        }
    }
    if interval.seconds.is_some()
        && let Some(worst) = interval
            .tables
            .iter()
            .filter(|t| t.seq_tup_read > 0)
            .max_by_key(|t| t.seq_tup_read)
    {
        labels.insert(
            "pg.worst_seq_scan_table".into(),
            worst.qualified_name.clone(),
        );
    }
    if let Some(worst) = interval
        .tables
        .iter()
        .filter(|t| t.dead_tuples > 0 && t.live_tuples > 0)
        .max_by_key(|t| t.dead_tuples)
    {
        labels.insert("pg.worst_bloat_table".into(), worst.qualified_name.clone());
        metric(
            "pg.worst_bloat_ratio".into(),
            worst.dead_tuples as f64 / worst.live_tuples as f64,
        );
    }

    let activity = sample.activity.clone().unwrap_or_default();
    metric(
        "pg.long_running_query_count".into(),
        activity.long_running.len() as f64,
    );
    metric(
        "pg.idle_transaction_count".into(),
        activity.idle_in_transaction.len() as f64,
    );
    metric("pg.blocked_sessions".into(), activity.blocked.len() as f64);
    metric(
        "pg.oldest_xmin_age".into(),
        activity.xmin_horizon.oldest_session_xmin_age as f64,
    );
    if let Some(longest) = activity.long_running.first() {
        metric(
            "pg.longest_query_duration_secs".into(),
            longest.duration_secs,
        );
        labels.insert("pg.longest_query_pid".into(), longest.pid.to_string());
        labels.insert("pg.longest_query_user".into(), longest.username.clone());
        labels.insert("pg.longest_query_text".into(), longest.query.clone());
    }
    if let Some(idle) = activity.idle_in_transaction.first() {
        metric("pg.idle_txn_duration_secs".into(), idle.duration_secs);
        labels.insert("pg.idle_txn_pid".into(), idle.pid.to_string());
        labels.insert("pg.idle_txn_user".into(), idle.username.clone());
        labels.insert("pg.idle_txn_query".into(), idle.query.clone());
    }
    if !sample.capabilities.unavailable.is_empty() {
        let names: Vec<&str> = sample
            .capabilities
            .unavailable
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        labels.insert("pg.unavailable".into(), names.join(","));
    }

    let score = scores(Inputs {
        connections: sample.connections.as_ref().map(|c| (c.total, usable)),
        p95_latency_ms: measurements.p95_query_latency_ms,
        seq_scans_per_second: interval
            .seq_scans
            .zip(interval.seconds.filter(|s| *s > 0.0))
            .map(|(scans, seconds)| scans as f64 / seconds),
        cache_hit_rate: measurements.cache_hit_rate,
    });

    let emitted: HashSet<&str> = interval
        .tables
        .iter()
        .map(|t| t.qualified_name.as_str())
        .collect();
    let indexes = indexes
        .into_iter()
        .filter(|i| emitted.contains(i.qualified_table.as_str()))
        .collect();
    let mut available = vec!["connections", "storage", "cache", "tables", "sessions"];
    if sample.statements.is_some() {
        available.push("latency");
        available.push("statements");
    }

    let latency = interval.latency.clone().unwrap_or_default();
    MetricSnapshot {
        database_id: database_id.to_owned(),
        database_type: DATABASE_TYPE.to_owned(),
        timestamp,
        health_score: score.health,
        connection_health: score.connection,
        query_health: score.query,
        storage_health: score.storage,
        cache_health: score.cache,
        available_metrics: available.into_iter().map(str::to_owned).collect(),
        measurements: Some(measurements),
        extended_metrics: extended,
        labels,
        metric_deltas: deltas,
        time_delta_seconds: interval.seconds,
        postgres: Some(PostgresDetail {
            server_version: sample.server_version.clone(),
            server_version_num: sample.server_version_num,
            settings: Some(sample.settings),
            capabilities: Some(sample.capabilities.clone()),
            tables: interval.tables,
            indexes,
            top_statements: interval.top_statements,
            long_running: activity.long_running,
            idle_in_transaction: activity.idle_in_transaction,
            blocked: activity.blocked,
            xmin_horizon: Some(activity.xmin_horizon),
            host_memory_bytes: sample.host_memory_bytes,
            statements_calls: latency.calls,
            statements_total_time_ms: latency.total_time_ms,
            database_name: sample.database_name.clone(),
            // Set by the orchestrator from what it learnt over many cycles (`constants`).
            statement_constants: Vec::new(),
            // The whole list; `table_list::SentTables` says otherwise when it sends less.
            table_list: None,
        }),
    }
}

/// The NATS `metrics` payload: the snapshot without the typed detail, in the original's JSON,
/// plus the window's costliest statements (`top_statements`).
pub fn to_event(snapshot: &MetricSnapshot) -> NormalisedMetrics {
    let m = snapshot.measurements.unwrap_or_default();
    NormalisedMetrics {
        database_id: snapshot.database_id.clone(),
        database_type: snapshot.database_type.clone(),
        timestamp: snapshot.timestamp,
        health_score: snapshot.health_score,
        connection_health: snapshot.connection_health,
        query_health: snapshot.query_health,
        storage_health: snapshot.storage_health,
        cache_health: snapshot.cache_health,
        available_metrics: Some(snapshot.available_metrics.clone()),
        measurements: JsonMeasurements {
            active_connections: m.active_connections,
            idle_connections: m.idle_connections,
            max_connections: m.max_connections,
            waiting_connections: m.waiting_connections,
            avg_query_latency_ms: m.avg_query_latency_ms,
            p50_query_latency_ms: m.p50_query_latency_ms,
            p95_query_latency_ms: m.p95_query_latency_ms,
            p99_query_latency_ms: m.p99_query_latency_ms,
            slow_query_count: m.slow_query_count,
            sequential_scans: m.sequential_scans,
            used_storage_bytes: m.used_storage_bytes,
            total_storage_bytes: m.total_storage_bytes,
            free_storage_bytes: m.free_storage_bytes,
            cache_hit_rate: m.cache_hit_rate,
            cache_hit_count: m.cache_hit_count,
            cache_miss_count: m.cache_miss_count,
        },
        metric_deltas: snapshot
            .metric_deltas
            .clone()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        time_delta_seconds: snapshot.time_delta_seconds,
        extended_metrics: snapshot.extended_metrics.clone().into_iter().collect(),
        labels: snapshot.labels.clone().into_iter().collect(),
        top_statements: snapshot
            .postgres
            .as_ref()
            .filter(|_| snapshot.time_delta_seconds.is_some())
            .filter(|p| !p.top_statements.is_empty())
            .map(|p| statements_on_nats(&p.top_statements)),
    }
}

/// The window's statements for NATS: one per `queryid` (the roles that ran it summed), the
/// costliest [`STATEMENTS_ON_NATS`] by total time, each text through `literals::redact` —
/// pg_stat_statements keeps some utility statements' constants, and these texts reach browsers
/// and webhooks.
fn statements_on_nats(top: &[StatementStats]) -> Vec<StatementWindow> {
    let mut by_id: BTreeMap<i64, StatementWindow> = BTreeMap::new();
    for s in top {
        let entry = by_id.entry(s.queryid).or_insert_with(|| StatementWindow {
            queryid: s.queryid,
            query: crate::literals::redact(&s.query),
            ..Default::default()
        });
        entry.calls += s.calls;
        entry.total_time_ms += s.total_time_ms;
        entry.rows += s.rows;
        entry.shared_blks_hit += s.shared_blks_hit;
        entry.shared_blks_read += s.shared_blks_read;
    }
    let mut list: Vec<StatementWindow> = by_id.into_values().collect();
    list.sort_by(|a, b| b.total_time_ms.total_cmp(&a.total_time_ms));
    list.truncate(STATEMENTS_ON_NATS);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(queryid: i64, role: &str, query: &str, calls: i64, ms: f64) -> StatementStats {
        StatementStats {
            queryid,
            query: query.into(),
            role: role.into(),
            calls,
            total_time_ms: ms,
            mean_time_ms: ms / calls as f64,
            rows: calls,
            shared_blks_hit: 1,
            shared_blks_read: 2,
        }
    }

    fn snapshot(top: Vec<StatementStats>, windowed: bool) -> MetricSnapshot {
        MetricSnapshot {
            database_id: "db1".into(),
            time_delta_seconds: windowed.then_some(5.0),
            postgres: Some(PostgresDetail {
                top_statements: top,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_event_carries_the_costliest_statements_one_per_queryid_without_literals() {
        let mut top = vec![
            statement(1, "app", "SELECT * FROM posts WHERE user_id = $1", 10, 50.0),
            statement(
                1,
                "report",
                "SELECT * FROM posts WHERE user_id = $1",
                5,
                25.0,
            ),
            statement(2, "app", "SET statement_timeout = 5000", 1, 60.0),
        ];
        top.extend((10..60).map(|n| statement(n, "app", "SELECT $1", 1, 1.0 / n as f64)));
        let event = to_event(&snapshot(top, true));
        let list = event
            .top_statements
            .expect("statements on a windowed snapshot");
        assert_eq!(list.len(), STATEMENTS_ON_NATS);
        assert_eq!(list[0].queryid, 1, "75 ms over both roles: the costliest");
        assert_eq!((list[0].calls, list[0].total_time_ms), (15, 75.0));
        assert_eq!((list[0].rows, list[0].shared_blks_read), (15, 4));
        assert_eq!(list[1].queryid, 2);
        assert!(!list[1].query.contains("5000"), "{}", list[1].query);
        assert!(
            list.windows(2)
                .all(|w| w[0].total_time_ms >= w[1].total_time_ms)
        );
    }

    #[test]
    fn an_unwindowed_or_statementless_snapshot_sends_no_statements() {
        let top = vec![statement(1, "app", "SELECT 1", 1, 1.0)];
        assert!(to_event(&snapshot(top, false)).top_statements.is_none());
        assert!(
            to_event(&snapshot(Vec::new(), true))
                .top_statements
                .is_none()
        );
        let json = serde_json::to_value(to_event(&snapshot(Vec::new(), true))).unwrap();
        assert!(json.get("top_statements").is_none(), "{json}");
    }
}
