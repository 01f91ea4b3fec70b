//! The collector's own Prometheus metrics (served at `/metrics` on its health port): each
//! database's cycle time, the size of the snapshot it last sent the analyser, and its failed
//! cycles.

use lifecycle::metrics::{self, Counter, Family, Gauge, Histogram, Labels, Registry, Unit};

/// Updated by each database's task after every cycle.
#[derive(Clone)]
pub struct CollectorMetrics {
    cycle_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    snapshot_bytes: Family<Labels, Gauge>,
    unreachable: Family<Labels, Counter>,
}

impl Default for CollectorMetrics {
    fn default() -> Self {
        Self {
            cycle_seconds: Family::new_with_constructor(metrics::duration_histogram),
            snapshot_bytes: Family::default(),
            unreachable: Family::default(),
        }
    }
}

fn database(id: &str) -> Labels {
    vec![("database_id", id.to_owned())]
}

impl CollectorMetrics {
    /// Registers `cycle_duration_seconds{database_id}`, `snapshot_bytes{database_id}` and
    /// `cycles_unreachable_total{database_id}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "cycle_duration",
            "Time of one collection cycle of a database: every query, the window and the snapshot",
            Unit::Seconds,
            self.cycle_seconds.clone(),
        );
        registry.register_with_unit(
            "snapshot",
            "Encoded size of the snapshot of a database last sent to the analyser",
            Unit::Bytes,
            self.snapshot_bytes.clone(),
        );
        registry.register(
            "cycles_unreachable",
            "Cycles in which a database could not be read",
            self.unreachable.clone(),
        );
    }

    pub fn collected(&self, database_id: &str, seconds: f64, snapshot_bytes: usize) {
        let labels = database(database_id);
        self.cycle_seconds.get_or_create(&labels).observe(seconds);
        self.snapshot_bytes
            .get_or_create(&labels)
            .set(i64::try_from(snapshot_bytes).unwrap_or(i64::MAX));
    }

    pub fn unreachable(&self, database_id: &str) {
        self.unreachable.get_or_create(&database(database_id)).inc();
    }

    /// A database no longer watched here: its series go, so a thousand databases that came and
    /// went leave nothing behind.
    pub fn forget(&self, database_id: &str) {
        let labels = database(database_id);
        self.cycle_seconds.remove(&labels);
        self.snapshot_bytes.remove(&labels);
        self.unreachable.remove(&labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_database_has_its_cycle_times_snapshot_size_and_failures_until_it_is_forgotten() {
        let metrics = CollectorMetrics::default();
        let mut registry = lifecycle::metrics::registry();
        metrics.register(&mut registry);
        metrics.collected("shop", 0.004, 1_136);
        metrics.collected("shop", 0.5, 900);
        metrics.unreachable("blog");
        let text = lifecycle::metrics::text(&registry).unwrap();
        for line in [
            r#"startupmonkey_cycle_duration_seconds_count{database_id="shop"} 2"#,
            r#"startupmonkey_cycle_duration_seconds_sum{database_id="shop"} 0.504"#,
            r#"startupmonkey_snapshot_bytes{database_id="shop"} 900"#,
            r#"startupmonkey_cycles_unreachable_total{database_id="blog"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        metrics.forget("shop");
        let text = lifecycle::metrics::text(&registry).unwrap();
        assert!(!text.contains("shop"), "{text}");
    }
}
