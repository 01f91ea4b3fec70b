//! The gateway service as a process would run it: health, readiness, shutdown.

use std::time::Duration;

use gateway::{App, Config};
use lifecycle::{Env, Shutdown};

fn closed_address() -> String {
    format!("127.0.0.1:{}", testkit::free_port())
}

/// HTTP with a deadline, so a server that stops answering fails the test instead of hanging it.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn answers_health_alone_reports_knowledge_unreachable_and_stops_on_shutdown() {
    let state = std::env::temp_dir().join(format!("sm-gateway-{}", std::process::id()));
    let env = Env::from_map([
        ("PORT", "0".to_owned()),
        ("KNOWLEDGE_ADDRESS", closed_address()),
        ("NATS_URL", format!("nats://{}", closed_address())),
        ("STATE_DIR", state.display().to_string()),
    ]);
    let shutdown = Shutdown::new();
    let app = App::build(Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", app.http_addr());
    let task = tokio::spawn(app.run());

    let health = http().get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "gateway");

    let ready = http().get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["knowledge"], "unreachable");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );

    // A token was generated (no GATEWAY_TOKEN) and kept where STATE_DIR says.
    assert!(state.join("gateway.token").exists());
    let refused = http().post(format!("{base}/flush")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    // Reads are open, but the tables connect with the stored credentials, as the doctor does.
    for connects in ["/databases/shop/tables", "/databases/shop/doctor"] {
        let refused = http()
            .get(format!("{base}{connects}"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "GET {connects} without the token");
    }

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("stops within the drain deadline")
        .unwrap()
        .unwrap();
    std::fs::remove_dir_all(state).unwrap();
}

#[tokio::test]
async fn the_binary_refuses_a_bad_setting_naming_the_variable_and_value() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("PORT", "http")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PORT=\"http\""), "{stderr}");
}

#[tokio::test]
async fn with_auth_on_reads_every_read_but_health_and_sign_in_needs_the_token() {
    let state = std::env::temp_dir().join(format!("sm-gateway-reads-{}", std::process::id()));
    let token = "reads-token-0123456789abcdef";
    let env = Env::from_map([
        ("PORT", "0".to_owned()),
        ("KNOWLEDGE_ADDRESS", closed_address()),
        ("EXECUTOR_ADDRESS", closed_address()),
        ("NATS_URL", format!("nats://{}", closed_address())),
        ("STATE_DIR", state.display().to_string()),
        ("GATEWAY_TOKEN", token.to_owned()),
        ("GATEWAY_AUTH_READS", "true".to_owned()),
    ]);
    let shutdown = Shutdown::new();
    let app = App::build(Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", app.http_addr());
    tokio::spawn(app.run());

    for path in [
        "/databases",
        "/detections",
        "/actions",
        "/ledger",
        "/config",
        "/status",
        "/metrics/latest",
        "/metrics",
        "/events",
    ] {
        let refused = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(refused.status(), 401, "GET {path} without the token");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    }
    // With it, the read goes through (knowledge is down here: not 401, a JSON error about it).
    let allowed = http()
        .get(format!("{base}/databases"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_ne!(allowed.status(), 401);
    for open in ["/health", "/auth/me"] {
        let reply = http().get(format!("{base}{open}")).send().await.unwrap();
        assert_eq!(reply.status(), 200, "GET {open} stays open");
    }
    let me: serde_json::Value = http()
        .get(format!("{base}/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["auth_reads"], true, "{me}");
    assert_eq!(me["authenticated"], false, "{me}");
    shutdown.trigger();
    let _ = std::fs::remove_dir_all(state);
}

// ------------------------------------------------------------------ the router, in process

const TOKEN: &str = "in-process-token-0123456789";

/// The router over a state whose knowledge and executor addresses have nothing listening, with
/// a token set; the NATS client reconnects in the background and is never needed here.
async fn router_with_peers_down(name: &str) -> (axum::Router, std::path::PathBuf) {
    let state_dir = std::env::temp_dir().join(format!("sm-gateway-{name}-{}", std::process::id()));
    let env = Env::from_map([
        ("KNOWLEDGE_ADDRESS", closed_address()),
        ("EXECUTOR_ADDRESS", closed_address()),
        ("NATS_URL", format!("nats://{}", closed_address())),
        ("STATE_DIR", state_dir.display().to_string()),
        ("GATEWAY_TOKEN", TOKEN.to_owned()),
    ]);
    let state = gateway::app::state(&Config::from_env(&env).unwrap())
        .await
        .unwrap();
    (gateway::router(state), state_dir)
}

/// One request through the router: its status and its body as JSON (`null` when empty).
async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> (u16, serde_json::Value, axum::http::HeaderMap) {
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some((content_type, _)) = body {
        request = request.header("content-type", content_type);
    }
    let request = request
        .body(axum::body::Body::from(
            body.map(|(_, b)| b.to_owned()).unwrap_or_default(),
        ))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), router.clone().oneshot(request))
        .await
        .expect("answered in time")
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {bytes:?}"))
    };
    (status, body, headers)
}

const JSON: &str = "application/json";

#[tokio::test]
async fn with_knowledge_down_every_door_answers_503_naming_knowledge() {
    let (router, state_dir) = router_with_peers_down("down").await;
    for (method, path, body) in [
        ("GET", "/databases", None),
        ("GET", "/databases/shop", None),
        ("GET", "/detections", None),
        ("GET", "/detections?detection_id=d-1", None),
        ("GET", "/actions", None),
        ("GET", "/ledger", None),
        ("GET", "/config", None),
        ("GET", "/databases/shop/doctor", None),
        ("GET", "/databases/shop/tables", None),
        ("POST", "/flush", None),
        ("DELETE", "/databases/shop", None),
        (
            "PUT",
            "/databases/shop",
            Some((JSON, r#"{"enabled": false}"#)),
        ),
        (
            "POST",
            "/databases",
            Some((
                JSON,
                r#"{"database_name": "Shop", "connection_string": "postgres://u@127.0.0.1:1/shop"}"#,
            )),
        ),
        (
            "POST",
            "/config",
            Some((JSON, r#"{"execution_mode": "approval"}"#)),
        ),
    ] {
        let (status, body, headers) = call(&router, method, path, body).await;
        assert_eq!(status, 503, "{method} {path}: {body}");
        assert_eq!(headers["content-type"], JSON, "{method} {path}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("knowledge: "), "{method} {path}: {body}");
    }
    // The executor down is the executor's 503, not knowledge's.
    let (status, body, _) = call(&router, "POST", "/actions/act-1/approve", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("executor: ApproveAction"),
        "{body}"
    );
    // Status reports them both unreachable, and answers itself.
    let (status, body, _) = call(&router, "GET", "/status", None).await;
    assert_eq!(status, 200, "{body}");
    for down in ["knowledge", "executor"] {
        let state = body["services"][down].as_str().unwrap();
        assert!(state.starts_with("unreachable: "), "{down}: {body}");
    }
    assert_eq!(body["services"]["gateway"], "healthy", "{body}");
    let _ = std::fs::remove_dir_all(state_dir);
}

#[tokio::test]
async fn bad_input_is_refused_before_any_peer_is_asked() {
    let (router, state_dir) = router_with_peers_down("bad").await;
    for (method, path, body, expected, words) in [
        (
            "POST",
            "/databases",
            Some((
                JSON,
                r#"{"database_name": "x", "connection_string": "mysql://a@b/c"}"#,
            )),
            400,
            "postgres://",
        ),
        (
            "POST",
            "/databases",
            Some((
                JSON,
                r#"{"database_name": " ", "connection_string": "postgres://a@b/c"}"#,
            )),
            400,
            "database_name",
        ),
        (
            "POST",
            "/databases",
            Some((
                JSON,
                r#"{"database_name": "x", "connection_string": "postgres://a@b/c", "database_type": "mysql"}"#,
            )),
            400,
            "database_type",
        ),
        ("POST", "/databases", Some((JSON, "{not json")), 400, "JSON"),
        ("POST", "/databases", Some((JSON, "[1, 2]")), 422, "object"),
        (
            "POST",
            "/databases",
            Some((
                JSON,
                r#"{"database_name": "x", "connection_string": "postgres://a@b/c", "colour": 1}"#,
            )),
            422,
            "colour",
        ),
        (
            "POST",
            "/databases",
            Some(("text/plain", "{}")),
            415,
            "application/json",
        ),
        ("POST", "/databases", None, 400, "JSON object"),
        (
            "PUT",
            "/databases/shop",
            Some((JSON, r#"{"connection_string": "http://x"}"#)),
            400,
            "postgres://",
        ),
        (
            "POST",
            "/config",
            Some((JSON, r#"{"colour": 1}"#)),
            422,
            "colour",
        ),
        (
            "POST",
            "/config",
            Some((
                JSON,
                r#"{"webhook": {"enabled": true, "url": "ftp://x/y"}}"#,
            )),
            400,
            "webhook.url",
        ),
        ("GET", "/metrics/history", None, 400, "database_id"),
        (
            "GET",
            "/metrics/history?database_id=a&limit=0",
            None,
            400,
            "limit",
        ),
        (
            "GET",
            "/databases/shop/tables?limit=501",
            None,
            400,
            "limit",
        ),
        (
            "GET",
            "/databases/shop/tables?offset=-1",
            None,
            400,
            "offset",
        ),
        (
            "GET",
            "/databases/shop/tables?limit=ten",
            None,
            400,
            "limit",
        ),
        ("POST", "/actions/act-1/frobnicate", None, 404, "frobnicate"),
        (
            "POST",
            "/actions/act-1/approve",
            Some((JSON, &format!(r#"{{"reason": "{}"}}"#, "x".repeat(1001)))),
            400,
            "reason",
        ),
        (
            "POST",
            "/databases/test",
            Some((JSON, r#"{"connection_string": "mysql://root@h/db"}"#)),
            400,
            "postgres://",
        ),
        (
            "POST",
            "/databases/doctor",
            Some((JSON, r#"{"connection_string": "mysql://root@h/db"}"#)),
            400,
            "postgres://",
        ),
        (
            "POST",
            "/auth/login",
            Some((JSON, r#"{"token": "not-the-token-at-all"}"#)),
            401,
            "token",
        ),
    ] {
        let (status, body, _) = call(&router, method, path, body).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{method} {path}: {body}");
    }
    let _ = std::fs::remove_dir_all(state_dir);
}

#[tokio::test]
async fn the_connection_test_and_the_doctor_read_a_real_postgresql() {
    let pg = testkit::PgCluster::start();
    let (router, state_dir) = router_with_peers_down("pg").await;
    let body = format!(r#"{{"connection_string": "{}"}}"#, pg.url("postgres"));

    let (status, report, _) = call(&router, "POST", "/databases/test", Some((JSON, &body))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["role"], "postgres", "{report}");
    assert!(
        report["server_version_num"].as_i64().unwrap() >= 150_000,
        "{report}"
    );
    assert_eq!(report["privileges"]["superuser"], true, "{report}");
    assert!(report.get("error").is_none(), "absent when ok: {report}");

    let (status, report, _) = call(&router, "POST", "/databases/doctor", Some((JSON, &body))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["superuser"], true, "{report}");
    assert_eq!(report["database"], "postgres", "{report}");
    assert!(!report["checks"].as_array().unwrap().is_empty(), "{report}");

    // No such database: the server answered and refused (422); nothing listening: 502.
    let refused = format!(r#"{{"connection_string": "{}"}}"#, pg.url("no_such_db"));
    let (status, failed, _) =
        call(&router, "POST", "/databases/doctor", Some((JSON, &refused))).await;
    assert_eq!(status, 422, "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("no_such_db"),
        "{failed}"
    );
    let nowhere = format!(
        r#"{{"connection_string": "postgres://postgres@{}/postgres"}}"#,
        closed_address()
    );
    let (status, failed, _) =
        call(&router, "POST", "/databases/doctor", Some((JSON, &nowhere))).await;
    assert_eq!(status, 502, "{failed}");
    let (status, tested, _) =
        call(&router, "POST", "/databases/test", Some((JSON, &nowhere))).await;
    assert_eq!(status, 200, "the report carries the failure: {tested}");
    assert_eq!(tested["ok"], false, "{tested}");
    assert!(
        tested["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect"),
        "{tested}"
    );
    let _ = std::fs::remove_dir_all(state_dir);
}

/// The recommendation for `index` in a tables report.
fn recommendation<'a>(report: &'a serde_json::Value, index: &str) -> &'a serde_json::Value {
    report["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["index"] == index)
        .unwrap_or_else(|| panic!("{index} is not recommended: {report:#}"))
}

/// `index` of `table` in a tables report.
fn table_index<'a>(
    report: &'a serde_json::Value,
    table: &str,
    index: &str,
) -> &'a serde_json::Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == table)
        .and_then(|t| {
            t["indexes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == index)
        })
        .unwrap_or_else(|| panic!("{table}.{index} is not listed: {report:#}"))
}

fn recommended_indexes(report: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = report["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn tables_report(url: &str, options: gateway::tables::Options) -> serde_json::Value {
    let report = gateway::tables::examine(url, options).await.unwrap();
    serde_json::to_value(report).unwrap()
}

#[tokio::test]
async fn the_tables_page_recommends_exactly_the_unused_and_duplicate_indexes_with_their_statements()
{
    let pg = testkit::PgCluster::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE orders (id serial PRIMARY KEY, sku text NOT NULL, customer_id int NOT NULL, \
                              created_at timestamptz NOT NULL, total int); \
         INSERT INTO orders (sku, customer_id, created_at, total) \
           SELECT 'sku-' || g, g % 500, now() - g * interval '1 minute', g FROM generate_series(1, 20000) g; \
         CREATE UNIQUE INDEX orders_sku ON orders (sku); \
         CREATE INDEX orders_by_customer ON orders (customer_id); \
         CREATE INDEX orders_by_customer_created ON orders (customer_id, created_at); \
         CREATE INDEX orders_by_total ON orders (total); \
         DELETE FROM orders WHERE id <= 1000; \
         CREATE SCHEMA \"Sales Data\"; \
         CREATE TABLE \"Sales Data\".\"Order Items\" (id int PRIMARY KEY, qty int); \
         CREATE INDEX \"By \"\"Qty\"\"\" ON \"Sales Data\".\"Order Items\" (qty); \
         ANALYZE;",
    );
    // Scans of the narrow and the wide index: the narrow one is used, and still a duplicate.
    pg.psql(
        "app",
        "SET enable_seqscan = off; SET enable_bitmapscan = off; \
         SELECT count(*) FROM orders WHERE customer_id = 7; \
         SELECT count(*) FROM orders WHERE customer_id = 7 AND created_at < now() - interval '1 day'; \
         SELECT count(*) FROM orders WHERE sku = 'sku-5';",
    );
    let url = pg.url("app");
    let any_period = gateway::tables::Options {
        unused_after_days: 0.0,
        ..Default::default()
    };
    // The backend that scanned reports its counts as it exits; poll until they are in.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let report = loop {
        let report = tables_report(&url, any_period).await;
        if table_index(&report, "orders", "orders_by_customer")["scans"].as_i64() > Some(0)
            && table_index(&report, "orders", "orders_by_customer_created")["scans"].as_i64()
                > Some(0)
        {
            break report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scans counted: {report:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert_eq!(report["database"], "app");
    assert_eq!(report["total_tables"], 2, "{report:#}");
    let orders = &report["tables"][0];
    assert_eq!(orders["schema"], "public", "the largest first: {report:#}");
    assert_eq!(orders["name"], "orders");
    assert_eq!(orders["live_rows"], 19_000, "{orders:#}");
    assert_eq!(orders["dead_rows"], 1_000, "{orders:#}");
    assert!(orders["total_bytes"].as_i64().unwrap() > orders["table_bytes"].as_i64().unwrap());
    assert!(orders["last_analyze"].as_i64().is_some(), "{orders:#}");
    assert!(orders["index_scans"].as_i64().unwrap() >= 3, "{orders:#}");

    // Exactly these: the duplicate prefix (scanned, but the wider index serves it), the unused
    // ones; never the primary keys or the unique index, nor the used wide index.
    assert_eq!(
        recommended_indexes(&report),
        ["By \"Qty\"", "orders_by_customer", "orders_by_total"],
        "{report:#}"
    );
    assert_eq!(report["total_recommendations"], 3);
    let duplicate = recommendation(&report, "orders_by_customer");
    assert_eq!(duplicate["reasons"], serde_json::json!(["duplicate"]));
    assert_eq!(duplicate["duplicate_of"], "orders_by_customer_created");
    assert_eq!(
        duplicate["drop_statement"],
        r#"DROP INDEX CONCURRENTLY "public"."orders_by_customer";"#
    );
    assert_eq!(
        duplicate["definition"],
        "CREATE INDEX orders_by_customer ON public.orders USING btree (customer_id)"
    );
    assert_eq!(
        duplicate["restore_statement"],
        "CREATE INDEX CONCURRENTLY orders_by_customer ON public.orders USING btree (customer_id);"
    );
    let unused = recommendation(&report, "orders_by_total");
    assert_eq!(unused["reasons"], serde_json::json!(["unused"]));
    assert!(
        unused["explanation"]
            .as_str()
            .unwrap()
            .starts_with("No scans since "),
        "{unused:#}"
    );
    let quoted = recommendation(&report, "By \"Qty\"");
    assert_eq!(quoted["schema"], "Sales Data");
    assert_eq!(
        quoted["drop_statement"],
        r#"DROP INDEX CONCURRENTLY "Sales Data"."By ""Qty""";"#
    );
    assert_eq!(
        table_index(&report, "orders", "orders_pkey")["usage"],
        "kept"
    );
    let unique = table_index(&report, "orders", "orders_sku");
    assert_eq!(unique["usage"], "kept");
    assert!(
        unique["kept_because"]
            .as_str()
            .unwrap()
            .starts_with("unique"),
        "{unique:#}"
    );
    assert_eq!(
        table_index(&report, "orders", "orders_by_customer_created")["usage"],
        "used"
    );
    assert_eq!(
        table_index(&report, "orders", "orders_by_total")["usage"],
        "unused"
    );

    // A page of one table still counts them all.
    let first = tables_report(
        &url,
        gateway::tables::Options {
            limit: 1,
            ..any_period
        },
    )
    .await;
    assert_eq!(first["total_tables"], 2);
    assert_eq!(first["tables"].as_array().unwrap().len(), 1);
    assert_eq!(first["tables"][0]["name"], "orders");
}

#[tokio::test]
async fn right_after_a_statistics_reset_it_is_too_early_to_call_an_index_unused() {
    let pg = testkit::PgCluster::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE posts (id serial PRIMARY KEY, user_id int NOT NULL, created_at timestamptz); \
         CREATE INDEX posts_by_user ON posts (user_id); \
         CREATE INDEX posts_by_user_created ON posts (user_id, created_at); \
         CREATE INDEX posts_by_created ON posts (created_at);",
    );
    let url = pg.url("app");
    // Never reset: counted since the server started, minutes ago.
    let report = tables_report(&url, Default::default()).await;
    assert_eq!(report["counted_since_reset"], false, "{report:#}");
    assert_eq!(report["unused_after_days"], 7.0);
    assert!(
        report["scan_period"]
            .as_str()
            .unwrap()
            .contains("the server started"),
        "{report:#}"
    );

    pg.psql("app", "SELECT pg_stat_reset()");
    let report = tables_report(&url, Default::default()).await;
    assert_eq!(report["counted_since_reset"], true, "{report:#}");
    assert!(
        report["scans_counted_days"].as_f64().unwrap() < 0.01,
        "{report:#}"
    );
    let period = report["scan_period"].as_str().unwrap();
    assert!(period.contains("last reset"), "{period}");
    assert!(
        period.contains("Too early to call an index unused"),
        "{period}"
    );
    assert_eq!(
        table_index(&report, "posts", "posts_by_created")["usage"],
        "too_early"
    );
    // Only the duplicate: that needs no period.
    assert_eq!(
        recommended_indexes(&report),
        ["posts_by_user"],
        "{report:#}"
    );
    let duplicate = recommendation(&report, "posts_by_user");
    assert_eq!(duplicate["reasons"], serde_json::json!(["duplicate"]));
    assert!(
        duplicate["explanation"]
            .as_str()
            .unwrap()
            .contains("0 scans since "),
        "{duplicate:#}"
    );
}

#[tokio::test]
async fn signing_in_sets_a_session_cookie_that_authenticates() {
    let (router, state_dir) = router_with_peers_down("session").await;
    let login = format!(r#"{{"token": "{TOKEN}"}}"#);
    let (status, body, headers) = call(&router, "POST", "/auth/login", Some((JSON, &login))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authenticated"], true);
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && !cookie.contains(TOKEN),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    use tower::ServiceExt;
    let me = router
        .clone()
        .oneshot(
            axum::http::Request::get("/auth/me")
                .header("cookie", session)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let me: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(me.into_body(), 4096).await.unwrap()).unwrap();
    assert_eq!(me["authenticated"], true, "{me}");
    assert_eq!(me["auth_reads"], false, "{me}");
    let (status, out, headers) = call(&router, "POST", "/auth/logout", None).await;
    assert_eq!(status, 200);
    assert_eq!(out["authenticated"], false);
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let _ = std::fs::remove_dir_all(state_dir);
}

// ------------------------------------------------------------------ the OpenAPI document

/// The dashboard generates its TypeScript types from its copy of the document: a response
/// struct changed without `make openapi` fails here, before the dashboard drifts.
#[test]
fn the_dashboards_openapi_document_is_the_one_the_code_makes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboard/lib/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap();
    let made = gateway::api::openapi::document_json();
    assert!(
        committed == made,
        "dashboard/lib/openapi.json is not what the gateway's types make: run `make openapi`"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_without_the_token_even_when_reads_need_it() {
    let state_dir = std::env::temp_dir().join(format!("sm-gateway-openapi-{}", std::process::id()));
    let env = Env::from_map([
        ("KNOWLEDGE_ADDRESS", closed_address()),
        ("NATS_URL", format!("nats://{}", closed_address())),
        ("STATE_DIR", state_dir.display().to_string()),
        ("GATEWAY_TOKEN", TOKEN.to_owned()),
        ("GATEWAY_AUTH_READS", "true".to_owned()),
    ]);
    let state = gateway::app::state(&Config::from_env(&env).unwrap())
        .await
        .unwrap();
    use tower::ServiceExt;
    let response = gateway::router(state)
        .oneshot(
            axum::http::Request::get("/openapi.json")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let served: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        served["openapi"].as_str().unwrap().starts_with("3."),
        "{served}"
    );
    for path in [
        "/databases",
        "/actions/{id}/{decision}",
        "/config",
        "/status",
    ] {
        assert!(served["paths"][path].is_object(), "{path} is described");
    }
    let made: serde_json::Value =
        serde_json::from_str(&gateway::api::openapi::document_json()).unwrap();
    assert_eq!(served, made);
    let _ = std::fs::remove_dir_all(state_dir);
}

// ------------------------------------------------------------------ live metrics, Prometheus

#[tokio::test]
async fn metrics_heard_on_nats_reach_the_history_the_latest_and_the_exposition() {
    let nats = testkit::NatsServer::start();
    let state_dir = std::env::temp_dir().join(format!("sm-gateway-metrics-{}", std::process::id()));
    let env = Env::from_map([
        ("KNOWLEDGE_ADDRESS", closed_address()),
        ("NATS_URL", nats.url()),
        ("STATE_DIR", state_dir.display().to_string()),
        ("GATEWAY_TOKEN", TOKEN.to_owned()),
    ]);
    let state = gateway::app::state(&Config::from_env(&env).unwrap())
        .await
        .unwrap();
    let shutdown = Shutdown::new();
    let follower = {
        let (live, client, shutdown) = (state.live.clone(), state.nats.clone(), shutdown.clone());
        tokio::spawn(async move { live.follow(client, shutdown).await })
    };
    let router = gateway::router(state);
    let publisher = async_nats::connect(nats.url()).await.unwrap();
    let snapshot = serde_json::json!({
        "database_id": "shop", "timestamp": 1_700_000_000, "health_score": 0.75,
        "measurements": {"active_connections": 7},
    });
    // The follower subscribes in the background: publish until the history has it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let history = loop {
        publisher
            .publish(proto::subjects::METRICS, snapshot.to_string().into())
            .await
            .unwrap();
        publisher.flush().await.unwrap();
        let (status, history, _) = call(
            &router,
            "GET",
            "/metrics/history?database_id=shop&limit=1",
            None,
        )
        .await;
        assert_eq!(status, 200, "{history}");
        if !history.as_array().unwrap().is_empty() {
            break history;
        }
        assert!(tokio::time::Instant::now() < deadline, "no metrics heard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(history.as_array().unwrap().len(), 1, "limit 1: {history}");
    assert_eq!(history[0]["measurements"]["active_connections"], 7);
    let (_, latest, _) = call(&router, "GET", "/metrics/latest?database_id=shop", None).await;
    assert_eq!(latest["health_score"], 0.75, "{latest}");
    let (_, nothing, _) = call(&router, "GET", "/metrics/latest?database_id=other", None).await;
    assert_eq!(nothing, serde_json::json!({}));

    use tower::ServiceExt;
    let response = router
        .oneshot(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    for line in [
        "# TYPE startupmonkey_gateway_uptime_seconds gauge",
        "# TYPE startupmonkey_gateway_events_received counter",
        "startupmonkey_gateway_databases_with_metrics 1",
        "startupmonkey_database_health_score{database_id=\"shop\"} 0.75",
        "# EOF",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    let received = text
        .lines()
        .find_map(|l| l.strip_prefix("startupmonkey_gateway_events_received_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no events counter in:\n{text}"));
    assert!(received >= 1, "{text}");
    assert!(
        !text.contains("startupmonkey_databases "),
        "knowledge's counts are left out while it is down:\n{text}"
    );
    shutdown.trigger();
    follower.await.unwrap();
    let _ = std::fs::remove_dir_all(state_dir);
}
