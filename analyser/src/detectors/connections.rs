//! `connection_pool_exhaustion`: client connections of every state against the connections
//! usable by clients (the original counted only `active` ones against max_connections, so a pool
//! of idle connections exhausting the server went unseen).
//!
//! The limit is the server's, shared by all its databases, so it is reported once per server: by
//! the database holding the most connections (ties by name). A pooler is proposed only when that
//! database holds at least half of them — in front of it, PgBouncer can relieve the server;
//! otherwise (many databases, a few connections each) the detection recommends what a person can
//! do instead of deploying a pooler per database.

use proto::events::Detection;
use proto::metrics::MetricSnapshot;
use serde_json::json;

use proto::status::{ActionType, Category, Detector, Severity};

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
    let here = s.labels.get("pg.database_name").filter(|n| !n.is_empty());
    let busiest = s
        .labels
        .get("pg.connections_busiest_database")
        .filter(|n| !n.is_empty());
    if let (Some(here), Some(busiest)) = (here, busiest)
        && here != busiest
    {
        return None;
    }
    // Without the per-database count (an older collector), as before: this database's pooler.
    let database_connections = s
        .extended_metrics
        .get("pg.connections_database")
        .map_or(total, |n| *n as i64);
    let share = database_connections as f64 / total.max(1) as f64;
    let severity = match ratio {
        r if r >= 0.95 => Severity::Critical,
        r if r >= 0.85 => Severity::Warning,
        _ => Severity::Info,
    };
    let percent = (ratio * 100.0) as i64;
    let m = s.measurements.unwrap_or_default();
    // A pool a little under the usable connections leaves room for admin sessions.
    let pool_size = ((usable as f64) * 0.8).floor().max(1.0) as i64;
    let evidence = json!({
        "total_connections": total,
        "database_connections": database_connections,
        "database_share": share,
        "active_connections": m.active_connections,
        "idle_connections": m.idle_connections,
        "idle_in_transaction_connections": s.extended_metrics.get("pg.idle_in_transaction_connections"),
        "max_connections": settings.max_connections,
        "usable_connections": usable,
        "usage_ratio": ratio,
        "usage_percent": percent,
        "connection_health": s.connection_health,
    });
    let description = format!(
        "{total} of {usable} client connections are in use ({percent}%), {database_connections} \
         of them to this database; new connections will be refused once the limit is reached"
    );
    let finding = |recommendation: String, action_type, action_metadata| {
        Finding {
            snapshot: s,
            detector: Detector::ConnectionPoolExhaustion,
            category: Category::Connection,
            severity,
            identifier: "connection".into(),
            title: format!("Connection pool at {percent}% capacity"),
            description: description.clone(),
            evidence: evidence.clone(),
            recommendation,
            action_type,
            action_metadata,
        }
        .into_detection()
    };
    if share >= 0.5 {
        return Some(finding(
            format!(
                "Put PgBouncer in front of the database with a server pool of about {pool_size} \
                 connections, and point the application at it"
            ),
            ActionType::DeployConnectionPooler,
            json!({
                "priority": "high",
                "database_type": s.database_type,
                "recommended_tool": "pgbouncer",
                "current_usage": percent,
                "pool_size": pool_size,
            }),
        ));
    }
    let steps = [
        "Give each application a smaller connection pool (most need far fewer than they open)",
        "Put PgBouncer in front of the server for all databases, pooling per database",
        "Or raise max_connections (needs a restart, and memory per connection)",
    ];
    Some(finding(
        format!(
            "No database holds most of the connections (this one, the busiest, has \
             {database_connections} of {total}): a pooler in front of one database would not \
             relieve the server. Pool or shrink the applications' connections across databases"
        ),
        ActionType::ConnectionRecommendation,
        json!({
            "priority": "high",
            "current_usage": percent,
            "safe_option": {
                "title": "Use fewer connections per application",
                "description": "The limit is the server's and every database's connections count",
                "risk_level": "safe",
                "requires_restart": false,
                "steps": steps,
            },
        }),
    ))
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

    /// 90 of 97 usable connections on the server, `here` of them to database `name`, and
    /// `busiest` the database with the most.
    fn crowded(here: f64, name: &str, busiest: &str) -> MetricSnapshot {
        let mut s = snapshot();
        s.extended_metrics
            .insert("pg.connections_total".into(), 90.0);
        s.extended_metrics
            .insert("pg.connections_database".into(), here);
        s.labels.insert("pg.database_name".into(), name.into());
        s.labels
            .insert("pg.connections_busiest_database".into(), busiest.into());
        s
    }

    #[test]
    fn the_busiest_database_holding_most_connections_gets_the_pooler() {
        let d = connection_pool_exhaustion(&crowded(60.0, "shop", "shop"), &thresholds()).unwrap();
        assert_eq!(d.action_type, "deploy_connection_pooler");
        assert_eq!(d.evidence["database_connections"], 60);
    }

    #[test]
    fn the_server_is_reported_once_from_its_busiest_database() {
        assert!(
            connection_pool_exhaustion(&crowded(2.0, "db007", "db001"), &thresholds()).is_none(),
            "another database reports it"
        );
    }

    #[test]
    fn many_databases_with_a_few_connections_each_get_advice_not_a_pooler_each() {
        let d = connection_pool_exhaustion(&crowded(3.0, "db001", "db001"), &thresholds()).unwrap();
        assert_eq!(d.action_type, "connection_recommendation");
        assert!(d.recommendation.contains("3 of 90"), "{}", d.recommendation);
        let steps = &d.action_metadata.unwrap()["safe_option"]["steps"];
        assert!(steps.as_array().is_some_and(|s| !s.is_empty()), "{steps}");
    }
}
