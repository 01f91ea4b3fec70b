//! `table_bloat`: each table whose dead tuples reach the ratio of its live ones (the original
//! looked only at the table with the most dead tuples), with the root cause when VACUUM cannot
//! help: a session, prepared transaction or replication slot holding back the xmin horizon.

use proto::events::Detection;
use proto::metrics::{MetricSnapshot, XminHorizon};
use serde_json::{Value, json};

use proto::status::{ActionType, Category, Detector, Severity};

use super::Finding;
use crate::thresholds::Thresholds;

/// Tables with fewer dead tuples than this are not worth a VACUUM of their own.
const MIN_DEAD_TUPLES: i64 = 1000;
/// Smaller tables (live + dead rows) are left to autovacuum: a hot little table (pgbench's
/// branches: 2 rows, thousands of updates) carries many times its size in dead rows between two
/// autovacuum runs, and that costs a few pages, not a problem.
const MIN_TABLE_ROWS: i64 = 10_000;
/// Most bloated tables reported per snapshot.
const MOST: usize = 5;
/// A horizon held back by fewer transactions than this holds back nothing worth naming.
const HORIZON_AGE: i64 = 10;
/// A session running this long with a snapshot holds the horizon for good reason or not; either
/// way it is the one to name.
const HOLDING_SECS: f64 = 30.0;

pub fn table_bloat(s: &MetricSnapshot, t: &Thresholds) -> Vec<Detection> {
    let Some(detail) = s.postgres.as_ref() else {
        return Vec::new();
    };
    let holder = xmin_holder(detail.xmin_horizon.as_ref());
    let settings = detail.settings.unwrap_or_default();
    // Where autovacuum runs, dead rows up to its own trigger are its business, not a problem yet.
    let autovacuum_tolerates = |table: &proto::metrics::TableStats| {
        settings.autovacuum
            && table.autovacuum_enabled
            && (table.dead_tuples as f64)
                <= settings.autovacuum_vacuum_threshold as f64
                    + settings.autovacuum_vacuum_scale_factor * table.live_tuples as f64
    };
    let mut bloated: Vec<_> = detail
        .tables
        .iter()
        .filter(|table| {
            table.live_tuples > 0
                && table.dead_tuples >= MIN_DEAD_TUPLES
                && table.live_tuples + table.dead_tuples >= MIN_TABLE_ROWS
                && !autovacuum_tolerates(table)
        })
        .map(|table| (table, table.dead_tuples as f64 / table.live_tuples as f64))
        .filter(|(_, ratio)| *ratio >= t.table_bloat_ratio)
        .collect();
    bloated.sort_by(|a, b| b.1.total_cmp(&a.1));
    bloated
        .into_iter()
        .take(MOST)
        .map(|(table, ratio)| {
            let (severity, priority) = match ratio {
                r if r >= 0.3 => (Severity::Critical, "high"),
                r if r >= 0.2 => (Severity::Warning, "medium"),
                _ => (Severity::Info, "low"),
            };
            let percent = (ratio * 100.0) as i64;
            let name = &table.qualified_name;
            let (description, recommendation) = match &holder {
                Some(h) => (
                    format!(
                        "{name} has {} dead tuples for {} live ones ({percent}%). VACUUM cannot \
                         reclaim them while {} holds back the xmin horizon",
                        table.dead_tuples,
                        table.live_tuples,
                        h["summary"].as_str().unwrap_or("a transaction")
                    ),
                    format!(
                        "End what holds the horizon ({}), then VACUUM (ANALYZE) {name}",
                        h["summary"].as_str().unwrap_or("see evidence")
                    ),
                ),
                None => (
                    format!(
                        "{name} has {} dead tuples for {} live ones ({percent}%)",
                        table.dead_tuples, table.live_tuples
                    ),
                    format!("VACUUM (ANALYZE) {name}; check why autovacuum did not keep up"),
                ),
            };
            Finding {
                snapshot: s,
                detector: Detector::TableBloat,
                category: Category::Storage,
                severity,
                identifier: name.clone(),
                title: format!("Table bloat detected on '{name}' ({percent}% dead tuples)"),
                description,
                evidence: json!({
                    "table_name": name,
                    "live_tuples": table.live_tuples,
                    "dead_tuples": table.dead_tuples,
                    "bloat_ratio": ratio,
                    "bloat_percent": percent,
                    "autovacuum_enabled": table.autovacuum_enabled,
                    "last_autovacuum": table.last_autovacuum,
                    "last_vacuum": table.last_vacuum,
                    "xmin_holder": holder.clone(),
                }),
                recommendation,
                action_type: ActionType::VacuumTable,
                action_metadata: json!({
                    "table_name": name,
                    "schema": table.schema,
                    "table": table.name,
                    "priority": priority,
                    "blocked_by_xmin_holder": holder.is_some(),
                }),
            }
            .into_detection()
        })
        .collect()
}

/// What holds the horizon furthest back, if anything holds it noticeably.
fn xmin_holder(horizon: Option<&XminHorizon>) -> Option<Value> {
    let horizon = horizon?;
    // A busy database has many sessions with a fresh snapshot; the one to name sits idle inside
    // its transaction or has been running for a while.
    let session = horizon.oldest_session.as_ref().filter(|s| {
        horizon.oldest_session_xmin_age >= HORIZON_AGE
            && (s.state.starts_with("idle in transaction") || s.duration_secs >= HOLDING_SECS)
    });
    let prepared = horizon
        .prepared_transactions
        .iter()
        .filter(|p| p.xmin_age >= HORIZON_AGE)
        .max_by_key(|p| p.xmin_age);
    let slot = horizon
        .replication_slots
        .iter()
        .map(|r| (r, r.xmin_age.max(r.catalog_xmin_age)))
        .filter(|(_, age)| *age >= HORIZON_AGE)
        .max_by_key(|(_, age)| *age);
    let ages = [
        session.map(|_| horizon.oldest_session_xmin_age),
        prepared.map(|p| p.xmin_age),
        slot.map(|(_, age)| age),
    ];
    let oldest = ages.iter().flatten().max()?;
    if session.is_some() && ages[0] == Some(*oldest) {
        let s = session?;
        return Some(json!({
            "kind": "session",
            "pid": s.pid,
            "backend_start_us": s.backend_start_us,
            "username": s.username,
            "application_name": s.application_name,
            "state": s.state,
            "duration_secs": s.duration_secs,
            "xmin_age": horizon.oldest_session_xmin_age,
            "summary": format!("session {} ({}, {}, {:.0} s)", s.pid, s.username, s.state, s.duration_secs),
        }));
    }
    if let Some(p) = prepared.filter(|p| Some(p.xmin_age) == Some(*oldest)) {
        return Some(json!({
            "kind": "prepared_transaction",
            "gid": p.gid,
            "owner": p.owner,
            "age_secs": p.age_secs,
            "xmin_age": p.xmin_age,
            "summary": format!("prepared transaction '{}' ({:.0} s old)", p.gid, p.age_secs),
        }));
    }
    let (r, age) = slot?;
    Some(json!({
        "kind": "replication_slot",
        "slot_name": r.slot_name,
        "active": r.active,
        "xmin_age": age,
        "summary": format!("replication slot '{}'", r.slot_name),
    }))
}

#[cfg(test)]
mod tests {
    use proto::metrics::{SessionInfo, TableStats};

    use super::*;
    use crate::detectors::fixtures::{snapshot, thresholds};

    fn table(name: &str, live: i64, dead: i64) -> TableStats {
        TableStats {
            qualified_name: format!("public.{name}"),
            schema: "public".into(),
            name: name.into(),
            live_tuples: live,
            dead_tuples: dead,
            ..Default::default()
        }
    }

    #[test]
    fn each_bloated_table_fires_with_its_own_key() {
        let mut s = snapshot();
        s.postgres.as_mut().unwrap().tables = vec![
            table("posts", 100_000, 35_000),
            table("users", 10_000, 2_100),
            table("tiny", 10, 900),
            table("hot_but_small", 2, 1053),
            table("clean", 100_000, 100),
        ];
        let found = table_bloat(&s, &thresholds());
        let keys: Vec<_> = found.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "db1:table_bloat:public.posts",
                "db1:table_bloat:public.users"
            ]
        );
        assert_eq!(found[0].severity, "critical");
        assert_eq!(found[1].severity, "warning");
        assert_eq!(found[0].evidence["xmin_holder"], Value::Null);
    }

    #[test]
    fn dead_rows_within_autovacuums_own_trigger_are_left_to_it() {
        let mut s = snapshot();
        let detail = s.postgres.as_mut().unwrap();
        let mut settings = detail.settings.unwrap();
        settings.autovacuum = true;
        settings.autovacuum_vacuum_threshold = 50;
        settings.autovacuum_vacuum_scale_factor = 0.2;
        detail.settings = Some(settings);
        let mut churning = table("accounts", 200_000, 30_000);
        churning.autovacuum_enabled = true;
        let mut behind = table("events", 200_000, 60_000);
        behind.autovacuum_enabled = true;
        let mut off = table("ledger", 200_000, 30_000);
        off.autovacuum_enabled = false;
        detail.tables = vec![churning, behind, off];
        let keys: Vec<_> = table_bloat(&s, &thresholds())
            .into_iter()
            .map(|d| d.key)
            .collect();
        assert_eq!(
            keys,
            [
                "db1:table_bloat:public.events",
                "db1:table_bloat:public.ledger"
            ]
        );
    }

    #[test]
    fn a_session_holding_the_horizon_is_named_as_the_root_cause() {
        let mut s = snapshot();
        let detail = s.postgres.as_mut().unwrap();
        detail.tables = vec![table("posts", 100_000, 35_000)];
        detail.xmin_horizon = Some(XminHorizon {
            oldest_session: Some(SessionInfo {
                pid: 4242,
                username: "app".into(),
                state: "idle in transaction".into(),
                duration_secs: 600.0,
                ..Default::default()
            }),
            oldest_session_xmin_age: 50_000,
            ..Default::default()
        });
        let d = &table_bloat(&s, &thresholds())[0];
        assert_eq!(d.evidence["xmin_holder"]["pid"], 4242);
        assert!(d.description.contains("session 4242"), "{}", d.description);
        assert_eq!(
            d.action_metadata.as_ref().unwrap()["blocked_by_xmin_holder"],
            true
        );
    }
}
