//! The executor's own Prometheus metrics (served at `/metrics` on its health port): every
//! action it ran, by type and outcome, and how long each took.

use lifecycle::metrics::{self, Counter, Family, Histogram, Labels, Registry, Unit};

/// Updated by the engine when an action it ran ends.
#[derive(Clone)]
pub struct ActionMetrics {
    ran: Family<Labels, Counter>,
    seconds: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for ActionMetrics {
    fn default() -> Self {
        Self {
            ran: Family::default(),
            seconds: Family::new_with_constructor(metrics::duration_histogram),
        }
    }
}

/// How an action this executor ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Completed,
    Failed,
    /// Stopped by shutdown after the drain deadline.
    Cancelled,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl ActionMetrics {
    /// Registers `actions_total{action_type, outcome}` and `action_duration_seconds{action_type}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "actions",
            "Actions this executor ran, by type and how they ended",
            self.ran.clone(),
        );
        registry.register_with_unit(
            "action_duration",
            "How long each action this executor ran took, from start to its end",
            Unit::Seconds,
            self.seconds.clone(),
        );
    }

    pub fn ended(&self, action_type: &str, ending: Ending, seconds: f64) {
        self.ran
            .get_or_create(&vec![
                ("action_type", action_type.to_owned()),
                ("outcome", ending.as_str().to_owned()),
            ])
            .inc();
        self.seconds
            .get_or_create(&vec![("action_type", action_type.to_owned())])
            .observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ended_action_is_counted_by_type_and_outcome_and_timed() {
        let metrics = ActionMetrics::default();
        let mut registry = lifecycle::metrics::registry();
        metrics.register(&mut registry);
        metrics.ended("create_index", Ending::Completed, 1.5);
        metrics.ended("create_index", Ending::Completed, 0.2);
        metrics.ended("vacuum_table", Ending::Cancelled, 30.0);
        let text = lifecycle::metrics::text(&registry).unwrap();
        for line in [
            r#"startupmonkey_actions_total{action_type="create_index",outcome="completed"} 2"#,
            r#"startupmonkey_actions_total{action_type="vacuum_table",outcome="cancelled"} 1"#,
            r#"startupmonkey_action_duration_seconds_sum{action_type="create_index"} 1.7"#,
            r#"startupmonkey_action_duration_seconds_count{action_type="vacuum_table"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }
}
