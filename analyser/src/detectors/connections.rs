//! `connection_pool_exhaustion`: client connections of every state against the connections
//! usable by clients (the original counted only `active` ones against max_connections, so a pool
//! of idle connections exhausting the server went unseen).

use proto::events::Detection;
use proto::metrics::MetricSnapshot;
use serde_json::json;

use super::Finding;
use crate::thresholds::Thresholds;

pub fn connection_pool_exhaustion(s: &MetricSnapshot, t: &Thresholds) -> Option<Detection> {
    let settings = s.postgres.as_ref()?.settings?;
    let total = *s.extended_metrics.get("pg.connections_total")? as i64;
    let usable = i64::from(settings.max_connections - settings.superuser_reserved_connections);
    if usable <= 0 {
        return None;
    }
    let ratio = total as f64 / usable as f64;
    if ratio < t.connection_pool_critical {
        return None;
    }
    let severity = match ratio {
        r if r >= 0.95 => "critical",
        r if r >= 0.85 => "warning",
        _ => "info",
    };
    let percent = (ratio * 100.0) as i64;
    let m = s.measurements.unwrap_or_default();
    // A pool a little under the usable connections leaves room for admin sessions.
    let pool_size = ((usable as f64) * 0.8).floor().max(1.0) as i64;
    Some(
        Finding {
            snapshot: s,
            detector: "connection_pool_exhaustion",
            category: "connection",
            severity,
            identifier: "connection".into(),
            title: format!("Connection pool at {percent}% capacity"),
            description: format!(
                "{total} of {usable} client connections are in use ({percent}%); new connections \
                 will be refused once the limit is reached"
            ),
            evidence: json!({
                "total_connections": total,
                "active_connections": m.active_connections,
                "idle_connections": m.idle_connections,
                "idle_in_transaction_connections": s.extended_metrics.get("pg.idle_in_transaction_connections"),
                "max_connections": settings.max_connections,
                "usable_connections": usable,
                "usage_ratio": ratio,
                "usage_percent": percent,
                "connection_health": s.connection_health,
            }),
            recommendation: format!(
                "Put PgBouncer in front of the database with a server pool of about {pool_size} \
                 connections, and point the application at it"
            ),
            action_type: "deploy_connection_pooler",
            action_metadata: json!({
                "priority": "high",
                "database_type": s.database_type,
                "recommended_tool": "pgbouncer",
                "current_usage": percent,
                "pool_size": pool_size,
            }),
        }
        .into_detection(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::fixtures::{snapshot, thresholds};

    #[test]
    fn idle_connections_count_towards_exhaustion() {
        let mut s = snapshot();
        s.extended_metrics
            .insert("pg.connections_total".into(), 90.0);
        let d = connection_pool_exhaustion(&s, &thresholds()).unwrap();
        assert_eq!(d.key, "db1:connection_pool_exhaustion:connection");
        assert_eq!(d.severity, "warning", "90 of 97 usable is 92 %");
        assert_eq!(d.action_type, "deploy_connection_pooler");
        assert_eq!(d.action_metadata.unwrap()["pool_size"], 77);
    }

    #[test]
    fn below_the_threshold_nothing_fires() {
        let mut s = snapshot();
        s.extended_metrics
            .insert("pg.connections_total".into(), 50.0);
        assert!(connection_pool_exhaustion(&s, &thresholds()).is_none());
    }
}
