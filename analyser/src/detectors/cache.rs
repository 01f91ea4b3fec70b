//! `cache_miss_rate_high`: the windowed buffer hit rate, judged only with enough block reads per
//! second (`cache_min_block_reads_per_second`, a rate, so the same workload is judged the same at
//! any collection interval; an idle or new database has no hit rate, not a bad one: the original
//! fired a critical detection on it). A database that fits in shared buffers never fires: its misses are
//! blocks read for the first time since a start or a bulk load, and a bigger cache would not
//! have held them (the recommendation would be wrong).

use proto::events::Detection;
use proto::metrics::MetricSnapshot;
use serde_json::json;

use proto::status::{ActionType, Category, Detector, Severity};

use super::Finding;
use crate::thresholds::Thresholds;

pub fn cache_miss_rate_high(s: &MetricSnapshot, t: &Thresholds) -> Option<Detection> {
    let m = s.measurements?;
    let rate = m.cache_hit_rate?;
    let blocks = m.cache_hit_count? + m.cache_miss_count?;
    let window = s.time_delta_seconds.filter(|w| *w > 0.0)?;
    let blocks_per_second = blocks as f64 / window;
    if blocks_per_second < t.cache_min_block_reads_per_second || rate >= t.cache_hit_rate {
        return None;
    }
    let severity = match rate {
        r if r < 0.70 => Severity::Critical,
        r if r < 0.85 => Severity::Warning,
        _ => Severity::Info,
    };
    let hit = (rate * 100.0) as i64;
    let detail = s.postgres.as_ref();
    let shared_buffers = detail
        .and_then(|d| d.settings)
        .map(|s| s.shared_buffers_bytes);
    if let (Some(buffers), Some(size)) = (shared_buffers, m.used_storage_bytes)
        && buffers > 0
        && size <= buffers
    {
        return None;
    }
    let memory = detail.and_then(|d| d.host_memory_bytes);
    // The usual starting point: a quarter of the machine's memory, when it is known.
    let recommended = memory.map(|bytes| bytes / 4);
    let mut steps = vec![
        "Check the current value: SHOW shared_buffers".to_owned(),
        match recommended {
            Some(bytes) => format!(
                "Set shared_buffers to about {} MB (25 % of this server's {} MB of RAM): \
                 ALTER SYSTEM SET shared_buffers = '{}MB'",
                bytes / 1_048_576,
                memory.unwrap_or_default() / 1_048_576,
                bytes / 1_048_576
            ),
            None => {
                "Set shared_buffers to about 25 % of the server's RAM with ALTER SYSTEM".to_owned()
            }
        },
        "Restart PostgreSQL (shared_buffers needs a restart)".to_owned(),
        "Watch the cache hit rate in the dashboard".to_owned(),
    ];
    steps.dedup();
    Some(
        Finding {
            snapshot: s,
            detector: Detector::CacheMissRateHigh,
            category: Category::Cache,
            severity,
            identifier: "cache".into(),
            title: format!("Cache hit rate at {hit}% ({}% miss rate)", 100 - hit),
            description: format!(
                "Of {blocks} blocks read in the last {:.0} s, {}% came from outside shared buffers",
                s.time_delta_seconds.unwrap_or_default(),
                100 - hit
            ),
            evidence: json!({
                "cache_hit_rate": rate,
                "cache_hit_percent": hit,
                "cache_miss_percent": 100 - hit,
                "blocks_in_window": blocks,
                "blocks_per_second": blocks_per_second,
                "shared_buffers_bytes": shared_buffers,
                "host_memory_bytes": memory,
                "cache_health": s.cache_health,
            }),
            recommendation: "Give PostgreSQL more shared buffers (needs a restart), or reduce the \
                             working set (indexes instead of scans)"
                .into(),
            action_type: ActionType::CacheRecommendation,
            action_metadata: json!({
                "priority": "medium",
                "database_type": s.database_type,
                "current_hit_rate": hit,
                "target_hit_rate": 95,
                "safe_option": {
                    "title": "Increase shared_buffers",
                    "description": "More of the working set stays in memory",
                    "risk_level": "safe",
                    "requires_restart": true,
                    "recommended_shared_buffers_bytes": recommended,
                    "steps": steps,
                },
            }),
        }
        .into_detection(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::fixtures::{snapshot, thresholds};

    fn with_cache(hits: i64, reads: i64) -> MetricSnapshot {
        let mut s = snapshot();
        let mut m = s.measurements.unwrap();
        m.cache_hit_count = Some(hits);
        m.cache_miss_count = Some(reads);
        m.cache_hit_rate = (hits + reads > 0).then(|| hits as f64 / (hits + reads) as f64);
        s.measurements = Some(m);
        s.postgres.as_mut().unwrap().host_memory_bytes = Some(8 << 30);
        s
    }

    #[test]
    fn a_low_windowed_hit_rate_fires_with_a_size_from_the_machines_memory() {
        let d = cache_miss_rate_high(&with_cache(6_000, 4_000), &thresholds()).unwrap();
        assert_eq!(d.severity, "critical");
        assert_eq!(d.title, "Cache hit rate at 60% (40% miss rate)");
        let meta = d.action_metadata.unwrap();
        assert_eq!(
            meta["safe_option"]["recommended_shared_buffers_bytes"],
            2_i64 << 30
        );
    }

    #[test]
    fn a_database_that_fits_in_shared_buffers_is_warming_up_not_short_of_cache() {
        let mut s = with_cache(6_000, 4_000);
        let detail = s.postgres.as_mut().unwrap();
        let mut settings = detail.settings.unwrap_or_default();
        settings.shared_buffers_bytes = 128 << 20;
        detail.settings = Some(settings);
        let mut m = s.measurements.unwrap();
        m.used_storage_bytes = Some(20 << 20);
        s.measurements = Some(m);
        assert!(cache_miss_rate_high(&s, &thresholds()).is_none());
        m.used_storage_bytes = Some(129 << 20);
        s.measurements = Some(m);
        assert!(cache_miss_rate_high(&s, &thresholds()).is_some());
    }

    #[test]
    fn the_read_rate_not_the_window_count_decides() {
        // 500 block reads per second, seen through a 1 s and a 10 s window: judged both times.
        let mut short = with_cache(300, 200);
        short.time_delta_seconds = Some(1.0);
        assert!(cache_miss_rate_high(&short, &thresholds()).is_some());
        assert!(cache_miss_rate_high(&with_cache(3_000, 2_000), &thresholds()).is_some());
        // 50 per second is too few to judge at either interval.
        let mut sparse = with_cache(30, 20);
        sparse.time_delta_seconds = Some(1.0);
        assert!(cache_miss_rate_high(&sparse, &thresholds()).is_none());
        assert!(cache_miss_rate_high(&with_cache(300, 200), &thresholds()).is_none());
    }

    #[test]
    fn an_idle_or_lightly_used_database_never_fires() {
        assert!(cache_miss_rate_high(&with_cache(0, 0), &thresholds()).is_none());
        assert!(cache_miss_rate_high(&with_cache(10, 90), &thresholds()).is_none());
        assert!(cache_miss_rate_high(&snapshot(), &thresholds()).is_none());
    }
}
