//! The thresholds in force: knowledge's configuration (edited in the dashboard), fetched again at
//! most every few seconds so a change applies to the next cycle without a restart; the env
//! fallbacks only while knowledge cannot be read.

use std::time::{Duration, Instant};

use proto::clients::Knowledge;
use proto::knowledge::DetectionThresholds;
use tokio::sync::Mutex;
use tracing::warn;

use crate::config::FallbackThresholds;

/// How long a fetched configuration is used before asking knowledge again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Every threshold a detector reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub connection_pool_critical: f64,
    pub p95_latency_ms: f64,
    pub cache_hit_rate: f64,
    /// Block reads per second below which the hit rate is not judged.
    pub cache_min_block_reads_per_second: f64,
    pub table_bloat_ratio: f64,
    pub long_query_seconds: f64,
    pub idle_transaction_seconds: f64,
    /// The index advisor considers a table when the statements that read it without a usable
    /// index take this much database time per second (seconds per second) …
    pub index_min_statement_seconds_per_second: f64,
    /// … or when its sequential scans read this many rows per second.
    pub index_min_rows_read_per_second: f64,
    pub index_min_table_rows: i64,
    /// At most this many new indexes proposed per table in any hour.
    pub index_max_new_per_table_per_hour: i64,
    /// With HypoPG, the fraction (0..1) by which a statement's planner cost must fall for an
    /// index to count as serving it.
    pub index_min_cost_reduction: f64,
    /// Statement calls per second below which latency is not judged.
    pub latency_min_calls_per_second: f64,
}

impl Thresholds {
    pub fn from_fallback(f: &FallbackThresholds) -> Self {
        Self {
            connection_pool_critical: f.connection_pool_critical,
            p95_latency_ms: f.p95_latency_ms,
            cache_hit_rate: f.cache_hit_rate,
            cache_min_block_reads_per_second: 100.0,
            table_bloat_ratio: f.table_bloat_ratio,
            long_query_seconds: f.long_query_seconds,
            idle_transaction_seconds: f.idle_transaction_seconds,
            index_min_statement_seconds_per_second: 0.02,
            index_min_rows_read_per_second: 100_000.0,
            index_min_table_rows: 10_000,
            index_max_new_per_table_per_hour: 2,
            index_min_cost_reduction: 0.3,
            latency_min_calls_per_second: 5.0,
        }
    }

    /// Knowledge's values (already defaulted by knowledge), the fallback for anything missing.
    pub fn from_knowledge(t: &DetectionThresholds, fallback: &Self) -> Self {
        let pick = |value: f64, default: f64| if value > 0.0 { value } else { default };
        let pick_i = |value: i64, default: i64| if value > 0 { value } else { default };
        Self {
            connection_pool_critical: pick(
                t.connection_pool_critical,
                fallback.connection_pool_critical,
            ),
            p95_latency_ms: pick(t.p95_latency_ms, fallback.p95_latency_ms),
            cache_hit_rate: pick(t.cache_hit_rate_threshold, fallback.cache_hit_rate),
            cache_min_block_reads_per_second: pick(
                t.cache_min_block_reads_per_second,
                fallback.cache_min_block_reads_per_second,
            ),
            table_bloat_ratio: pick(t.table_bloat_ratio, fallback.table_bloat_ratio),
            long_query_seconds: pick(t.long_query_seconds, fallback.long_query_seconds),
            idle_transaction_seconds: pick(
                t.idle_transaction_seconds,
                fallback.idle_transaction_seconds,
            ),
            index_min_statement_seconds_per_second: pick(
                t.index_min_statement_seconds_per_second,
                fallback.index_min_statement_seconds_per_second,
            ),
            index_min_rows_read_per_second: pick(
                t.index_min_rows_read_per_second,
                fallback.index_min_rows_read_per_second,
            ),
            index_min_table_rows: pick_i(t.index_min_table_rows, fallback.index_min_table_rows),
            index_max_new_per_table_per_hour: pick_i(
                t.index_max_new_per_table_per_hour,
                fallback.index_max_new_per_table_per_hour,
            ),
            index_min_cost_reduction: pick(
                t.index_min_cost_reduction,
                fallback.index_min_cost_reduction,
            ),
            latency_min_calls_per_second: pick(
                t.latency_min_calls_per_second,
                fallback.latency_min_calls_per_second,
            ),
        }
    }
}

/// Thresholds read from knowledge, cached for [`REFRESH`].
pub struct ThresholdSource {
    knowledge: Knowledge,
    fallback: Thresholds,
    cached: Mutex<Option<(Instant, Thresholds)>>,
}

impl ThresholdSource {
    pub fn new(knowledge: Knowledge, fallback: Thresholds) -> Self {
        Self {
            // Each cycle waits for this answer: a short deadline, the last known values after.
            knowledge: knowledge.with_deadline(Duration::from_secs(2)),
            fallback,
            cached: Mutex::new(None),
        }
    }

    /// The thresholds for this cycle.
    pub async fn current(&self) -> Thresholds {
        let mut cached = self.cached.lock().await;
        if let Some((at, thresholds)) = cached.as_ref()
            && at.elapsed() < REFRESH
        {
            return thresholds.clone();
        }
        let fetched = self.knowledge.system_config().await;
        let last_known = || {
            cached
                .as_ref()
                .map_or_else(|| self.fallback.clone(), |(_, t)| t.clone())
        };
        // On failure the last known values are kept for another REFRESH, so an unreachable
        // knowledge costs one attempt per REFRESH, not one per snapshot.
        let thresholds = match fetched {
            Ok(config) => {
                Thresholds::from_knowledge(&config.thresholds.unwrap_or_default(), &self.fallback)
            }
            Err(error) => {
                warn!(%error, "cannot read thresholds from knowledge; using the last known");
                last_known()
            }
        };
        *cached = Some((Instant::now(), thresholds.clone()));
        thresholds
    }
}
