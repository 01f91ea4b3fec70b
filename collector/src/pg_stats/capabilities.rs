//! What the server offers and what our role may do: extensions, predefined roles, superuser.
//! Each missing capability is reported with the reason and the remedy.

use proto::knowledge::{DatabaseFeatures, UnavailableFeature};
use sqlx::{PgPool, Row};

pub async fn read(pool: &PgPool) -> Result<DatabaseFeatures, sqlx::Error> {
    let row = sqlx::query(
        "/* startupmonkey-collector */ SELECT \
           EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'), \
           EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'), \
           current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%', \
           EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg'), \
           EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'), \
           pg_has_role(current_user, 'pg_monitor', 'MEMBER'), \
           pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'), \
           coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)",
    )
    .fetch_one(pool)
    .await?;
    let pgss_installed: bool = row.try_get(0)?;
    let pgss_available: bool = row.try_get(1)?;
    let pgss_preloaded: bool = row.try_get(2)?;
    let hypopg_installed: bool = row.try_get(3)?;
    let hypopg_available: bool = row.try_get(4)?;
    let superuser: bool = row.try_get(7)?;
    let mut features = DatabaseFeatures {
        pg_stat_statements: pgss_installed && pgss_preloaded,
        pg_stat_statements_creatable: !pgss_installed
            && pgss_available
            && pgss_preloaded
            && superuser,
        hypopg: hypopg_installed,
        pg_monitor: row.try_get::<bool, _>(5)? || superuser,
        pg_signal_backend: row.try_get::<bool, _>(6)? || superuser,
        superuser,
        checked_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default(),
        ..Default::default()
    };
    let mut missing = |name: &str, reason: &str, remedy: &str| {
        features.unavailable.push(UnavailableFeature {
            name: name.into(),
            reason: reason.into(),
            remedy: remedy.into(),
        })
    };
    match (pgss_preloaded, pgss_installed) {
        (true, true) => {}
        (false, _) => missing(
            "pg_stat_statements",
            "not in shared_preload_libraries: query latency and the index advisor are unavailable",
            "add pg_stat_statements to shared_preload_libraries, restart PostgreSQL, then \
             CREATE EXTENSION pg_stat_statements",
        ),
        (true, false) => missing(
            "pg_stat_statements",
            "preloaded but the extension is not created in this database: query latency and \
             the index advisor are unavailable",
            "CREATE EXTENSION pg_stat_statements",
        ),
    }
    if !hypopg_installed {
        missing(
            "hypopg",
            if hypopg_available {
                "available but not created: index candidates are judged by heuristics, not by the planner"
            } else {
                "not installed on the server: index candidates are judged by heuristics, not by the planner"
            },
            if hypopg_available {
                "CREATE EXTENSION hypopg"
            } else {
                "install the hypopg package for your PostgreSQL version, then CREATE EXTENSION hypopg"
            },
        );
    }
    if !features.pg_monitor {
        missing(
            "pg_monitor",
            "the monitoring role cannot see other roles' statements and sessions",
            "GRANT pg_monitor TO <monitoring role>",
        );
    }
    if !features.pg_signal_backend {
        missing(
            "pg_signal_backend",
            "runaway queries and idle transactions can be reported but not ended",
            "GRANT pg_signal_backend TO <executor role>",
        );
    }
    Ok(features)
}
