//! The system configuration: defaults (the original's Knowledge defaults, plus the thresholds it
//! kept in env vars), validation of what the dashboard saves, and "zero means default".

use proto::knowledge::{DetectionThresholds, SystemConfig, VerificationSettings, WebhookConfig};
use proto::status::ExecutionMode;

use crate::error::KnowledgeError;

/// Seconds a key waits after a failed, rejected or rolled-back fix before it may be proposed again.
pub const DEFAULT_COOLDOWN_SECONDS: i64 = 1800;
const MAX_COOLDOWN_SECONDS: i64 = 30 * 24 * 3600;
/// Database time is seconds per second: a thousand is already far beyond any server's cores.
const MAX_STATEMENT_SECONDS_PER_SECOND: f64 = 1000.0;
const MAX_NEW_INDEXES_PER_TABLE_PER_HOUR: i64 = 100;
const WEBHOOK_EVENTS: &[&str] = &[
    "detection.created",
    "action.queued",
    "action.pending_approval",
    "action.completed",
    "action.failed",
    "action.rolledback",
    "action.verified",
];

/// `sequential_scan_delta` and `cache_min_block_reads` are superseded by the per-second fields
/// and no longer read by the analyser; their defaults are still filled for the original's clients.
pub fn default_thresholds() -> DetectionThresholds {
    DetectionThresholds {
        connection_pool_critical: 0.8,
        sequential_scan_threshold: 1000,
        sequential_scan_delta: 100.0,
        p95_latency_ms: 100.0,
        cache_hit_rate_threshold: 0.9,
        table_bloat_ratio: 0.1,
        long_query_seconds: 30.0,
        idle_transaction_seconds: 300.0,
        index_min_table_rows: 10_000,
        index_min_cost_reduction: 0.3,
        cache_min_block_reads: 1000,
        index_min_statement_seconds_per_second: 0.02,
        index_min_rows_read_per_second: 100_000.0,
        cache_min_block_reads_per_second: 100.0,
        latency_min_calls_per_second: 5.0,
        index_max_new_per_table_per_hour: 2,
    }
}

pub fn default_verification() -> VerificationSettings {
    VerificationSettings {
        cycles: 3,
        min_calls: 50,
        improvement_threshold: 0.1,
        regression_tolerance: 0.1,
        rollback_on_no_effect: false,
        timeout_seconds: 600,
    }
}

/// What knowledge answers before anything was saved.
pub fn default_config(mode: ExecutionMode) -> SystemConfig {
    SystemConfig {
        thresholds: Some(default_thresholds()),
        onboarding_complete: false,
        execution_mode: mode.to_string(),
        webhook: Some(WebhookConfig::default()),
        detection_cooldown_seconds: DEFAULT_COOLDOWN_SECONDS,
        verification: Some(default_verification()),
    }
}

/// Fills every zero or missing value with its default, so readers see the values in force.
pub fn effective(mut config: SystemConfig) -> SystemConfig {
    let defaults = default_thresholds();
    let t = config.thresholds.get_or_insert_with(Default::default);
    fill(
        &mut t.connection_pool_critical,
        defaults.connection_pool_critical,
    );
    fill(
        &mut t.sequential_scan_threshold,
        defaults.sequential_scan_threshold,
    );
    fill(&mut t.sequential_scan_delta, defaults.sequential_scan_delta);
    fill(&mut t.p95_latency_ms, defaults.p95_latency_ms);
    fill(
        &mut t.cache_hit_rate_threshold,
        defaults.cache_hit_rate_threshold,
    );
    fill(&mut t.table_bloat_ratio, defaults.table_bloat_ratio);
    fill(&mut t.long_query_seconds, defaults.long_query_seconds);
    fill(
        &mut t.idle_transaction_seconds,
        defaults.idle_transaction_seconds,
    );
    fill(&mut t.index_min_table_rows, defaults.index_min_table_rows);
    fill(
        &mut t.index_min_cost_reduction,
        defaults.index_min_cost_reduction,
    );
    fill(&mut t.cache_min_block_reads, defaults.cache_min_block_reads);
    fill(
        &mut t.index_min_statement_seconds_per_second,
        defaults.index_min_statement_seconds_per_second,
    );
    fill(
        &mut t.index_min_rows_read_per_second,
        defaults.index_min_rows_read_per_second,
    );
    fill(
        &mut t.cache_min_block_reads_per_second,
        defaults.cache_min_block_reads_per_second,
    );
    fill(
        &mut t.latency_min_calls_per_second,
        defaults.latency_min_calls_per_second,
    );
    fill(
        &mut t.index_max_new_per_table_per_hour,
        defaults.index_max_new_per_table_per_hour,
    );

    let defaults = default_verification();
    let v = config.verification.get_or_insert_with(Default::default);
    fill(&mut v.cycles, defaults.cycles);
    fill(&mut v.min_calls, defaults.min_calls);
    fill(&mut v.improvement_threshold, defaults.improvement_threshold);
    fill(&mut v.regression_tolerance, defaults.regression_tolerance);
    fill(&mut v.timeout_seconds, defaults.timeout_seconds);

    if config.execution_mode.is_empty() {
        config.execution_mode = ExecutionMode::Autonomous.to_string();
    }
    fill(
        &mut config.detection_cooldown_seconds,
        DEFAULT_COOLDOWN_SECONDS,
    );
    config.webhook.get_or_insert_with(Default::default);
    config
}

fn fill<T: PartialEq + Default>(value: &mut T, default: T) {
    if *value == T::default() {
        *value = default;
    }
}

/// Refuses values no detector could use, naming the field and the value.
pub fn validate(config: &SystemConfig) -> Result<(), KnowledgeError> {
    if let Some(t) = &config.thresholds {
        ratio(
            "thresholds.connection_pool_critical",
            t.connection_pool_critical,
        )?;
        ratio(
            "thresholds.cache_hit_rate_threshold",
            t.cache_hit_rate_threshold,
        )?;
        ratio("thresholds.table_bloat_ratio", t.table_bloat_ratio)?;
        ratio(
            "thresholds.index_min_cost_reduction",
            t.index_min_cost_reduction,
        )?;
        non_negative("thresholds.sequential_scan_delta", t.sequential_scan_delta)?;
        non_negative("thresholds.p95_latency_ms", t.p95_latency_ms)?;
        non_negative("thresholds.long_query_seconds", t.long_query_seconds)?;
        non_negative(
            "thresholds.idle_transaction_seconds",
            t.idle_transaction_seconds,
        )?;
        count(
            "thresholds.sequential_scan_threshold",
            t.sequential_scan_threshold,
        )?;
        count("thresholds.index_min_table_rows", t.index_min_table_rows)?;
        count("thresholds.cache_min_block_reads", t.cache_min_block_reads)?;
        let statement_time = t.index_min_statement_seconds_per_second;
        if !(statement_time.is_finite()
            && (0.0..=MAX_STATEMENT_SECONDS_PER_SECOND).contains(&statement_time))
        {
            return Err(invalid(
                "thresholds.index_min_statement_seconds_per_second",
                statement_time,
                "expected seconds of database time per second, 0-1000; 0 means the default",
            ));
        }
        non_negative(
            "thresholds.index_min_rows_read_per_second",
            t.index_min_rows_read_per_second,
        )?;
        non_negative(
            "thresholds.cache_min_block_reads_per_second",
            t.cache_min_block_reads_per_second,
        )?;
        non_negative(
            "thresholds.latency_min_calls_per_second",
            t.latency_min_calls_per_second,
        )?;
        if !(0..=MAX_NEW_INDEXES_PER_TABLE_PER_HOUR).contains(&t.index_max_new_per_table_per_hour) {
            return Err(invalid(
                "thresholds.index_max_new_per_table_per_hour",
                t.index_max_new_per_table_per_hour,
                "expected 1-100; 0 means the default",
            ));
        }
    }
    if let Some(v) = &config.verification {
        if !(0..=100).contains(&v.cycles) {
            return Err(invalid("verification.cycles", v.cycles, "expected 1-100"));
        }
        count("verification.min_calls", v.min_calls)?;
        ratio(
            "verification.improvement_threshold",
            v.improvement_threshold,
        )?;
        ratio("verification.regression_tolerance", v.regression_tolerance)?;
        count("verification.timeout_seconds", v.timeout_seconds)?;
    }
    if !config.execution_mode.is_empty() {
        config
            .execution_mode
            .parse::<ExecutionMode>()
            .map_err(|e| KnowledgeError::invalid(e.to_string()))?;
    }
    if !(0..=MAX_COOLDOWN_SECONDS).contains(&config.detection_cooldown_seconds) {
        return Err(invalid(
            "detection_cooldown_seconds",
            config.detection_cooldown_seconds,
            "expected 0-2592000 (30 days); 0 means the default",
        ));
    }
    if let Some(webhook) = &config.webhook {
        validate_webhook(webhook)?;
    }
    Ok(())
}

fn validate_webhook(webhook: &WebhookConfig) -> Result<(), KnowledgeError> {
    if !webhook.url.is_empty() {
        let url = url::Url::parse(&webhook.url).map_err(|e| {
            KnowledgeError::invalid(format!("webhook.url {:?} is not a URL: {e}", webhook.url))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(KnowledgeError::invalid(format!(
                "webhook.url {:?} must use http or https",
                webhook.url
            )));
        }
    } else if webhook.enabled {
        return Err(KnowledgeError::invalid(
            "webhook.enabled is true but webhook.url is empty",
        ));
    }
    for event in &webhook.events {
        crate::records::one_of("webhook event", event, WEBHOOK_EVENTS)?;
    }
    Ok(())
}

fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> KnowledgeError {
    KnowledgeError::invalid(format!("invalid {field} {value}: {expected}"))
}

fn ratio(field: &str, value: f64) -> Result<(), KnowledgeError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            value,
            "expected a ratio between 0 and 1; 0 means the default",
        ))
    }
}

fn non_negative(field: &str, value: f64) -> Result<(), KnowledgeError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(invalid(
            field,
            value,
            "expected a number >= 0; 0 means the default",
        ))
    }
}

fn count(field: &str, value: i64) -> Result<(), KnowledgeError> {
    if value >= 0 {
        Ok(())
    } else {
        Err(invalid(
            field,
            value,
            "expected a whole number >= 0; 0 means the default",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original_knowledge_defaults() {
        let t = default_config(ExecutionMode::Autonomous)
            .thresholds
            .unwrap();
        assert_eq!(t.connection_pool_critical, 0.8);
        assert_eq!(t.sequential_scan_threshold, 1000);
        assert_eq!(t.sequential_scan_delta, 100.0);
        assert_eq!(t.p95_latency_ms, 100.0);
        assert_eq!(t.cache_hit_rate_threshold, 0.9);
        assert_eq!(t.table_bloat_ratio, 0.1);
        assert_eq!(t.long_query_seconds, 30.0);
        assert_eq!(t.idle_transaction_seconds, 300.0);
    }

    #[test]
    fn per_second_thresholds_have_defaults_and_the_superseded_ones_are_still_filled() {
        let t = effective(SystemConfig::default()).thresholds.unwrap();
        assert_eq!(t.index_min_statement_seconds_per_second, 0.02);
        assert_eq!(t.index_min_rows_read_per_second, 100_000.0);
        assert_eq!(t.cache_min_block_reads_per_second, 100.0);
        assert_eq!(t.latency_min_calls_per_second, 5.0);
        assert_eq!(t.index_max_new_per_table_per_hour, 2);
        // Old readers still see values for the fields the analyser no longer reads.
        assert_eq!(t.sequential_scan_delta, 100.0);
        assert_eq!(t.cache_min_block_reads, 1000);
        assert_eq!(t, default_thresholds());
    }

    #[test]
    fn impossible_per_second_thresholds_are_refused_with_the_field_name() {
        let refused = |thresholds: DetectionThresholds| {
            validate(&SystemConfig {
                thresholds: Some(thresholds),
                ..Default::default()
            })
            .unwrap_err()
            .to_string()
        };
        let cases = [
            (
                DetectionThresholds {
                    cache_min_block_reads_per_second: -1.0,
                    ..Default::default()
                },
                "cache_min_block_reads_per_second -1",
            ),
            (
                DetectionThresholds {
                    latency_min_calls_per_second: -0.5,
                    ..Default::default()
                },
                "latency_min_calls_per_second -0.5",
            ),
            (
                DetectionThresholds {
                    index_min_rows_read_per_second: f64::INFINITY,
                    ..Default::default()
                },
                "index_min_rows_read_per_second inf",
            ),
            (
                DetectionThresholds {
                    index_min_statement_seconds_per_second: 1000.5,
                    ..Default::default()
                },
                "index_min_statement_seconds_per_second 1000.5",
            ),
            (
                DetectionThresholds {
                    index_min_statement_seconds_per_second: f64::NAN,
                    ..Default::default()
                },
                "index_min_statement_seconds_per_second NaN",
            ),
            (
                DetectionThresholds {
                    index_max_new_per_table_per_hour: 101,
                    ..Default::default()
                },
                "index_max_new_per_table_per_hour 101",
            ),
            (
                DetectionThresholds {
                    index_max_new_per_table_per_hour: -1,
                    ..Default::default()
                },
                "index_max_new_per_table_per_hour -1",
            ),
        ];
        for (thresholds, expected) in cases {
            let message = refused(thresholds);
            assert!(
                message.contains(expected),
                "{expected:?} not in {message:?}"
            );
        }

        let at_the_limits = SystemConfig {
            thresholds: Some(DetectionThresholds {
                index_min_statement_seconds_per_second: 1000.0,
                index_max_new_per_table_per_hour: 100,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(validate(&at_the_limits).is_ok());
    }

    #[test]
    fn zero_values_take_defaults_and_set_values_are_kept() {
        let saved = SystemConfig {
            thresholds: Some(DetectionThresholds {
                p95_latency_ms: 250.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        let config = effective(saved);
        let t = config.thresholds.unwrap();
        assert_eq!(t.p95_latency_ms, 250.0);
        assert_eq!(t.connection_pool_critical, 0.8);
        assert_eq!(config.execution_mode, "autonomous");
        assert_eq!(config.verification.unwrap().cycles, 3);
        assert_eq!(config.detection_cooldown_seconds, DEFAULT_COOLDOWN_SECONDS);
    }

    #[test]
    fn impossible_values_are_refused_with_the_field_name() {
        let bad_ratio = SystemConfig {
            thresholds: Some(DetectionThresholds {
                cache_hit_rate_threshold: 1.5,
                ..Default::default()
            }),
            ..Default::default()
        };
        let message = validate(&bad_ratio).unwrap_err().to_string();
        assert!(
            message.contains("cache_hit_rate_threshold 1.5"),
            "{message}"
        );

        let bad_mode = SystemConfig {
            execution_mode: "yolo".into(),
            ..Default::default()
        };
        assert!(
            validate(&bad_mode)
                .unwrap_err()
                .to_string()
                .contains("\"yolo\"")
        );

        let bad_webhook = SystemConfig {
            webhook: Some(WebhookConfig {
                url: "ftp://x".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(validate(&bad_webhook).is_err());
        assert!(validate(&default_config(ExecutionMode::Observe)).is_ok());
    }
}
