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
use proto::status::{ActionType, Category, Detector, Severity};
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

/// Root cause first: while the advisor proposes an index (or a set of them, one at a time) for
/// statements that account for at least half of the statement time per second, high latency is that missing index (tuning memory
/// settings would treat the symptom), and cache misses are its sequential scans reading the
/// table. Those detections wait until the index exists; if the problem remains, they come back.
/// Statements whose index question is still open count as served (see
/// `Advised::pending_ms_per_second`): their constants are being learnt, or an index on their
/// table has just been built and they are being measured again.
pub fn explained_by_indexes(
    found: &mut Vec<Detection>,
    snapshot: &MetricSnapshot,
    advised: &crate::advisor::Advised,
) {
    let advice = &advised.proposed;
    if advice.is_empty() && advised.pending_ms_per_second <= 0.0 {
        return;
    }
    let window = snapshot.time_delta_seconds.unwrap_or(0.0);
    let total = snapshot
        .postgres
        .as_ref()
        .filter(|_| window > 0.0)
        .map_or(0.0, |p| p.statements_total_time_ms / window);
    let served: f64 = advice.iter().map(|a| a.explains_ms_per_second).sum::<f64>()
        + advised.pending_ms_per_second;
    let latency_explained = total > 0.0 && served >= total / 2.0;
    found.retain(|d| match d.parsed_detector() {
        Ok(Detector::HighQueryLatency) => !latency_explained,
        Ok(Detector::CacheMissRateHigh) => false,
        _ => true,
    });
}

/// While an index built on the database is being verified, high latency and cache misses wait:
/// the index may be what removes them, and tuning memory settings meanwhile would blur the
/// measurement that decides whether the index stays. They come back after the verdict if the
/// problem remains.
pub fn wait_for_index_verification(found: &mut Vec<Detection>) {
    found.retain(|d| {
        !matches!(
            d.parsed_detector(),
            Ok(Detector::HighQueryLatency | Detector::CacheMissRateHigh)
        )
    });
}

/// What every detection has; the id is left empty for knowledge to assign.
pub(crate) struct Finding<'a> {
    pub snapshot: &'a MetricSnapshot,
    pub detector: Detector,
    pub category: Category,
    pub severity: Severity,
    pub identifier: String,
    pub title: String,
    pub description: String,
    pub evidence: Value,
    pub recommendation: String,
    pub action_type: ActionType,
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
            detector_name: self.detector.as_str().into(),
            category: self.category.as_str().into(),
            severity: self.severity.as_str().into(),
            database_id: self.snapshot.database_id.clone(),
            timestamp: self.snapshot.timestamp,
            title: self.title,
            description: self.description,
            evidence: self.evidence,
            recommendation: self.recommendation,
            action_type: self.action_type.as_str().into(),
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
            cache_min_block_reads_per_second: 100.0,
            table_bloat_ratio: 0.1,
            long_query_seconds: 30.0,
            idle_transaction_seconds: 300.0,
            index_min_statement_seconds_per_second: 0.02,
            index_min_rows_read_per_second: 100_000.0,
            index_min_table_rows: 10_000,
            index_max_new_per_table_per_hour: 2,
            index_min_cost_reduction: 0.3,
            latency_min_calls_per_second: 5.0,
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

#[cfg(test)]
mod tests {
    use proto::events::Detection;

    use super::*;
    use crate::advisor::candidates::Candidate;
    use crate::advisor::{Advice, Method, Served, Trigger};

    fn detection(detector: &str) -> Detection {
        Detection {
            detector_name: detector.into(),
            ..Default::default()
        }
    }

    /// An index serving `calls` in the fixture's 10 s window.
    fn advice(calls: i64, mean_time_ms: f64) -> Advice {
        Advice {
            schema: "public".into(),
            table: "posts".into(),
            candidate: Candidate::plain(Vec::new()),
            index_name: "i".into(),
            statement: String::new(),
            method: Method::HypoPg,
            served: vec![Served {
                queryid: 1,
                query: "q".into(),
                calls_per_second: calls as f64 / 10.0,
                mean_time_ms,
                cost_before: None,
                cost_after: None,
                reduction: 0.9,
                basis: crate::advisor::CostBasis::GenericPlan,
            }],
            saved_ms_per_day: 0.0,
            write_cost_ms_per_day: 0.0,
            size_bytes: None,
            write_heavy: false,
            writes_per_second: 0.0,
            reads_per_second: 0.0,
            bar: 0.3,
            trigger: Trigger::default(),
            explains_ms_per_second: calls as f64 / 10.0 * mean_time_ms,
            then: Vec::new(),
            note: String::new(),
        }
    }

    #[test]
    fn latency_and_cache_misses_wait_for_the_index_that_explains_them() {
        let mut snapshot = fixtures::snapshot();
        snapshot.postgres.as_mut().unwrap().statements_total_time_ms = 10_000.0;
        let all = || {
            vec![
                detection("high_query_latency"),
                detection("cache_miss_rate_high"),
                detection("idle_transaction"),
            ]
        };
        let names = |found: &[Detection]| {
            found
                .iter()
                .map(|d| d.detector_name.clone())
                .collect::<Vec<_>>()
        };
        let advised =
            |proposed: Vec<crate::advisor::Advice>, learning: f64| crate::advisor::Advised {
                proposed,
                pending_ms_per_second: learning,
            };
        let mut found = all();
        explained_by_indexes(
            &mut found,
            &snapshot,
            &advised(vec![advice(100, 90.0)], 0.0),
        );
        assert_eq!(names(&found), ["idle_transaction"]);
        // The index serves a tenth of the time: latency has another cause.
        let mut found = all();
        explained_by_indexes(
            &mut found,
            &snapshot,
            &advised(vec![advice(10, 100.0)], 0.0),
        );
        assert_eq!(names(&found), ["high_query_latency", "idle_transaction"]);
        let mut found = all();
        explained_by_indexes(&mut found, &snapshot, &advised(Vec::new(), 0.0));
        assert_eq!(found.len(), 3);
        let mut found = all();
        wait_for_index_verification(&mut found);
        assert_eq!(names(&found), ["idle_transaction"]);
        // No index yet, but the statements taking the time wait for their constants.
        let mut found = all();
        explained_by_indexes(&mut found, &snapshot, &advised(Vec::new(), 900.0));
        assert_eq!(names(&found), ["idle_transaction"]);
    }
}
