//! The doctor: which privileges the monitoring role has and lacks on one database, what each is
//! needed for, and the least-privilege statements that grant the rest — for a registered database
//! (`GET /databases/{id}/doctor`, its connection string from knowledge) or one not registered yet
//! (`POST /databases/doctor`; the handlers are in `api::databases`). One read-only session
//! (`startupmonkey-doctor`, 5 s to connect and per statement) that changes nothing; the
//! connection string is never returned or logged.

use std::time::Duration;

use proto::actions::TUNED_PARAMETERS;
use proto::sql::quote_ident;
use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};
use utoipa::ToSchema;

use crate::dbtest::{self, ConnectError, describe};

/// Tables named in the table-ownership check; the rest are counted.
const SAMPLE_TABLES: i64 = 10;

/// All the reading together, so a server that accepts the session but stalls cannot hold a request.
const READ_LIMIT: Duration = Duration::from_secs(15);

const APPLICATION_NAME: &str = "startupmonkey-doctor";

/// One thing the role has or lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = DoctorCheck)]
pub struct Check {
    #[schema(value_type = String)]
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
    #[schema(value_type = String)]
    pub needed_for: &'static str,
    /// SQL to run as a superuser (or the owner) to fix it; `None` when there is nothing to grant.
    pub grant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = DoctorReport)]
pub struct Report {
    pub database: String,
    pub role: String,
    pub server_version: String,
    pub superuser: bool,
    pub checks: Vec<Check>,
    /// Checks that are not ok.
    pub missing: usize,
    /// Every grant as one script; empty when nothing is missing.
    pub grants: String,
}

/// What the database says about the role, read in one session.
#[derive(Debug, Clone, Default)]
struct Facts {
    database: String,
    role: String,
    server_version: String,
    server_version_num: i32,
    superuser: bool,
    createrole: bool,
    pg_monitor: bool,
    pg_signal_backend: bool,
    /// pg_stat_statements is in shared_preload_libraries (its settings exist only then).
    pgss_loaded: bool,
    pgss_created: bool,
    pgss_available: bool,
    hypopg_created: bool,
    hypopg_available: bool,
    reload_conf: bool,
    /// Tuned settings the role may not `ALTER SYSTEM` (PostgreSQL 15+; all of them before, unless
    /// superuser).
    parameters_denied: Vec<&'static str>,
    track_io_timing: String,
    track_activity_query_size: String,
    not_owned: NotOwned,
    /// User schemas holding tables where the role may not CREATE, neither itself nor through a
    /// (non-superuser) owner of their tables.
    schemas_without_create: Vec<String>,
}

/// Tables in user schemas whose owner's privileges the role does not have.
#[derive(Debug, Clone, Default)]
struct NotOwned {
    count: i64,
    /// `schema.table`, at most `SAMPLE_TABLES`.
    sample: Vec<String>,
    /// Each owner: name, tables, whether it is a superuser (granting it would make ours one).
    owners: Vec<(String, i64, bool)>,
}

/// Why there is no report.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("connected, but: {0}")]
    Read(String),
}

/// Connects as the connection string says and reports what that role has and lacks.
pub async fn examine(connection_string: &str) -> Result<Report, DoctorError> {
    let mut conn = dbtest::connect(connection_string, APPLICATION_NAME).await?;
    let facts = tokio::time::timeout(READ_LIMIT, read(&mut conn))
        .await
        .unwrap_or_else(|_| Err(DoctorError::Read("no answer within 15 s".into())));
    // Closed politely; a failure to say goodbye changes nothing in the report.
    let _ = conn.close().await;
    Ok(judge(&facts?))
}

/// The catalog reads, all plain SELECTs (the session is read-only anyway). pg_roles, pg_settings,
/// pg_extension, pg_available_extensions, pg_class, pg_namespace, pg_depend; PostgreSQL 10+
/// (`has_parameter_privilege` only on 15+).
async fn read(conn: &mut PgConnection) -> Result<Facts, DoctorError> {
    let failed = |e: sqlx::Error| DoctorError::Read(describe(&e));
    // shared_preload_libraries is readable only with pg_read_all_settings, but
    // pg_stat_statements defines its settings only when preloaded: that is the test.
    let row = sqlx::query(
        "SELECT current_database()::text AS database, current_user::text AS role, \
           current_setting('server_version') AS server_version, \
           current_setting('server_version_num')::int AS server_version_num, \
           r.rolsuper AS superuser, r.rolcreaterole AS createrole, \
           pg_has_role(current_user, 'pg_monitor', 'USAGE') AS pg_monitor, \
           pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS pg_signal_backend, \
           EXISTS (SELECT 1 FROM pg_settings WHERE name = 'pg_stat_statements.max') AS pgss_loaded, \
           EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS pgss_created, \
           EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements') \
             AS pgss_available, \
           EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg') AS hypopg_created, \
           EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg') AS hypopg_available, \
           has_function_privilege(current_user, 'pg_catalog.pg_reload_conf()', 'EXECUTE') \
             AS reload_conf, \
           current_setting('track_io_timing') AS track_io_timing, \
           current_setting('track_activity_query_size') AS track_activity_query_size \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(failed)?;
    let mut facts = Facts {
        database: row.try_get("database").map_err(failed)?,
        role: row.try_get("role").map_err(failed)?,
        server_version: row.try_get("server_version").map_err(failed)?,
        server_version_num: row.try_get("server_version_num").map_err(failed)?,
        superuser: row.try_get("superuser").map_err(failed)?,
        createrole: row.try_get("createrole").map_err(failed)?,
        pg_monitor: row.try_get("pg_monitor").map_err(failed)?,
        pg_signal_backend: row.try_get("pg_signal_backend").map_err(failed)?,
        pgss_loaded: row.try_get("pgss_loaded").map_err(failed)?,
        pgss_created: row.try_get("pgss_created").map_err(failed)?,
        pgss_available: row.try_get("pgss_available").map_err(failed)?,
        hypopg_created: row.try_get("hypopg_created").map_err(failed)?,
        hypopg_available: row.try_get("hypopg_available").map_err(failed)?,
        reload_conf: row.try_get("reload_conf").map_err(failed)?,
        track_io_timing: row.try_get("track_io_timing").map_err(failed)?,
        track_activity_query_size: row.try_get("track_activity_query_size").map_err(failed)?,
        ..Facts::default()
    };

    facts.parameters_denied = if facts.superuser {
        Vec::new()
    } else if facts.server_version_num < 150_000 {
        TUNED_PARAMETERS.to_vec()
    } else {
        let mut denied = Vec::new();
        for name in TUNED_PARAMETERS {
            let allowed: bool = sqlx::query_scalar(
                "SELECT has_parameter_privilege(current_user, $1, 'ALTER SYSTEM')",
            )
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .map_err(failed)?;
            if !allowed {
                denied.push(name);
            }
        }
        denied
    };

    // Tables of user schemas (not pg_*, not information_schema, not an extension's own) whose
    // owner's privileges the role lacks: CREATE INDEX and VACUUM need them.
    const NOT_OWNED: &str = "FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_roles o ON o.oid = c.relowner \
         WHERE c.relkind IN ('r', 'p', 'm') \
           AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                           AND d.objid = c.oid AND d.deptype = 'e') \
           AND NOT pg_has_role(current_user, c.relowner, 'USAGE')";
    let owners: Vec<(String, i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT o.rolname::text, count(*), o.rolsuper {NOT_OWNED} \
         GROUP BY o.rolname, o.rolsuper ORDER BY o.rolname"
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(failed)?;
    let sample: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT format('%I.%I', n.nspname, c.relname) {NOT_OWNED} \
         ORDER BY n.nspname, c.relname LIMIT {SAMPLE_TABLES}"
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(failed)?;
    facts.not_owned = NotOwned {
        count: owners.iter().map(|(_, n, _)| n).sum(),
        sample,
        owners,
    };
    // CREATE INDEX also needs CREATE on the table's schema, checked for the role that runs it
    // (with what it inherits): its own, or that of an owner it is or will be granted.
    facts.schemas_without_create = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_namespace n \
         WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' \
           AND NOT has_schema_privilege(current_user, n.oid, 'CREATE') \
           AND EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid \
                       AND c.relkind IN ('r', 'p', 'm')) \
           AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner \
                           WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'm') \
                             AND NOT o.rolsuper \
                             AND has_schema_privilege(o.oid, n.oid, 'CREATE')) \
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(failed)?;
    Ok(facts)
}

/// The report for what was read: pure, so every branch is tested without a server.
fn judge(f: &Facts) -> Report {
    let role = quote_ident(&f.role);
    let su = f.superuser;
    let checks = vec![
        Check {
            check: "connect",
            ok: true,
            detail: format!(
                "PostgreSQL {} as {} on database {}",
                f.server_version,
                quote_ident(&f.role),
                quote_ident(&f.database)
            ),
            needed_for: "everything",
            grant: None,
        },
        Check {
            check: "superuser",
            ok: true,
            detail: if su {
                "the role is a superuser: every action works, but least privilege is advised: \
                 create a dedicated login role and run the doctor as it for its grants"
                    .into()
            } else {
                "not a superuser (least privilege): the checks below say what it may do".into()
            },
            needed_for: "nothing on its own",
            grant: None,
        },
        Check {
            check: "pg_monitor",
            ok: su || f.pg_monitor,
            detail: granted(su, f.pg_monitor, "member of pg_monitor").unwrap_or_else(|| {
                "not a member of pg_monitor: other roles' sessions and statements are hidden \
                 (\"<insufficient privilege>\")"
                    .into()
            }),
            needed_for: "seeing other sessions' queries and pg_stat_statements of all users \
                         (long-running queries, idle transactions, the index advisor)",
            grant: (!su && !f.pg_monitor).then(|| format!("GRANT pg_monitor TO {role};")),
        },
        Check {
            check: "pg_signal_backend",
            ok: su || f.pg_signal_backend,
            detail: granted(
                su,
                f.pg_signal_backend,
                "member of pg_signal_backend (it cannot signal superusers' sessions)",
            )
            .unwrap_or_else(|| {
                "not a member of pg_signal_backend: it can cancel only its own sessions (even \
                 with it, superusers' sessions cannot be signalled)"
                    .into()
            }),
            needed_for: "terminate_query: cancelling runaway statements and ending \
                         idle-in-transaction sessions",
            grant: (!su && !f.pg_signal_backend)
                .then(|| format!("GRANT pg_signal_backend TO {role};")),
        },
        pg_stat_statements(f),
        hypopg(f),
        alter_system(f, &role),
        Check {
            check: "pg_reload_conf",
            ok: su || f.reload_conf,
            detail: granted(su, f.reload_conf, "may execute pg_reload_conf()").unwrap_or_else(
                || "may not execute pg_reload_conf(): a changed setting would not apply".into(),
            ),
            needed_for: "tune_config_high_latency: applying changed settings without a restart",
            grant: (!su && !f.reload_conf).then(|| {
                format!("GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO {role};")
            }),
        },
        table_ownership(f, &role),
        schema_create(f, &role),
        Check {
            check: "createrole",
            ok: su || f.createrole,
            detail: granted(su, f.createrole, "has CREATEROLE").unwrap_or_else(|| {
                "no CREATEROLE: ALTER ROLE … SET is refused. Trade-off: on PostgreSQL 15 \
                 CREATEROLE lets the role create roles and change every role that is not a \
                 superuser (and grant itself their membership); without it, approve the \
                 proposed statement and run it yourself"
                    .into()
            }),
            needed_for: "set_role_timeout: ALTER ROLE … IN DATABASE … SET \
                         idle_in_transaction_session_timeout",
            grant: (!su && !f.createrole).then(|| format!("ALTER ROLE {role} CREATEROLE;")),
        },
        Check {
            check: "track_io_timing",
            ok: true,
            detail: format!(
                "track_io_timing = {} (optional: on adds I/O time to statement statistics; \
                 ALTER SYSTEM SET track_io_timing = on, then reload)",
                f.track_io_timing
            ),
            needed_for: "I/O time in statement statistics (informational)",
            grant: None,
        },
        Check {
            check: "track_activity_query_size",
            ok: true,
            detail: format!(
                "track_activity_query_size = {} (optional: longer statements are cut there in \
                 pg_stat_activity; raising it needs a restart)",
                f.track_activity_query_size
            ),
            needed_for: "full statement text of running sessions (informational)",
            grant: None,
        },
    ];
    let missing = checks.iter().filter(|c| !c.ok).count();
    let grant_lines: Vec<&str> = checks.iter().filter_map(|c| c.grant.as_deref()).collect();
    let grants = if grant_lines.is_empty() {
        String::new()
    } else {
        format!(
            "-- StartupMonkey doctor: least-privilege grants for role {role} on database {db}.\n\
             -- Run as a superuser, connected to database {db} (extensions are per database).\n\
             {}\n",
            grant_lines.join("\n"),
            db = quote_ident(&f.database),
        )
    };
    Report {
        database: f.database.clone(),
        role: f.role.clone(),
        server_version: f.server_version.clone(),
        superuser: su,
        checks,
        missing,
        grants,
    }
}

/// The detail of a privilege the role has, or `None` when it lacks it.
fn granted(superuser: bool, has: bool, what: &str) -> Option<String> {
    if superuser {
        Some("superuser (includes it)".into())
    } else if has {
        Some(what.into())
    } else {
        None
    }
}

fn pg_stat_statements(f: &Facts) -> Check {
    let restart = "add pg_stat_statements to shared_preload_libraries in postgresql.conf and \
                   restart PostgreSQL (a restart is needed)";
    let (ok, detail) = match (f.pgss_loaded, f.pgss_created, f.pgss_available) {
        (true, true, _) => (true, "preloaded and created in this database".to_owned()),
        (true, false, _) => (
            false,
            "preloaded, but the extension is not created in this database".to_owned(),
        ),
        (false, created, true) => (
            false,
            format!(
                "not in shared_preload_libraries{}: {restart}, then create the extension",
                if created {
                    " (the extension is created)"
                } else {
                    ""
                }
            ),
        ),
        (false, _, false) => (
            false,
            format!(
                "not installed on the server: install PostgreSQL's contrib package, {restart}, \
                 then create the extension"
            ),
        ),
    };
    Check {
        check: "pg_stat_statements",
        ok,
        detail,
        needed_for: "statement latency, the index advisor and verification of every action",
        grant: (!f.pgss_created)
            .then(|| "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;".into()),
    }
}

fn hypopg(f: &Facts) -> Check {
    let detail = if f.hypopg_created {
        "created in this database".to_owned()
    } else if f.hypopg_available {
        "available, not created (optional)".to_owned()
    } else {
        "not installed on the server (optional; Debian: postgresql-15-hypopg)".to_owned()
    };
    Check {
        check: "hypopg",
        ok: f.hypopg_created,
        detail,
        needed_for: "optional: the index advisor checks each index's cost with the planner \
                     (without it, by column selectivity)",
        grant: (!f.hypopg_created && f.hypopg_available)
            .then(|| "CREATE EXTENSION IF NOT EXISTS hypopg;".into()),
    }
}

fn alter_system(f: &Facts, role: &str) -> Check {
    let needed_for = "tune_config_high_latency: ALTER SYSTEM SET (and RESET on rollback) of \
                      effective_cache_size, work_mem, random_page_cost";
    if f.superuser {
        return Check {
            check: "alter_system",
            ok: true,
            detail: "superuser (includes it)".into(),
            needed_for,
            grant: None,
        };
    }
    if f.server_version_num < 150_000 {
        return Check {
            check: "alter_system",
            ok: false,
            detail: "before PostgreSQL 15 only a superuser may ALTER SYSTEM: tuning fails and \
                     its steps are recommended instead"
                .into(),
            needed_for,
            grant: None,
        };
    }
    let denied = &f.parameters_denied;
    Check {
        check: "alter_system",
        ok: denied.is_empty(),
        detail: if denied.is_empty() {
            format!("may ALTER SYSTEM {}", TUNED_PARAMETERS.join(", "))
        } else {
            format!("may not ALTER SYSTEM {}", denied.join(", "))
        },
        needed_for,
        grant: (!denied.is_empty()).then(|| {
            format!(
                "GRANT ALTER SYSTEM ON PARAMETER {} TO {role};",
                denied.join(", ")
            )
        }),
    }
}

fn table_ownership(f: &Facts, role: &str) -> Check {
    let needed_for = "create_index (CREATE INDEX CONCURRENTLY) and vacuum_table (VACUUM): \
                      PostgreSQL 15 allows both only to a table's owner";
    let n = &f.not_owned;
    if f.superuser || n.count == 0 {
        return Check {
            check: "table_ownership",
            ok: true,
            detail: if f.superuser {
                "superuser (includes it)".into()
            } else {
                "has its owner's privileges on every table of the user schemas".into()
            },
            needed_for,
            grant: None,
        };
    }
    let mut tables = n.sample.join(", ");
    if n.count > n.sample.len() as i64 {
        tables.push_str(&format!(" and {} more", n.count - n.sample.len() as i64));
    }
    let mut grants = Vec::new();
    let mut notes = Vec::new();
    for (owner, count, owner_is_superuser) in &n.owners {
        if *owner_is_superuser {
            notes.push(format!(
                "{count} owned by superuser {}: not granted (that would make the role a \
                 superuser); give them to an application role (ALTER TABLE … OWNER TO …) or \
                 build those indexes yourself",
                quote_ident(owner)
            ));
        } else {
            grants.push(format!("GRANT {} TO {role};", quote_ident(owner)));
        }
    }
    let mut detail = format!(
        "{} table(s) it does not own: {tables}. Trade-off: membership in an owner role gives \
         everything that role may do on its tables (read and change the data, alter and drop \
         them); without it, approve the proposed statements and run them yourself",
        n.count
    );
    for note in notes {
        detail.push_str("; ");
        detail.push_str(&note);
    }
    Check {
        check: "table_ownership",
        ok: false,
        detail,
        needed_for,
        grant: (!grants.is_empty()).then(|| grants.join("\n")),
    }
}

fn schema_create(f: &Facts, role: &str) -> Check {
    let quoted: Vec<String> = f
        .schemas_without_create
        .iter()
        .map(|s| quote_ident(s))
        .collect();
    let ok = f.superuser || quoted.is_empty();
    Check {
        check: "schema_create",
        ok,
        detail: if f.superuser {
            "superuser (includes it)".into()
        } else if ok {
            "may create in every schema that holds tables (itself or through their owners)".into()
        } else {
            format!(
                "may not create in schema {}: PostgreSQL checks CREATE on the table's schema \
                 for the role that builds an index, even for the table's owner",
                quoted.join(", ")
            )
        },
        needed_for: "create_index: the new index is created in the table's schema",
        grant: (!ok).then(|| format!("GRANT CREATE ON SCHEMA {} TO {role};", quoted.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited() -> Facts {
        Facts {
            database: "app".into(),
            role: "sm-\"monitor\"".into(),
            server_version: "15.8".into(),
            server_version_num: 150_008,
            pgss_loaded: true,
            pgss_available: true,
            hypopg_available: true,
            parameters_denied: TUNED_PARAMETERS.to_vec(),
            track_io_timing: "on".into(),
            track_activity_query_size: "1kB".into(),
            not_owned: NotOwned {
                count: 12,
                sample: (0..10).map(|i| format!("public.t{i}")).collect(),
                owners: vec![
                    ("app owner".into(), 11, false),
                    ("postgres".into(), 1, true),
                ],
            },
            schemas_without_create: vec!["public".into(), "Sales".into()],
            ..Facts::default()
        }
    }

    fn check<'a>(report: &'a Report, name: &str) -> &'a Check {
        report
            .checks
            .iter()
            .find(|c| c.check == name)
            .unwrap_or_else(|| panic!("no check {name}"))
    }

    #[test]
    fn a_role_without_grants_gets_each_grant_with_its_name_quoted() {
        let report = judge(&limited());
        let role = r#""sm-""monitor""""#;
        for (name, grant) in [
            ("pg_monitor", format!("GRANT pg_monitor TO {role};")),
            (
                "pg_signal_backend",
                format!("GRANT pg_signal_backend TO {role};"),
            ),
            (
                "alter_system",
                format!(
                    "GRANT ALTER SYSTEM ON PARAMETER effective_cache_size, work_mem, \
                     random_page_cost TO {role};"
                ),
            ),
            (
                "pg_reload_conf",
                format!("GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO {role};"),
            ),
            ("table_ownership", format!("GRANT \"app owner\" TO {role};")),
            (
                "schema_create",
                format!("GRANT CREATE ON SCHEMA \"public\", \"Sales\" TO {role};"),
            ),
            ("createrole", format!("ALTER ROLE {role} CREATEROLE;")),
            (
                "pg_stat_statements",
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;".into(),
            ),
            ("hypopg", "CREATE EXTENSION IF NOT EXISTS hypopg;".into()),
        ] {
            let c = check(&report, name);
            assert!(!c.ok, "{name}");
            assert_eq!(c.grant.as_deref(), Some(grant.as_str()), "{name}");
            assert!(report.grants.contains(&grant), "{name}: {}", report.grants);
        }
        assert_eq!(report.missing, 9);
        assert!(!report.superuser);
        let tables = check(&report, "table_ownership");
        assert!(
            tables.detail.starts_with("12 table(s)"),
            "{}",
            tables.detail
        );
        assert!(
            tables.detail.contains("public.t9 and 2 more"),
            "{}",
            tables.detail
        );
        assert!(
            tables.detail.contains("superuser \"postgres\""),
            "{}",
            tables.detail
        );
        assert!(
            !report.grants.contains("GRANT \"postgres\""),
            "never a superuser's membership: {}",
            report.grants
        );
        for informational in [
            "connect",
            "superuser",
            "track_io_timing",
            "track_activity_query_size",
        ] {
            assert!(check(&report, informational).ok, "{informational}");
        }
    }

    #[test]
    fn a_superuser_is_told_to_prefer_least_privilege_and_needs_only_extensions() {
        let report = judge(&Facts {
            superuser: true,
            parameters_denied: Vec::new(),
            not_owned: NotOwned::default(),
            ..limited()
        });
        assert!(report.superuser);
        assert!(
            check(&report, "superuser")
                .detail
                .contains("least privilege")
        );
        let missing: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.check)
            .collect();
        assert_eq!(missing, ["pg_stat_statements", "hypopg"]);
        assert!(!report.grants.contains("GRANT"), "{}", report.grants);
    }

    #[test]
    fn before_postgresql_15_alter_system_has_no_grant_and_a_granted_role_has_no_script() {
        let old = judge(&Facts {
            server_version_num: 140_011,
            ..limited()
        });
        let alter = check(&old, "alter_system");
        assert!(!alter.ok && alter.grant.is_none(), "{alter:?}");

        let ready = judge(&Facts {
            pg_monitor: true,
            pg_signal_backend: true,
            pgss_created: true,
            hypopg_created: true,
            reload_conf: true,
            createrole: true,
            parameters_denied: Vec::new(),
            not_owned: NotOwned::default(),
            schemas_without_create: Vec::new(),
            ..limited()
        });
        assert_eq!(ready.missing, 0, "{ready:?}");
        assert_eq!(ready.grants, "");
    }

    #[test]
    fn pg_stat_statements_not_preloaded_says_a_restart_is_needed() {
        let report = judge(&Facts {
            pgss_loaded: false,
            ..limited()
        });
        assert!(
            check(&report, "pg_stat_statements")
                .detail
                .contains("restart")
        );
    }
}
