//! `POST /databases/test`: a real connection test, for onboarding and settings — it connects
//! (read-only, 5 s limits, `startupmonkey-gateway`), and reports the server version, the
//! extensions StartupMonkey uses (present, or available to create), and the privileges of the
//! role, with what to run for anything missing. The connection string is never echoed back.
//! `connect` is how the gateway opens a session on a monitored database (the doctor uses it too).

use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection, Row};
use utoipa::ToSchema;

/// Where a connection string points.
#[derive(Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// A connection string that is not a PostgreSQL URL. The text never holds the string itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConnectionString {
    #[error("connection_string must start with postgres:// or postgresql://")]
    Scheme,
    #[error("connection_string is not valid: {0}")]
    Malformed(String),
}

/// Checks that `connection_string` is a PostgreSQL URL, without connecting.
pub fn parse(connection_string: &str) -> Result<Target, InvalidConnectionString> {
    if !(connection_string.starts_with("postgres://")
        || connection_string.starts_with("postgresql://"))
    {
        return Err(InvalidConnectionString::Scheme);
    }
    let options = PgConnectOptions::from_str(connection_string).map_err(|e| {
        InvalidConnectionString::Malformed(scrub(&e.to_string(), connection_string))
    })?;
    Ok(Target {
        host: options.get_host().to_owned(),
        port: options.get_port(),
    })
}

/// An error text with the connection string (and so its password) removed.
fn scrub(text: &str, secret: &str) -> String {
    text.replace(secret, "<connection string>")
}

/// How long connecting, and each statement, may take.
const LIMIT: Duration = Duration::from_secs(5);

/// Why no session could be opened. The text never holds the connection string.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The connection string is not a PostgreSQL URL.
    #[error(transparent)]
    Invalid(#[from] InvalidConnectionString),
    /// A server answered and refused: authentication, no such database or role.
    #[error("cannot connect: {0}")]
    Refused(String),
    /// No server answered, or not in time.
    #[error("cannot connect: {0}")]
    Unreachable(String),
}

/// One read-only session named `application_name`, with 5 s to connect and 5 s per statement.
pub async fn connect(
    connection_string: &str,
    application_name: &str,
) -> Result<PgConnection, ConnectError> {
    parse(connection_string)?;
    let options = PgConnectOptions::from_str(connection_string)
        .map_err(|e| InvalidConnectionString::Malformed(scrub(&e.to_string(), connection_string)))?
        .application_name(application_name)
        .options([
            ("default_transaction_read_only", "on"),
            ("statement_timeout", "5000"),
        ]);
    match tokio::time::timeout(LIMIT, options.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e @ sqlx::Error::Database(_))) => Err(ConnectError::Refused(scrub(
            &describe(&e),
            connection_string,
        ))),
        Ok(Err(e)) => Err(ConnectError::Unreachable(scrub(
            &describe(&e),
            connection_string,
        ))),
        Err(_) => Err(ConnectError::Unreachable("no answer within 5 s".into())),
    }
}

/// What the connection test found: `ok` with the server's version, the extensions and the
/// role's privileges, or not `ok` with why (the other fields then absent).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ConnectionReport {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version_num: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Extensions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Privileges>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<Missing>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<i64>,
}

/// The extensions StartupMonkey uses, created in the database.
#[derive(Debug, Serialize, ToSchema)]
pub struct Extensions {
    pub pg_stat_statements: bool,
    pub hypopg: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Privileges {
    pub superuser: bool,
    pub pg_monitor: bool,
    pub pg_signal_backend: bool,
}

/// Something missing, why it is needed and what to run.
#[derive(Debug, Serialize, ToSchema)]
pub struct Missing {
    pub name: String,
    pub why: String,
    pub remedy: String,
}

impl ConnectionReport {
    fn failed(error: String) -> Self {
        Self {
            ok: false,
            error: Some(error),
            ..Self::default()
        }
    }
}

fn missing(name: &str, why: &str, remedy: &str) -> Missing {
    Missing {
        name: name.into(),
        why: why.into(),
        remedy: remedy.into(),
    }
}

pub async fn test(connection_string: &str) -> ConnectionReport {
    let started = Instant::now();
    let mut conn = match connect(connection_string, "startupmonkey-gateway").await {
        Ok(conn) => conn,
        Err(error) => return ConnectionReport::failed(error.to_string()),
    };
    // Preloaded pg_stat_statements is recognised by its settings (they exist only then): reading
    // shared_preload_libraries needs pg_read_all_settings, which a new role lacks.
    let row = sqlx::query(
        "SELECT version(), current_setting('server_version_num')::int, current_user::text, \
           EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'), \
           EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'), \
           EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg'), \
           EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'), \
           coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false), \
           pg_has_role(current_user, 'pg_monitor', 'MEMBER'), \
           pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'), \
           EXISTS (SELECT 1 FROM pg_settings WHERE name = 'pg_stat_statements.max')",
    )
    .fetch_one(&mut conn)
    .await;
    let row = match row {
        Ok(row) => row,
        Err(e) => return ConnectionReport::failed(format!("connected, but: {}", describe(&e))),
    };
    let get_b = |i: usize| row.try_get::<bool, _>(i).unwrap_or(false);
    let (superuser, monitor, signal) = (get_b(7), get_b(8), get_b(9));
    let mut absent = Vec::new();
    if !get_b(3) {
        absent.push(missing(
            "pg_stat_statements",
            "statement latency, the index advisor and verification need it",
            if get_b(10) {
                "CREATE EXTENSION pg_stat_statements;"
            } else {
                "add pg_stat_statements to shared_preload_libraries, restart, then CREATE EXTENSION pg_stat_statements;"
            },
        ));
    }
    if !get_b(5) {
        absent.push(missing(
            "hypopg",
            "the index advisor checks each index with the planner's cost before proposing it",
            if get_b(6) {
                "CREATE EXTENSION hypopg;"
            } else {
                "install HypoPG (Debian: postgresql-15-hypopg), then CREATE EXTENSION hypopg;"
            },
        ));
    }
    if !superuser && !monitor {
        absent.push(missing(
            "pg_monitor",
            "reading other sessions' statements and statistics",
            "GRANT pg_monitor TO <role>;",
        ));
    }
    if !superuser && !signal {
        absent.push(missing(
            "pg_signal_backend",
            "ending runaway and idle-in-transaction sessions",
            "GRANT pg_signal_backend TO <role>;",
        ));
    }
    ConnectionReport {
        ok: true,
        error: None,
        version: Some(row.try_get::<String, _>(0).unwrap_or_default()),
        server_version_num: Some(row.try_get::<i32, _>(1).unwrap_or_default()),
        role: Some(row.try_get::<String, _>(2).unwrap_or_default()),
        features: Some(Extensions {
            pg_stat_statements: get_b(3),
            hypopg: get_b(5),
        }),
        privileges: Some(Privileges {
            superuser,
            pg_monitor: monitor || superuser,
            pg_signal_backend: signal || superuser,
        }),
        missing: Some(absent),
        elapsed_ms: Some(started.elapsed().as_millis() as i64),
    }
}

/// PostgreSQL's own message for a database error, sqlx's text otherwise.
pub fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_urls_are_accepted_and_secrets_are_not_echoed() {
        assert!(parse("postgres://u:p@db.example.com:6543/app").is_ok_and(|t| t.port == 6543));
        assert_eq!(
            parse("mysql://u:p@h/db").unwrap_err(),
            InvalidConnectionString::Scheme
        );
        assert_eq!(
            scrub("bad postgres://u:secret@h/db", "postgres://u:secret@h/db"),
            "bad <connection string>"
        );
    }
}
