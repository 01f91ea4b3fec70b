//! Server version and the settings detectors and tuning need (`pg_settings`, any version), and the
//! host's RAM when the database runs on this machine.

use proto::metrics::ServerSettings;
use sqlx::{PgPool, Row};

const NAMES: &[&str] = &[
    "max_connections",
    "superuser_reserved_connections",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "random_page_cost",
    "idle_in_transaction_session_timeout",
    "statement_timeout",
    "autovacuum",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_vacuum_threshold",
];

/// What one cheap round trip tells of the server and the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub server_version: String,
    pub server_version_num: i32,
    pub database_name: String,
    /// Who we are on which server, as the server sees it (`server_wide`): the role, the address
    /// and port it accepted us on (empty over a Unix socket) and when it started.
    pub server_identity: String,
}

pub async fn version(pool: &PgPool) -> Result<Version, sqlx::Error> {
    let row = sqlx::query(
        "/* startupmonkey-collector */ SELECT current_setting('server_version'), \
         current_setting('server_version_num')::int, current_database()::text, \
         concat_ws(' ', current_user, inet_server_addr(), inet_server_port(), \
           (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint)",
    )
    .fetch_one(pool)
    .await?;
    Ok(Version {
        server_version: row.try_get(0)?,
        server_version_num: row.try_get(1)?,
        database_name: row.try_get(2)?,
        server_identity: row.try_get(3)?,
    })
}

pub async fn read(pool: &PgPool) -> Result<ServerSettings, sqlx::Error> {
    let rows = sqlx::query(
        "/* startupmonkey-collector */ SELECT name, setting, coalesce(unit, '') \
         FROM pg_settings WHERE name = ANY($1)",
    )
    .bind(NAMES)
    .fetch_all(pool)
    .await?;
    let mut settings = ServerSettings::default();
    for row in rows {
        let name: String = row.try_get(0)?;
        let value: String = row.try_get(1)?;
        let unit: String = row.try_get(2)?;
        apply(&mut settings, &name, &value, &unit);
    }
    Ok(settings)
}

fn apply(s: &mut ServerSettings, name: &str, value: &str, unit: &str) {
    let int = || value.parse::<i64>().unwrap_or_default();
    let float = || value.parse::<f64>().unwrap_or_default();
    match name {
        "max_connections" => s.max_connections = int() as i32,
        "superuser_reserved_connections" => s.superuser_reserved_connections = int() as i32,
        "shared_buffers" => s.shared_buffers_bytes = bytes(int(), unit),
        "work_mem" => s.work_mem_bytes = bytes(int(), unit),
        "maintenance_work_mem" => s.maintenance_work_mem_bytes = bytes(int(), unit),
        "effective_cache_size" => s.effective_cache_size_bytes = bytes(int(), unit),
        "random_page_cost" => s.random_page_cost = float(),
        "idle_in_transaction_session_timeout" => {
            s.idle_in_transaction_session_timeout_ms = millis(int(), unit)
        }
        "statement_timeout" => s.statement_timeout_ms = millis(int(), unit),
        "autovacuum" => s.autovacuum = value == "on",
        "autovacuum_vacuum_scale_factor" => s.autovacuum_vacuum_scale_factor = float(),
        "autovacuum_vacuum_threshold" => s.autovacuum_vacuum_threshold = int(),
        _ => {}
    }
}

/// A memory setting in bytes from `pg_settings.setting` and its unit (`8kB`, `kB`, `MB`, ...).
pub fn bytes(value: i64, unit: &str) -> i64 {
    let (count, unit) = match unit.find(|c: char| c.is_ascii_alphabetic()) {
        Some(0) | None => (1, unit),
        Some(i) => (unit[..i].parse::<i64>().unwrap_or(1), &unit[i..]),
    };
    let factor = match unit {
        "B" => 1,
        "kB" => 1024,
        "MB" => 1024 * 1024,
        "GB" => 1024 * 1024 * 1024,
        _ => 1,
    };
    value.saturating_mul(count).saturating_mul(factor)
}

fn millis(value: i64, unit: &str) -> i64 {
    match unit {
        "s" => value * 1000,
        "min" => value * 60_000,
        _ => value,
    }
}

/// Total RAM of this machine from /proc/meminfo (used when the database is local).
pub fn local_memory_bytes() -> Option<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_settings_convert_with_their_block_unit() {
        assert_eq!(bytes(16384, "8kB"), 128 * 1024 * 1024);
        assert_eq!(bytes(4096, "kB"), 4 * 1024 * 1024);
        assert_eq!(bytes(64, "MB"), 64 * 1024 * 1024);
        assert_eq!(bytes(5, ""), 5);
    }

    #[test]
    fn timeouts_convert_to_milliseconds() {
        let mut s = ServerSettings::default();
        apply(&mut s, "idle_in_transaction_session_timeout", "60000", "ms");
        apply(&mut s, "statement_timeout", "30", "s");
        assert_eq!(s.idle_in_transaction_session_timeout_ms, 60_000);
        assert_eq!(s.statement_timeout_ms, 30_000);
    }

    #[test]
    fn this_machine_reports_its_memory() {
        assert!(local_memory_bytes().is_some_and(|b| b > 0));
    }
}
