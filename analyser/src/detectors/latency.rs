//! `high_query_latency`: the p95 over the interval from pg_stat_statements deltas (the original's
//! detector never fired: nothing measured latency). Not judged below `latency_min_calls_per_second`
//! (a rate, so the same workload is judged the same at any collection interval).

use proto::events::Detection;
use proto::metrics::MetricSnapshot;
use serde_json::json;

use proto::status::{ActionType, Category, Detector, Severity};

use super::Finding;
use crate::thresholds::Thresholds;

/// Statements named in the evidence.
const SLOWEST: usize = 3;

pub fn high_query_latency(s: &MetricSnapshot, t: &Thresholds) -> Option<Detection> {
    let detail = s.postgres.as_ref()?;
    let m = s.measurements?;
    let p95 = m.p95_query_latency_ms?;
    let window = s.time_delta_seconds.filter(|w| *w > 0.0)?;
    let calls_per_second = detail.statements_calls as f64 / window;
    if calls_per_second < t.latency_min_calls_per_second || p95 < t.p95_latency_ms {
        return None;
    }
    let severity = match p95 / t.p95_latency_ms {
        r if r > 3.0 => Severity::Critical,
        r if r > 2.0 => Severity::Warning,
        _ => Severity::Info,
    };
    let slowest: Vec<_> = detail
        .top_statements
        .iter()
        .take(SLOWEST)
        .map(|st| {
            json!({
                "queryid": st.queryid.to_string(),
                "query": st.query,
                "calls": st.calls,
                "mean_time_ms": st.mean_time_ms,
                "total_time_ms": st.total_time_ms,
            })
        })
        .collect();
    let settings = detail.settings.unwrap_or_default();
    Some(
        Finding {
            snapshot: s,
            detector: Detector::HighQueryLatency,
            category: Category::Query,
            severity,
            identifier: "query".into(),
            title: format!("High query latency detected ({p95:.0}ms p95)"),
            description: format!(
                "95 % of the {} statements run in the last {:.0} s took up to {p95:.1} ms \
                 (threshold {:.0} ms); the most time went to the statements listed in the evidence",
                detail.statements_calls,
                s.time_delta_seconds.unwrap_or_default(),
                t.p95_latency_ms
            ),
            evidence: json!({
                "latency_ms": p95,
                "latency_type": "p95",
                "threshold_ms": t.p95_latency_ms,
                "avg_latency_ms": m.avg_query_latency_ms,
                "p50_latency_ms": m.p50_query_latency_ms,
                "p99_latency_ms": m.p99_query_latency_ms,
                "calls": detail.statements_calls,
                "calls_per_second": calls_per_second,
                "slowest_statements": slowest,
                "query_health": s.query_health,
            }),
            recommendation: "Look at the slowest statements first (an index may serve them); \
                             then review work_mem, effective_cache_size and random_page_cost \
                             against the server's memory"
                .into(),
            action_type: ActionType::TuneConfigHighLatency,
            action_metadata: json!({
                "database_type": s.database_type,
                "p95_latency_ms": p95,
                "threshold_ms": t.p95_latency_ms,
                "avg_latency_ms": m.avg_query_latency_ms,
                "work_mem_bytes": settings.work_mem_bytes,
                "effective_cache_size_bytes": settings.effective_cache_size_bytes,
                "random_page_cost": settings.random_page_cost,
                "host_memory_bytes": detail.host_memory_bytes,
            }),
        }
        .into_detection(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::fixtures::{snapshot, thresholds};

    fn with_latency(p95: f64, calls: i64) -> MetricSnapshot {
        let mut s = snapshot();
        let mut m = s.measurements.unwrap();
        m.p95_query_latency_ms = Some(p95);
        m.avg_query_latency_ms = Some(p95 / 3.0);
        s.measurements = Some(m);
        s.postgres.as_mut().unwrap().statements_calls = calls;
        s
    }

    #[test]
    fn fires_on_the_windowed_p95_with_severity_bands() {
        let d = high_query_latency(&with_latency(250.0, 500), &thresholds()).unwrap();
        assert_eq!(d.severity, "warning");
        assert_eq!(d.key, "db1:high_query_latency:query");
        assert_eq!(
            high_query_latency(&with_latency(350.0, 500), &thresholds())
                .unwrap()
                .severity,
            "critical"
        );
        assert_eq!(
            high_query_latency(&with_latency(120.0, 500), &thresholds())
                .unwrap()
                .severity,
            "info"
        );
    }

    #[test]
    fn too_few_calls_or_no_latency_is_not_judged() {
        // 10 calls in 10 s is 1 call per second: below the 5 per second needed.
        assert!(high_query_latency(&with_latency(900.0, 10), &thresholds()).is_none());
        assert!(high_query_latency(&snapshot(), &thresholds()).is_none());
        assert!(high_query_latency(&with_latency(90.0, 500), &thresholds()).is_none());
    }

    #[test]
    fn the_call_rate_not_the_window_count_decides() {
        // 8 calls per second, seen through a 1 s and a 10 s window: judged both times.
        let mut short = with_latency(250.0, 8);
        short.time_delta_seconds = Some(1.0);
        assert!(high_query_latency(&short, &thresholds()).is_some());
        assert!(high_query_latency(&with_latency(250.0, 80), &thresholds()).is_some());
        // 3 calls per second is below the bar at either interval.
        let mut sparse = with_latency(250.0, 3);
        sparse.time_delta_seconds = Some(1.0);
        assert!(high_query_latency(&sparse, &thresholds()).is_none());
        assert!(high_query_latency(&with_latency(250.0, 30), &thresholds()).is_none());
    }
}
