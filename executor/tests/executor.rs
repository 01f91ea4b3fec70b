//! The executor service as a process would run it: health, readiness, gRPC, shutdown.

use std::time::Duration;

use executor::{App, Config};
use lifecycle::{Env, Shutdown};
use proto::executor::{ActionDecisionRequest, ActionStatusRequest, HealthRequest};
use tonic::Code;

mod docker;
mod shutdown;
mod untrusted;

/// A typed result as the JSON stored in knowledge.
fn stored<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

/// HTTP with a deadline, so a server that stops answering fails the test instead of hanging it.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn started_alone_it_is_healthy_not_ready_and_says_knowledge_is_unreachable() {
    let env = Env::from_map([
        ("GRPC_PORT", "0".to_owned()),
        ("HEALTH_PORT", "0".to_owned()),
        ("HTTP_PORT", "0".to_owned()),
        (
            "KNOWLEDGE_ADDRESS",
            format!("127.0.0.1:{}", testkit::free_port()),
        ),
        (
            "NATS_URL",
            format!("nats://127.0.0.1:{}", testkit::free_port()),
        ),
    ]);
    let shutdown = Shutdown::new();
    let app = App::build(Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", app.health_addr());
    let grpc = app.grpc_addr().to_string();
    let api = format!("http://{}", app.http_addr());
    let task = tokio::spawn(app.run());

    // The action API refuses a bad body in JSON, as every other error, before doing anything.
    for (content_type, body, status) in [
        ("application/json", "{not json", 400),
        ("application/json", r#"{"reason": 5}"#, 422),
        ("application/json", r#"{"sneaky": "field"}"#, 422),
        ("text/plain", r#"{"reason": "x"}"#, 415),
    ] {
        let reply = http()
            .post(format!("{api}/api/actions/a1/approve"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), status, "{content_type} {body}");
        let error: serde_json::Value = reply.json().await.unwrap();
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{error}"
        );
    }

    let health = http().get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["service"].as_str()),
        (Some("healthy"), Some("executor"))
    );
    let ready = http().get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["knowledge"], "unreachable", "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );

    // Its own metrics for Prometheus are served (a series appears once an action of its type
    // ended: `metrics::tests` shows what is counted).
    let metrics = http().get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert_eq!(metrics.text().await.unwrap(), "# EOF\n");

    let mut client = proto::clients::executor(&grpc).unwrap();
    let reply = client
        .health_check(HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status, "healthy");
    // Action state lives in knowledge: while it is unreachable, the executor says so.
    let error = client
        .get_action_status(ActionStatusRequest {
            action_id: "a1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    let error = client
        .approve_action(ActionDecisionRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("stops within the drain deadline")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn while_knowledge_is_down_action_requests_are_unavailable_and_503_never_a_conflict() {
    let env = Env::from_map([
        ("GRPC_PORT", "0".to_owned()),
        ("HEALTH_PORT", "0".to_owned()),
        ("HTTP_PORT", "0".to_owned()),
        (
            "KNOWLEDGE_ADDRESS",
            format!("127.0.0.1:{}", testkit::free_port()),
        ),
        (
            "NATS_URL",
            format!("nats://127.0.0.1:{}", testkit::free_port()),
        ),
    ]);
    let shutdown = Shutdown::new();
    let app = App::build(Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let grpc = app.grpc_addr().to_string();
    let api = format!("http://{}", app.http_addr());
    let task = tokio::spawn(app.run());

    let mut client = proto::clients::executor(&grpc).unwrap();
    let decision = || ActionDecisionRequest {
        action_id: "act-d1".into(),
        requested_by: "test".into(),
        reason: String::new(),
    };
    let approve = client.approve_action(decision()).await.unwrap_err();
    let reject = client.reject_action(decision()).await.unwrap_err();
    let rollback = client.rollback_action(decision()).await.unwrap_err();
    let status = client
        .get_action_status(ActionStatusRequest {
            action_id: "act-d1".into(),
        })
        .await
        .unwrap_err();
    let pending = client
        .list_pending_actions(proto::executor::ListRequest::default())
        .await
        .unwrap_err();
    for (call, error) in [
        ("ApproveAction", approve),
        ("RejectAction", reject),
        ("RollbackAction", rollback),
        ("GetActionStatus", status),
        ("ListPendingActions", pending),
    ] {
        assert_eq!(error.code(), Code::Unavailable, "{call}: {error:?}");
        assert!(!error.message().is_empty(), "{call}");
    }
    // A bad request is still the caller's fault, whatever knowledge's state.
    let bad = client
        .list_pending_actions(proto::executor::ListRequest {
            status_filter: "finished".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");

    for (path, body) in [
        ("/api/actions/act-d1/approve", "{}"),
        ("/api/actions/act-d1/reject", r#"{"reason": "not now"}"#),
        ("/api/actions/act-d1/rollback", "{}"),
        ("/api/deploy-redis", r#"{"database_id": "db"}"#),
    ] {
        let reply = http()
            .post(format!("{api}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 503, "{path}");
        let error: serde_json::Value = reply.json().await.unwrap();
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {error}"
        );
    }
    let reply = http()
        .post(format!("{api}/api/deploy-redis"))
        .header("content-type", "application/json")
        .body(r#"{"database_id": "db", "max_memory": "lots"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply.status().as_u16(),
        400,
        "bad input before knowledge is asked"
    );

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("stops within the drain deadline")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_binary_refuses_a_bad_setting_naming_the_variable_and_value() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_executor"))
        .env("ACTION_TIMEOUT_SECONDS", "forever")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ACTION_TIMEOUT_SECONDS=\"forever\""),
        "{stderr}"
    );
}

// ------------------------------------------------------------------ actions, for real

use executor::actions::deploy::Deploy;
use executor::actions::terminate::Policy;
use executor::actions::{Context, Plan, PlanExt};
use executor::databases::Database;
use proto::events::Detection;
use serde_json::json;
use testkit::PgCluster;

fn context(pg: &PgCluster, timeout: Duration) -> Context {
    Context {
        database: Some(Database::connect("db", &pg.url("app")).unwrap()),
        timeout,
        state_dir: std::env::temp_dir(),
        deploy: Deploy::Process,
        action_id: "test".into(),
        policy: Policy::default(),
        stop: Default::default(),
    }
}

fn plan(action_type: &str, metadata: serde_json::Value) -> Plan {
    Plan::from_detection(&Detection {
        id: "d1".into(),
        key: "db:x".into(),
        database_id: "db".into(),
        action_type: action_type.into(),
        action_metadata: Some(metadata),
        ..Default::default()
    })
    .unwrap()
}

/// (oid, valid) of index `schema.name`, if it exists.
fn index_state(pg: &PgCluster, schema: &str, name: &str) -> Option<(i64, bool)> {
    let out = pg.psql(
        "app",
        &format!(
            "SELECT c.oid::int8 || ',' || i.indisvalid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_index i ON i.indexrelid = c.oid WHERE n.nspname = '{schema}' AND c.relname = '{name}'"
        ),
    );
    let (oid, valid) = out.split_once(',')?;
    Some((oid.parse().unwrap(), valid == "true"))
}

fn awkward_cluster() -> PgCluster {
    let pg = PgCluster::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE SCHEMA \"Sales Data\"; \
         CREATE TABLE \"Sales Data\".\"Order \"\"Items\"\"\" (id serial PRIMARY KEY, \"Customer Id\" int, \"createdAt\" timestamptz); \
         INSERT INTO \"Sales Data\".\"Order \"\"Items\"\"\" (\"Customer Id\", \"createdAt\") \
           SELECT g % 1000, now() - g * interval '1 s' FROM generate_series(1, 20000) g;",
    );
    pg
}

#[tokio::test]
async fn create_index_quotes_every_identifier_and_rollback_drops_only_the_index_it_built() {
    let pg = awkward_cluster();
    let index = plan(
        "create_index",
        json!({
            "schema": "Sales Data", "table_name": "Order \"Items\"", "index_name": "Idx Customer",
            "columns": [{"name": "Customer Id"}, {"name": "createdAt", "descending": true}],
        }),
    );
    assert!(index.can_rollback());
    let ctx = context(&pg, Duration::from_secs(60));
    let outcome = index.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    let (oid, valid) = index_state(&pg, "Sales Data", "Idx Customer").expect("built");
    assert!(valid);
    assert_eq!(result["index_oid"], oid);
    assert_eq!(result["attempts"], 1);
    let definition = pg.psql(
        "app",
        "SELECT pg_get_indexdef('\"Sales Data\".\"Idx Customer\"'::regclass)",
    );
    assert!(
        definition.ends_with("USING btree (\"Customer Id\", \"createdAt\" DESC)"),
        "{definition}"
    );

    // Built again: the name is taken, by an index that is now "not ours" for this run.
    let error = index.execute(&ctx).await.unwrap_err().to_string();
    assert!(
        error.contains("already exists") && error.contains("left alone"),
        "{error}"
    );
    assert_eq!(
        index_state(&pg, "Sales Data", "Idx Customer"),
        Some((oid, true))
    );

    // Someone replaced it: rollback refuses to drop an index it did not build.
    pg.psql(
        "app",
        "DROP INDEX \"Sales Data\".\"Idx Customer\"; \
         CREATE INDEX \"Idx Customer\" ON \"Sales Data\".\"Order \"\"Items\"\"\" (id)",
    );
    let error = index
        .rollback(&ctx, &outcome)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no longer the index we built"), "{error}");
    assert!(index_state(&pg, "Sales Data", "Idx Customer").is_some());

    // Ours again: rollback drops it.
    pg.psql("app", "DROP INDEX \"Sales Data\".\"Idx Customer\"");
    let outcome = index.execute(&ctx).await.unwrap();
    let undone = stored(&index.rollback(&ctx, &outcome).await.unwrap());
    assert_eq!(undone["dropped"], true);
    assert_eq!(index_state(&pg, "Sales Data", "Idx Customer"), None);
    // A second rollback finds nothing to do.
    let again = stored(&index.rollback(&ctx, &outcome).await.unwrap());
    assert_eq!(again["dropped"], false);

    // Every statement the executor sent carries its marker (pg_stat_statements keeps it), so the
    // collector leaves our work out of the application's statements.
    pg.psql("app", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    let ours = "query ~ '(pg_relation_size|CONCURRENTLY|SELECT EXISTS \\(SELECT 1 FROM pg_class|oid::int8, i.indisvalid)'";
    let count = |marked: &str| {
        pg.psql(
            "app",
            &format!(
                "SELECT count(*) FROM pg_stat_statements WHERE {ours} \
                 AND (query LIKE '/* startupmonkey-executor */%') = {marked}"
            ),
        )
    };
    assert_ne!(count("true"), "0", "the executor's statements are tracked");
    assert_eq!(count("false"), "0", "every one of them marked");
}

#[tokio::test]
async fn a_covering_and_an_expression_index_are_built_as_planned_and_rolled_back() {
    let pg = PgCluster::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE customers (id serial PRIMARY KEY, \"E-mail\" text NOT NULL, name text); \
         INSERT INTO customers (\"E-mail\", name) SELECT 'User' || g || '@Example.com', 'n' || g \
           FROM generate_series(1, 5000) g;",
    );
    let ctx = context(&pg, Duration::from_secs(60));
    let covering = plan(
        "create_index",
        json!({
            "schema": "public", "table_name": "customers", "index_name": "by_email_lower",
            "columns": [{"name": "E-mail", "function": "lower"}],
            // The column itself too: PostgreSQL answers from an expression index alone only
            // when the expression's column is in it.
            "include": ["id", "name", "E-mail"],
        }),
    );
    let outcome = covering.execute(&ctx).await.unwrap();
    assert_eq!(
        index_state(&pg, "public", "by_email_lower").map(|s| s.1),
        Some(true)
    );
    let definition = pg.psql(
        "app",
        "SELECT pg_get_indexdef('public.by_email_lower'::regclass)",
    );
    assert!(
        definition.ends_with(r#"USING btree (lower("E-mail")) INCLUDE (id, name, "E-mail")"#),
        "{definition}"
    );
    // The planner answers a case-insensitive lookup from the index alone.
    pg.psql("app", "VACUUM ANALYZE customers");
    let plan_text = pg.psql(
        "app",
        "SET enable_seqscan = off; SET enable_bitmapscan = off; \
         EXPLAIN SELECT id, name FROM customers WHERE lower(\"E-mail\") = 'user42@example.com'",
    );
    assert!(
        plan_text.contains("Index Only Scan using by_email_lower"),
        "{plan_text}"
    );
    let undone = stored(&covering.rollback(&ctx, &outcome).await.unwrap());
    assert_eq!(undone["dropped"], true);
    assert_eq!(index_state(&pg, "public", "by_email_lower"), None);
}

#[tokio::test]
async fn a_build_stopped_midway_leaves_no_invalid_index_behind() {
    let pg = PgCluster::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE big (id int, v text); \
         INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 1000000) g;",
    );
    let index = plan(
        "create_index",
        json!({"schema": "public", "table_name": "big", "index_name": "idx_big_v", "columns": [{"name": "v"}]}),
    );
    // The action's time limit runs out during the build: PostgreSQL cancels it and the INVALID
    // index it leaves is dropped.
    let error = index
        .execute(&context(&pg, Duration::from_millis(300)))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("statement timeout"), "{error}");
    assert!(
        error.contains("INVALID index it left was dropped"),
        "{error}"
    );
    assert_eq!(index_state(&pg, "public", "idx_big_v"), None);

    // An executor killed during the build: the next one finds the INVALID leftover and drops it.
    {
        use sqlx::Connection;
        let mut builder = sqlx::PgConnection::connect(&pg.url("app")).await.unwrap();
        sqlx::raw_sql("SET statement_timeout = 300")
            .execute(&mut builder)
            .await
            .unwrap();
        let interrupted = sqlx::raw_sql("CREATE INDEX CONCURRENTLY idx_big_v ON big (v)")
            .execute(&mut builder)
            .await;
        assert!(interrupted.is_err());
    }
    assert_eq!(
        index_state(&pg, "public", "idx_big_v").map(|s| s.1),
        Some(false)
    );
    let recovered = index
        .recover(&context(&pg, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        recovered, None,
        "an INVALID leftover is not a finished build"
    );
    assert_eq!(index_state(&pg, "public", "idx_big_v"), None);
}

#[tokio::test]
async fn vacuum_reports_the_dead_tuples_it_reclaimed() {
    let pg = PgCluster::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE \"Events\" (id int) WITH (autovacuum_enabled = off); \
         INSERT INTO \"Events\" SELECT generate_series(1, 20000); \
         DELETE FROM \"Events\" WHERE id % 2 = 0;",
    );
    // psql's session reports its statistics as it ends, not always before it has returned.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pg.psql(
        "app",
        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'Events'",
    ) != "10000"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead tuples never showed in pg_stat_user_tables"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let vacuum = plan(
        "vacuum_table",
        json!({"table_name": "public.Events", "schema": "public", "table": "Events"}),
    );
    assert!(!vacuum.can_rollback());
    let outcome = vacuum
        .execute(&context(&pg, Duration::from_secs(60)))
        .await
        .unwrap();
    let result = stored(&outcome);
    assert_eq!(result["dead_tuples_before"], 10_000, "{result}");
    assert_eq!(result["dead_tuples_after"], 0, "{result}");
    assert_eq!(result["tuples_reclaimed"], 10_000);
    assert_eq!(
        result["statement"],
        "VACUUM (ANALYZE) \"public\".\"Events\""
    );
    let error = vacuum
        .rollback(&context(&pg, Duration::from_secs(5)), &outcome)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("cannot be undone"), "{error}");
}

/// A session of `role` on `database` running `sql` and left open; with its pid, backend start,
/// query start and state change as pg_stat_activity reports them once it is `state`.
struct Session {
    conn: sqlx::PgConnection,
    pid: i32,
}

async fn session(
    pg: &PgCluster,
    role: &str,
    database: &str,
    application: &str,
    sql: &str,
) -> Session {
    use sqlx::{ConnectOptions, Connection};
    let options: sqlx::postgres::PgConnectOptions = pg.url_as(role, database).parse().unwrap();
    let mut conn = options
        .application_name(application)
        .connect()
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    if !sql.is_empty() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let _ = conn.ping().await;
    Session { conn, pid }
}

/// The terminate plan the analyser would send for `pid` as it is now.
async fn reported(pool: &sqlx::PgPool, pid: i32, graceful: bool) -> Plan {
    let (start, query_start, state_change): (i64, i64, i64) = sqlx::query_as(
        "SELECT (extract(epoch FROM backend_start) * 1000000)::bigint, \
                coalesce((extract(epoch FROM query_start) * 1000000)::bigint, 0), \
                coalesce((extract(epoch FROM state_change) * 1000000)::bigint, 0) \
         FROM pg_stat_activity WHERE pid = $1",
    )
    .bind(pid)
    .fetch_one(pool)
    .await
    .unwrap();
    plan(
        "terminate_query",
        json!({"pid": pid.to_string(), "backend_start_us": start, "graceful": graceful,
               "query_start_us": query_start, "state_change_us": state_change, "username": "app"}),
    )
}

#[tokio::test]
async fn terminate_ends_only_the_reported_session_and_never_a_protected_one() {
    let pg = PgCluster::start();
    pg.create_database("app");
    pg.create_database("other");
    pg.psql(
        "app",
        "CREATE ROLE app LOGIN; CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); \
         GRANT ALL ON t TO app;",
    );
    let admin = sqlx::PgPool::connect(&pg.url("app")).await.unwrap();
    let ctx = context(&pg, Duration::from_secs(30));

    let target = session(&pg, "app", "app", "shop", "BEGIN; UPDATE t SET id = 1").await;
    let ours = session(
        &pg,
        "app",
        "app",
        "startupmonkey-collector",
        "BEGIN; SELECT 1",
    )
    .await;
    let superuser = session(&pg, "postgres", "app", "psql", "BEGIN; SELECT 1").await;
    let elsewhere = session(&pg, "app", "other", "shop", "BEGIN; SELECT 1").await;
    let launcher: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'autovacuum launcher'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();

    for (pid, reason) in [
        (ours.pid, "a StartupMonkey session"),
        (superuser.pid, "a superuser session"),
        (elsewhere.pid, "a session of another database"),
    ] {
        let error = reported(&admin, pid, false)
            .await
            .execute(&ctx)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(reason), "{pid}: {error}");
    }
    // Background processes have no backend start to report... and are refused anyway.
    let launcher_plan = plan(
        "terminate_query",
        json!({"pid": launcher, "backend_start_us": 1, "graceful": false, "state_change_us": 1}),
    );
    let outcome = launcher_plan.execute(&ctx).await;
    assert!(
        matches!(&outcome, Ok(r) if stored(r)["outcome"] == "already_gone")
            || matches!(&outcome, Err(e) if e.to_string().contains("process")),
        "{outcome:?}"
    );

    // A report that is out of date (the session has moved on) does nothing.
    let stale = reported(&admin, target.pid, false).await;
    let mut target = target;
    sqlx::raw_sql("SELECT 1")
        .execute(&mut target.conn)
        .await
        .unwrap();
    let outcome = stale.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    assert_eq!(result["outcome"], "moved_on");

    // The current report: terminated.
    let current = reported(&admin, target.pid, false).await;
    let outcome = current.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    assert_eq!(result["outcome"], "terminated", "{result}");
    assert!(
        sqlx::raw_sql("SELECT 1")
            .execute(&mut target.conn)
            .await
            .is_err()
    );

    let alive: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)")
            .bind(vec![ours.pid, superuser.pid, elsewhere.pid, launcher])
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(alive, 4, "every protected session is still there");
    drop((ours, superuser, elsewhere));
}

#[tokio::test]
async fn a_long_statement_is_cancelled_and_its_session_kept() {
    let pg = PgCluster::start();
    pg.create_database("app");
    pg.psql("app", "CREATE ROLE app LOGIN");
    let admin = sqlx::PgPool::connect(&pg.url("app")).await.unwrap();
    let runner = session(&pg, "app", "app", "report", "").await;
    let pid = runner.pid;
    let mut conn = runner.conn;
    let sleeping = tokio::spawn(async move {
        let outcome = sqlx::raw_sql("SELECT pg_sleep(60)")
            .execute(&mut conn)
            .await;
        (outcome.map(|_| ()).map_err(|e| e.to_string()), conn)
    });
    // Wait until it runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
                .bind(pid)
                .fetch_optional(&admin)
                .await
                .unwrap();
        if state.as_deref() == Some("active") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never became active");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cancel = reported(&admin, pid, true).await;
    let result = stored(
        &cancel
            .execute(&context(&pg, Duration::from_secs(30)))
            .await
            .unwrap(),
    );
    assert_eq!(result["outcome"], "cancelled", "{result}");
    let (outcome, mut conn) = sleeping.await.unwrap();
    assert!(outcome.unwrap_err().contains("canceling statement"));
    sqlx::raw_sql("SELECT 1")
        .execute(&mut conn)
        .await
        .expect("cancelled, not terminated: the session lives on");
}

#[tokio::test]
async fn a_deployed_pgbouncer_serves_queries_survives_us_and_rollback_stops_it() {
    let pg = PgCluster::start();
    pg.create_database("app");
    let state = tempfile::tempdir().unwrap();
    let mut ctx = context(&pg, Duration::from_secs(30));
    ctx.state_dir = state.path().to_owned();
    let pooler = Plan::from_detection(&Detection {
        id: "d1".into(),
        database_id: "db".into(),
        action_type: "deploy_connection_pooler".into(),
        action_metadata: Some(json!({"pool_size": 8, "recommended_tool": "pgbouncer"})),
        ..Default::default()
    })
    .unwrap();
    assert!(pooler.can_rollback());
    let outcome = pooler.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    let port = result["port"].as_u64().unwrap();
    assert_eq!(result["pool_mode"], "session");
    assert_eq!(result["default_pool_size"], 8);
    assert_eq!(
        result["connection_string"],
        format!("postgres://postgres@127.0.0.1:{port}/app")
    );

    // A client query through it (sqlx uses prepared statements: session mode serves them).
    let through = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:{port}/app"))
        .await
        .unwrap();
    let answer: i32 = sqlx::query_scalar("SELECT $1::int + 1")
        .bind(41)
        .fetch_one(&through)
        .await
        .unwrap();
    assert_eq!(answer, 42);
    through.close().await;

    // Never as root; its files are private.
    let pid = result["pid"].as_u64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert_ne!(uid, "0", "PgBouncer runs as a non-root user");
    let dir = std::path::PathBuf::from(result["config_dir"].as_str().unwrap());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("userlist.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the auth file is private");

    // A new executor (nothing in memory) finds it again instead of starting another.
    let again = stored(&pooler.execute(&ctx).await.unwrap());
    assert_eq!(again["port"], port);
    assert_eq!(again["pid"], pid);
    assert!(again["note"].as_str().unwrap().contains("already running"));

    let undone = stored(&pooler.rollback(&ctx, &outcome).await.unwrap());
    assert_eq!(undone["stopped"], true);
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port as u16))
            .await
            .is_err(),
        "nothing listens any more"
    );
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_deployed_redis_answers_only_with_its_password_and_rollback_stops_it() {
    let state = tempfile::tempdir().unwrap();
    let ctx = Context {
        database: None,
        timeout: Duration::from_secs(30),
        state_dir: state.path().to_owned(),
        deploy: Deploy::Process,
        action_id: "test".into(),
        policy: Policy::default(),
        stop: Default::default(),
    };
    let cache = Plan::from_detection(&Detection {
        id: "d1".into(),
        database_id: "db".into(),
        action_type: "deploy_redis".into(),
        action_metadata: Some(json!({"max_memory": "64mb"})),
        ..Default::default()
    })
    .unwrap();
    let outcome = cache.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    let port = result["port"].as_u64().unwrap().to_string();
    assert!(!result.to_string().contains("requirepass"));
    let password = std::fs::read_to_string(result["password_file"].as_str().unwrap())
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        !result.to_string().contains(&password),
        "the password is not in the record"
    );
    let cli = testkit::binary("redis-cli", "redis-tools");
    let ping = |auth: Option<&str>| {
        let mut command = std::process::Command::new(&cli);
        command.args(["-h", "127.0.0.1", "-p", &port, "--no-auth-warning"]);
        if let Some(password) = auth {
            command.args(["-a", password]);
        }
        String::from_utf8_lossy(&command.arg("PING").output().unwrap().stdout)
            .trim()
            .to_owned()
    };
    assert_eq!(ping(Some(&password)), "PONG");
    assert!(ping(None).contains("NOAUTH"), "{}", ping(None));
    let memory = std::process::Command::new(&cli)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--no-auth-warning",
            "-a",
            &password,
        ])
        .args(["CONFIG", "GET", "maxmemory"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&memory.stdout).contains(&(64 * 1024 * 1024).to_string()));

    let undone = stored(&cache.rollback(&ctx, &outcome).await.unwrap());
    assert_eq!(undone["stopped"], true);
    assert_ne!(ping(Some(&password)), "PONG");
}

/// `SHOW name` in a new session (a reload reaches new sessions).
async fn show(pg: &PgCluster, name: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&pg.url("app")).await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {name}")))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn eventually_show(pg: &PgCluster, name: &str, expected: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let value = show(pg, name).await;
        if value == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} is {value}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn tuning_follows_the_measured_ram_and_rollback_restores_every_previous_value() {
    let pg = PgCluster::start();
    pg.create_database("app");
    // One setting was already chosen by someone with ALTER SYSTEM; the others are defaults.
    pg.psql("app", "ALTER SYSTEM SET random_page_cost = 4.5");
    pg.psql("app", "SELECT pg_reload_conf()");
    eventually_show(&pg, "random_page_cost", "4.5").await;
    let ctx = context(&pg, Duration::from_secs(30));
    let tune = plan(
        "tune_config_high_latency",
        json!({"p95_latency_ms": 250.0, "host_memory_bytes": 16_i64 << 30}),
    );
    let outcome = tune.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    let changed: Vec<&str> = result["config_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        ["effective_cache_size", "work_mem", "random_page_cost"],
        "{result}"
    );
    // 75 % of 16 GB; a quarter of 16 GB over 100 connections = 40.96 MB; 1.1.
    eventually_show(&pg, "effective_cache_size", "12GB").await;
    eventually_show(&pg, "work_mem", "41943kB").await;
    eventually_show(&pg, "random_page_cost", "1.1").await;
    let restart_only = &result["recommendations"][0];
    assert_eq!(restart_only["name"], "shared_buffers");
    assert_eq!(restart_only["requires_restart"], true);
    assert_eq!(restart_only["recommended"], "4194304kB");

    tune.rollback(&ctx, &outcome).await.unwrap();
    eventually_show(&pg, "effective_cache_size", "4GB").await;
    eventually_show(&pg, "work_mem", "4MB").await;
    eventually_show(&pg, "random_page_cost", "4.5").await;
    let auto_conf = pg.psql(
        "app",
        "SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_file_settings \
         WHERE sourcefile LIKE '%postgresql.auto.conf'",
    );
    assert_eq!(
        auto_conf, "random_page_cost=4.5",
        "only what was there before remains"
    );

    // Without the host's RAM, memory settings are left alone and the reason given.
    let blind = plan("tune_config_high_latency", json!({"p95_latency_ms": 250.0}));
    let outcome = blind.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    assert!(
        result["recommendations"][0]["note"]
            .as_str()
            .unwrap()
            .contains("RAM is unknown")
    );
    blind.rollback(&ctx, &outcome).await.unwrap();
}

#[tokio::test]
async fn a_role_timeout_is_set_in_this_database_only_and_rollback_restores_the_previous_one() {
    let pg = PgCluster::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE ROLE \"Shop App\" LOGIN; \
         ALTER ROLE \"Shop App\" IN DATABASE app SET idle_in_transaction_session_timeout = '1h'",
    );
    let ctx = context(&pg, Duration::from_secs(30));
    let timeout = plan(
        "set_role_timeout",
        json!({"role": "Shop App", "setting": "idle_in_transaction_session_timeout", "value_ms": 300000}),
    );
    let outcome = timeout.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    assert_eq!(result["before"], "1h");
    let setting = || {
        pg.psql(
            "app",
            "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole \
             WHERE r.rolname = 'Shop App'",
        )
    };
    assert_eq!(setting(), "idle_in_transaction_session_timeout=300000ms");
    timeout.rollback(&ctx, &outcome).await.unwrap();
    assert_eq!(setting(), "idle_in_transaction_session_timeout=1h");
    let bad = Plan::from_detection(&Detection {
        id: "d".into(),
        database_id: "db".into(),
        action_type: "set_role_timeout".into(),
        action_metadata: Some(json!({"role": "x", "setting": "shared_buffers", "value_ms": 1000})),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(bad.to_string().contains("not a per-role timeout"), "{bad}");
}
