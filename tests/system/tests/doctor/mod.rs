//! The doctor through the gateway against a real PostgreSQL: a role with no grants is told what
//! it lacks and what to run; that script, run as a superuser, makes every check pass and the
//! actions it is for work as that role; a superuser is told so; strangers, unreachable databases
//! and unknown ids get a clear refusal, and no answer ever holds the password.

use std::time::Duration;

use proto::knowledge::SystemConfig;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use testkit::PgCluster;

use crate::bearer;
use crate::stack::{Gateway, Stack};

/// In every connection string; the private cluster trusts every password, so it connects anyway.
const PASSWORD: &str = "doctor-pw-4711";

/// A cluster with pg_stat_statements preloaded (not created), HypoPG available (not created),
/// a monitoring role `sm-monitor` with no grants, an application role, and a table owned by a
/// role that is neither.
fn cluster() -> PgCluster {
    let pg = PgCluster::start_with(&[("shared_preload_libraries", "'pg_stat_statements'")]);
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE ROLE \"sm-monitor\" LOGIN; CREATE ROLE app_owner NOLOGIN; \
         CREATE ROLE app_user LOGIN; \
         CREATE TABLE public.orders (id int PRIMARY KEY, customer int); \
         ALTER TABLE public.orders OWNER TO app_owner; \
         GRANT SELECT ON public.orders TO app_user;",
    );
    pg
}

fn url_as(pg: &PgCluster, role: &str) -> String {
    format!("postgres://{role}:{PASSWORD}@127.0.0.1:{}/app", pg.port())
}

/// Knowledge and a gateway (its executor address points nowhere: the doctor never asks it).
async fn gateway() -> (Stack, Gateway, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let stack = Stack::start(SystemConfig::default(), ("", String::new())).await;
    let nowhere = format!("127.0.0.1:{}", testkit::free_port());
    let gateway = stack.start_gateway(&nowhere, state.path()).await;
    (stack, gateway, state)
}

/// A request to the gateway with its token (or without, when `token` is false): the status and
/// the body, which must never hold the password.
async fn call(
    gateway: &Gateway,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: bool,
) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", gateway.base));
    if token {
        request = request.header("authorization", bearer(gateway));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(!text.contains(PASSWORD), "{method} {path}: {text}");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: {status}, not JSON ({e}): {text}"));
    (status, value)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {report}"))
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

/// Runs `sql` as `sm-monitor`: the proof that a privilege works, not only that it is reported.
async fn as_monitor(pg: &PgCluster, sql: &'static str) -> Result<(), String> {
    let mut conn = PgConnection::connect(&url_as(pg, "sm-monitor"))
        .await
        .unwrap();
    // A statement that waits (CREATE INDEX CONCURRENTLY behind an open transaction) fails the test
    // instead of hanging it.
    conn.execute("SET statement_timeout = '20s'").await.unwrap();
    let result = conn.execute(sql).await.map(|_| ()).map_err(|e| match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    });
    conn.close().await.unwrap();
    result
}

#[tokio::test]
async fn the_doctor_names_what_a_limited_role_lacks_and_its_grants_make_every_check_pass() {
    let pg = cluster();
    let (_stack, gateway, _state) = gateway().await;
    // Registered disabled: the doctor needs only the record, not a collector watching it.
    let (status, created) = call(
        &gateway,
        "POST",
        "/databases",
        Some(json!({
            "database_id": "app", "database_name": "App",
            "connection_string": url_as(&pg, "sm-monitor"), "enabled": false,
        })),
        true,
    )
    .await;
    assert_eq!(status, 201, "{created}");

    let (status, before) = call(&gateway, "GET", "/databases/app/doctor", None, true).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["role"], "sm-monitor");
    assert_eq!(before["database"], "app");
    assert_eq!(before["superuser"], false);
    let role = "\"sm-monitor\"";
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
        ("table_ownership", format!("GRANT \"app_owner\" TO {role};")),
        (
            "schema_create",
            format!("GRANT CREATE ON SCHEMA \"public\" TO {role};"),
        ),
        ("createrole", format!("ALTER ROLE {role} CREATEROLE;")),
        (
            "pg_stat_statements",
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;".into(),
        ),
        // Available in the cluster (postgresql-15-hypopg): a missing package fails here.
        ("hypopg", "CREATE EXTENSION IF NOT EXISTS hypopg;".into()),
    ] {
        let c = check(&before, name);
        assert_eq!(c["ok"], false, "{name}: {c}");
        assert_eq!(c["grant"], grant.as_str(), "{name}: {c}");
        assert!(!c["needed_for"].as_str().unwrap().is_empty(), "{c}");
        assert!(
            before["grants"].as_str().unwrap().contains(&grant),
            "{name}: {}",
            before["grants"]
        );
    }
    assert!(
        check(&before, "table_ownership")["detail"]
            .as_str()
            .unwrap()
            .contains("public.orders"),
        "{before}"
    );
    assert_eq!(before["missing"], 9, "{before}");
    // The connection test of onboarding works for such a role too.
    let (status, tested) = call(
        &gateway,
        "POST",
        "/databases/test",
        Some(json!({"connection_string": url_as(&pg, "sm-monitor")})),
        true,
    )
    .await;
    assert_eq!((status, &tested["ok"]), (200, &json!(true)), "{tested}");
    // What the report says is missing really is.
    let refused = as_monitor(
        &pg,
        "CREATE INDEX orders_customer ON public.orders (customer)",
    )
    .await
    .unwrap_err();
    assert!(refused.contains("owner"), "{refused}");

    // The script as given, run by a superuser.
    pg.psql("app", before["grants"].as_str().unwrap());

    let (status, after) = call(&gateway, "GET", "/databases/app/doctor", None, true).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["missing"], 0, "{after}");
    assert_eq!(after["grants"], "", "{after}");
    for c in after["checks"].as_array().unwrap() {
        assert_eq!(c["ok"], true, "{c}");
    }

    // And what they are for works as the role.
    for sql in [
        "CREATE INDEX CONCURRENTLY orders_customer ON public.orders (customer)",
        "DROP INDEX CONCURRENTLY public.orders_customer",
        "ALTER SYSTEM SET work_mem = '8MB'",
        "ALTER SYSTEM RESET work_mem",
        "SELECT pg_reload_conf()",
        "ALTER ROLE app_user IN DATABASE app SET idle_in_transaction_session_timeout = '60s'",
        "SELECT count(*) FROM pg_stat_statements",
    ] {
        as_monitor(&pg, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // Another role's session idle in a transaction: seen with its statement, then ended.
    let mut app_user = PgConnection::connect(&url_as(&pg, "app_user"))
        .await
        .unwrap();
    app_user
        .execute("SET application_name = 'doctor-victim'")
        .await
        .unwrap();
    app_user
        .execute("BEGIN; SELECT * FROM public.orders")
        .await
        .unwrap();
    for sql in [
        "DO $$ BEGIN IF (SELECT count(*) FROM pg_stat_activity \
           WHERE application_name = 'doctor-victim' AND query LIKE '%public.orders%') <> 1 \
           THEN RAISE 'another role''s statement is hidden'; END IF; END $$",
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
           WHERE application_name = 'doctor-victim'",
    ] {
        as_monitor(&pg, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    assert!(
        app_user.execute("SELECT 1").await.is_err(),
        "the other role's session was ended"
    );
}

#[tokio::test]
async fn the_doctor_tells_a_superuser_refuses_strangers_and_unreachable_databases() {
    let pg = cluster();
    let (_stack, gateway, _state) = gateway().await;

    // A database not registered yet, as a superuser.
    let body = json!({"connection_string": url_as(&pg, "postgres")});
    let (status, report) = call(
        &gateway,
        "POST",
        "/databases/doctor",
        Some(body.clone()),
        true,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["superuser"], true);
    assert!(
        check(&report, "superuser")["detail"]
            .as_str()
            .unwrap()
            .contains("least privilege"),
        "{report}"
    );
    for name in [
        "pg_monitor",
        "pg_signal_backend",
        "alter_system",
        "pg_reload_conf",
        "table_ownership",
        "schema_create",
        "createrole",
    ] {
        assert_eq!(check(&report, name)["ok"], true, "{name}: {report}");
    }
    assert!(
        !report["grants"].as_str().unwrap().contains("GRANT"),
        "{report}"
    );
    // The doctor only read: the extensions it would create are not there.
    assert_eq!(
        pg.psql(
            "app",
            "SELECT count(*) FROM pg_extension WHERE extname IN ('pg_stat_statements', 'hypopg')"
        ),
        "0"
    );

    // Strangers are refused, for both forms.
    let (status, refused) = call(&gateway, "POST", "/databases/doctor", Some(body), false).await;
    assert_eq!(status, 401, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("Bearer"),
        "{refused}"
    );
    let (status, refused) = call(&gateway, "GET", "/databases/app/doctor", None, false).await;
    assert_eq!(status, 401, "{refused}");

    // Nothing listens there: 502, saying so.
    let nowhere = format!(
        "postgres://sm-monitor:{PASSWORD}@127.0.0.1:{}/app",
        testkit::free_port()
    );
    let (status, failed) = call(
        &gateway,
        "POST",
        "/databases/doctor",
        Some(json!({"connection_string": nowhere})),
        true,
    )
    .await;
    assert_eq!(status, 502, "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect"),
        "{failed}"
    );
    // A server that answers and refuses: 422 with PostgreSQL's reason.
    let no_database = format!(
        "postgres://sm-monitor:{PASSWORD}@127.0.0.1:{}/no_such_db",
        pg.port()
    );
    let (status, failed) = call(
        &gateway,
        "POST",
        "/databases/doctor",
        Some(json!({"connection_string": no_database})),
        true,
    )
    .await;
    assert_eq!(status, 422, "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("no_such_db"),
        "{failed}"
    );
    // A body that is not the object it takes, not a PostgreSQL URL, and an unknown id.
    let (status, failed) = call(
        &gateway,
        "POST",
        "/databases/doctor",
        Some(json!([url_as(&pg, "postgres")])),
        true,
    )
    .await;
    assert_eq!(status, 422, "{failed}");
    let (status, failed) = call(
        &gateway,
        "POST",
        "/databases/doctor",
        Some(json!({"connection_string": format!("mysql://root:{PASSWORD}@h/db")})),
        true,
    )
    .await;
    assert_eq!(status, 400, "{failed}");
    let (status, failed) = call(&gateway, "GET", "/databases/nope/doctor", None, true).await;
    assert_eq!(status, 404, "{failed}");
}
