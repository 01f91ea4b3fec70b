//! The detectors, with the original's names, severity bands, action types and keys
//! (`<database_id>:<detector>:<identifier>`), reading the typed, windowed snapshot. Each is a pure
//! function of one snapshot and the thresholds in force, except `missing_index`, which turns the
//! index advisor's proposals (crate::advisor, which asks the database's planner) into detections.

mod bloat;
mod cache;
mod connections;
mod latency;
mod missing_index;
mod sessions;

use proto::events::Detection;
use proto::metrics::MetricSnapshot;
use serde_json::Value;

use crate::thresholds::Thresholds;

pub use missing_index::missing_index;

/// Runs every detector on one snapshot.
pub fn detect_all(snapshot: &MetricSnapshot, thresholds: &Thresholds) -> Vec<Detection> {
    let mut found = Vec::new();
    found.extend(connections::connection_pool_exhaustion(
        snapshot, thresholds,
    ));
    found.extend(latency::high_query_latency(snapshot, thresholds));
    found.extend(cache::cache_miss_rate_high(snapshot, thresholds));
    found.extend(bloat::table_bloat(snapshot, thresholds));
    found.extend(sessions::long_running_query(snapshot, thresholds));
    found.extend(sessions::idle_transaction(snapshot, thresholds));
    found
}

/// What every detection has; the id is left empty for knowledge to assign.
pub(crate) struct Finding<'a> {
    pub snapshot: &'a MetricSnapshot,
    pub detector: &'static str,
    pub category: &'static str,
    pub severity: &'static str,
    pub identifier: String,
    pub title: String,
    pub description: String,
    pub evidence: Value,
    pub recommendation: String,
    pub action_type: &'static str,
    pub action_metadata: Value,
}

impl Finding<'_> {
    pub fn into_detection(self) -> Detection {
        Detection {
            id: String::new(),
            key: format!(
                "{}:{}:{}",
                self.snapshot.database_id, self.detector, self.identifier
            ),
            detector_name: self.detector.into(),
            category: self.category.into(),
            severity: self.severity.into(),
            database_id: self.snapshot.database_id.clone(),
            timestamp: self.snapshot.timestamp,
            title: self.title,
            description: self.description,
            evidence: self.evidence,
            recommendation: self.recommendation,
            action_type: self.action_type.into(),
            action_metadata: Some(self.action_metadata),
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use proto::metrics::{Measurements, MetricSnapshot, PostgresDetail, ServerSettings};

    use crate::thresholds::Thresholds;

    pub fn thresholds() -> Thresholds {
        Thresholds {
            connection_pool_critical: 0.8,
            p95_latency_ms: 100.0,
            cache_hit_rate: 0.9,
            cache_min_block_reads: 1000,
            table_bloat_ratio: 0.1,
            long_query_seconds: 30.0,
            idle_transaction_seconds: 300.0,
            sequential_scan_delta: 100.0,
            index_min_table_rows: 10_000,
            index_min_cost_reduction: 0.3,
            min_calls: 50,
        }
    }

    /// A windowed snapshot of a quiet, healthy database.
    pub fn snapshot() -> MetricSnapshot {
        MetricSnapshot {
            database_id: "db1".into(),
            database_type: "postgresql".into(),
            timestamp: 1_800_000_000,
            time_delta_seconds: Some(10.0),
            measurements: Some(Measurements {
                active_connections: Some(2),
                max_connections: Some(100),
                ..Default::default()
            }),
            postgres: Some(PostgresDetail {
                database_name: "app".into(),
                settings: Some(ServerSettings {
                    max_connections: 100,
                    superuser_reserved_connections: 3,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}
