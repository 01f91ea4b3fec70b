//! Untrusted input through the front doors: malformed bodies on every gateway path that takes
//! one, and poison detections on NATS in front of a real executor and knowledge.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use proto::knowledge::*;
use serde_json::{Value, json};
use testkit::PgCluster;

use crate::stack::{Stack, eventually};

// ------------------------------------------------------------------ the gateway's JSON bodies

/// One request with a body nobody should accept.
struct Case {
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static [u8]>,
    body: Vec<u8>,
    what: String,
    /// The exact status, where the kind of fault decides it.
    status: Option<u16>,
}

/// A path that takes a body, with a body it would accept (the base of the wrong-typed
/// variants, never sent as it is) and its fields with values each of which it must refuse.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    base: Value,
    fields: Vec<(&'static str, Vec<Value>)>,
}

fn endpoints() -> Vec<Endpoint> {
    let long = |n: usize| json!("x".repeat(n));
    vec![
        Endpoint {
            method: "POST",
            path: "/databases",
            base: json!({"database_name": "shop", "connection_string": "postgres://u@127.0.0.1:1/shop"}),
            fields: vec![
                (
                    "database_name",
                    vec![
                        json!(5),
                        json!([]),
                        json!({}),
                        json!(null),
                        json!(true),
                        json!(""),
                        json!("   "),
                        long(200),
                    ],
                ),
                (
                    "connection_string",
                    vec![
                        json!(5),
                        json!(null),
                        json!("mysql://u@h/d"),
                        json!(""),
                        json!("postgres://[::1"),
                        json!("x\"; DROP TABLE t; --"),
                    ],
                ),
                (
                    "database_id",
                    vec![
                        json!("a b"),
                        json!("x;drop"),
                        json!("é"),
                        long(65),
                        json!(5),
                        json!("../../etc"),
                    ],
                ),
                ("enabled", vec![json!("yes"), json!(1), json!(-1)]),
                ("database_type", vec![json!("mysql"), json!(5)]),
            ],
        },
        Endpoint {
            method: "PUT",
            path: "/databases/app",
            base: json!({"database_name": "app"}),
            fields: vec![
                (
                    "database_name",
                    vec![json!(5), json!(null), json!("   "), long(200), long(60_000)],
                ),
                (
                    "connection_string",
                    vec![json!(5), json!("mysql://u@h/d"), json!("garbage")],
                ),
                ("enabled", vec![json!("yes"), json!(0)]),
            ],
        },
        Endpoint {
            method: "POST",
            path: "/databases/test",
            base: json!({"connection_string": "postgres://u@127.0.0.1:1/shop"}),
            fields: vec![(
                "connection_string",
                vec![
                    json!(5),
                    json!(null),
                    json!([]),
                    json!("mysql://u@h/d"),
                    json!(""),
                    long(60_000),
                ],
            )],
        },
        Endpoint {
            method: "POST",
            path: "/databases/doctor",
            base: json!({"connection_string": "postgres://u@127.0.0.1:1/shop"}),
            fields: vec![(
                "connection_string",
                vec![
                    json!(5),
                    json!(null),
                    json!({}),
                    json!("mysql://u@h/d"),
                    json!(""),
                    long(60_000),
                ],
            )],
        },
        Endpoint {
            method: "POST",
            path: "/config",
            base: json!({"execution_mode": "observe", "thresholds": {"p95_latency_ms": 50.0}}),
            fields: vec![
                ("execution_mode", vec![json!("yolo"), json!(5), json!(null)]),
                (
                    "detection_cooldown_seconds",
                    vec![
                        json!(-5),
                        json!(1e20),
                        json!("soon"),
                        json!(99_999_999_999_i64),
                    ],
                ),
                (
                    "thresholds",
                    vec![
                        json!({"p95_latency_ms": -1}),
                        json!({"p95_latency_ms": "fast"}),
                        json!({"connection_pool_critical": 2}),
                        json!({"connection_pool_critical": -0.5}),
                        json!({"sequential_scan_threshold": -1}),
                        json!({"sequential_scan_threshold": 1.5}),
                        json!({"p95_latency_mss": 5}),
                        json!([1, 2]),
                    ],
                ),
                (
                    "verification",
                    vec![
                        json!({"cycles": 4_294_967_296_i64}),
                        json!({"cycles": -1}),
                        json!({"improvement_threshold": 7}),
                    ],
                ),
                (
                    "webhook",
                    vec![
                        json!({"enabled": true, "url": "ftp://x"}),
                        json!({"url": "not a url"}),
                        json!({"enabled": true}),
                        json!({"events": ["nope"]}),
                    ],
                ),
                // A misspelt field must not save the defaults in its place.
                ("exectuion_mode", vec![json!("observe")]),
            ],
        },
        Endpoint {
            method: "POST",
            path: "/actions/act-x/approve",
            base: json!({"reason": "r"}),
            fields: vec![("reason", vec![json!(5), json!(null), long(2000)])],
        },
        Endpoint {
            method: "POST",
            path: "/actions/act-x/reject",
            base: json!({"reason": "r"}),
            fields: vec![("reason", vec![json!([]), long(2000)])],
        },
        Endpoint {
            method: "POST",
            path: "/actions/act-x/rollback",
            base: json!({"reason": "r"}),
            fields: vec![("reason", vec![json!({}), long(2000)])],
        },
        Endpoint {
            method: "POST",
            path: "/auth/login",
            base: json!({"token": "not-the-token"}),
            fields: vec![(
                "token",
                vec![json!(5), json!(null), json!([]), long(60_000)],
            )],
        },
        Endpoint {
            method: "POST",
            path: "/flush",
            base: json!({"include_registry": false}),
            fields: vec![(
                "include_registry",
                vec![json!("yes"), json!(1), json!(null)],
            )],
        },
    ]
}

/// The generated set: for each path, what is wrong with any JSON body (syntax, encoding,
/// shape, size, depth, numbers JSON cannot carry, unknown fields, content types) and a
/// wrong value in each of its fields.
fn cases() -> Vec<Case> {
    const JSON: Option<&[u8]> = Some(b"application/json");
    let mut cases = Vec::new();
    for Endpoint {
        method,
        path,
        base,
        fields,
    } in endpoints()
    {
        let mut add = |what: String, content_type, body: Vec<u8>, status| {
            cases.push(Case {
                method,
                path,
                content_type,
                body,
                what,
                status,
            })
        };
        let first = fields[0].0;
        for (what, body) in [
            ("an unfinished object", b"{".to_vec()),
            (
                "an unfinished field",
                format!(r#"{{"{first}":"#).into_bytes(),
            ),
            ("an unfinished array", b"[1, 2".to_vec()),
            ("a misspelt literal", b"nul".to_vec()),
            ("single quotes", format!("{{'{first}': 1}}").into_bytes()),
            (
                "a trailing comma",
                format!(r#"{{"{first}": 1,}}"#).into_bytes(),
            ),
            ("garbage after the object", format!("{base} x").into_bytes()),
            (
                "a byte-order mark",
                [b"\xef\xbb\xbf".as_slice(), base.to_string().as_bytes()].concat(),
            ),
            (
                "not UTF-8 in a string",
                [format!(r#"{{"{first}": ""#).as_bytes(), b"\xff\xfe", b"\"}"].concat(),
            ),
            ("not UTF-8 at all", b"\xff\xfe\x00\x01".to_vec()),
            ("a NUL byte", b"{\"\x00\": 1}".to_vec()),
            ("an array", b"[]".to_vec()),
            ("a number", b"1".to_vec()),
            ("a string", b"\"x\"".to_vec()),
            ("true", b"true".to_vec()),
            ("null", b"null".to_vec()),
            ("NaN", format!(r#"{{"{first}": NaN}}"#).into_bytes()),
            (
                "-Infinity",
                format!(r#"{{"{first}": -Infinity}}"#).into_bytes(),
            ),
            (
                "a number past f64",
                format!(r#"{{"{first}": 1e400}}"#).into_bytes(),
            ),
            (
                "arrays nested 10 000 deep",
                format!(
                    r#"{{"{first}": {}{}}}"#,
                    "[".repeat(10_000),
                    "]".repeat(10_000)
                )
                .into_bytes(),
            ),
        ] {
            add(what.to_owned(), JSON, body, None);
        }
        let mut unknown = base.clone();
        unknown["colour"] = json!(1);
        add(
            "an unknown field".into(),
            JSON,
            unknown.to_string().into_bytes(),
            None,
        );
        let mut huge = base.clone();
        huge[first] = json!("x".repeat(1_100_000));
        add(
            "1.1 MB".into(),
            JSON,
            huge.to_string().into_bytes(),
            Some(413),
        );
        for content_type in [
            None,
            Some(b"text/plain".as_slice()),
            Some(b"application/x-www-form-urlencoded".as_slice()),
            Some(b"multipart/form-data; boundary=x".as_slice()),
            Some(b"application/xml".as_slice()),
            Some(b"application/\xffjson".as_slice()),
        ] {
            add(
                format!(
                    "content type {:?}",
                    content_type.map(String::from_utf8_lossy)
                ),
                content_type,
                base.to_string().into_bytes(),
                Some(415),
            );
        }
        for (field, values) in fields {
            for value in values {
                let mut body = base.clone();
                body[field] = value.clone();
                let shown: String = value.to_string().chars().take(40).collect();
                add(
                    format!("{field} = {shown}"),
                    JSON,
                    body.to_string().into_bytes(),
                    None,
                );
            }
        }
    }
    cases
}

/// What is wrong with `response` as the refusal of a malformed request: it must be a 4xx
/// (`expected` where given) with a JSON body holding a readable `error`.
async fn refusal(response: reqwest::Response, expected: Option<u16>) -> Result<(), String> {
    let status = response.status().as_u16();
    let json_body = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let text = response.text().await.map_err(|e| e.to_string())?;
    let shown: String = text.chars().take(200).collect();
    if !(400..500).contains(&status) || expected.is_some_and(|e| e != status) {
        return Err(format!("{status} (expected {expected:?}): {shown}"));
    }
    let body: Value = serde_json::from_str(&text)
        .map_err(|_| format!("{status} without a JSON body: {shown}"))?;
    if !json_body || body["error"].as_str().is_none_or(str::is_empty) {
        return Err(format!("{status} without a JSON error: {shown}"));
    }
    Ok(())
}

/// The state a refused request must leave as it was.
async fn knowledge_state(stack: &Stack) -> Value {
    let mut knowledge = stack.knowledge.clone();
    let databases: Vec<Value> = knowledge
        .list_databases(ListDatabasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .databases
        .into_iter()
        .map(|d| {
            // What was registered; health is the collector's to change.
            json!([
                d.database_id,
                d.database_name,
                d.connection_string_redacted,
                d.enabled,
                d.host,
                d.port,
                d.database_type,
                d.registered_at
            ])
        })
        .collect();
    let config = knowledge
        .get_system_config(GetSystemConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    let detections = knowledge
        .get_active_detections(DatabaseFilterRequest::default())
        .await
        .unwrap()
        .into_inner()
        .detections
        .into_iter()
        .map(|d| d.id)
        .collect::<Vec<_>>();
    json!({"databases": databases, "config": config, "detections": detections})
}

#[tokio::test]
async fn every_malformed_body_gets_a_json_4xx_and_changes_nothing() {
    let state = tempfile::tempdir().unwrap();
    let stack = Stack::start(SystemConfig::default(), ("", String::new())).await;
    let mut knowledge = stack.knowledge.clone();
    // Disabled, so the collector leaves it (and its health) alone.
    knowledge
        .register_database(RegisterDatabaseRequest {
            database_id: "app".into(),
            database_name: "app".into(),
            connection_string: "postgres://u@127.0.0.1:1/app".into(),
            enabled: false,
            ..Default::default()
        })
        .await
        .unwrap();
    // A flush would take it away.
    knowledge
        .register_detection(RegisterDetectionRequest {
            key: "app:missing_index:public.t(c)".into(),
            severity: "warning".into(),
            category: "query".into(),
            database_id: "app".into(),
            detector_name: "missing_index".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let executor = stack.start_executor(state.path()).await;
    let gateway = stack.start_gateway(&executor.grpc_addr, state.path()).await;
    let before = knowledge_state(&stack).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let cases = cases();
    let started = Instant::now();
    let mut sent = 0;
    let mut failures = Vec::new();
    for case in &cases {
        for token in [None, Some(super::bearer(&gateway))] {
            let mut request = http
                .request(
                    case.method.parse().unwrap(),
                    format!("{}{}", gateway.base, case.path),
                )
                .body(case.body.clone());
            if let Some(content_type) = case.content_type {
                request = request.header(
                    "content-type",
                    reqwest::header::HeaderValue::from_bytes(content_type).unwrap(),
                );
            }
            if let Some(token) = &token {
                request = request.header("authorization", token);
            }
            let label = format!(
                "{} {} with {} ({}authenticated)",
                case.method,
                case.path,
                case.what,
                if token.is_some() { "" } else { "un" }
            );
            let expected = match (&token, case.path) {
                (None, path) if path != "/auth/login" => Some(401),
                _ => case.status,
            };
            match request.send().await {
                Ok(response) => {
                    if let Err(problem) = refusal(response, expected).await {
                        failures.push(format!("{label}: {problem}"));
                    }
                }
                Err(error) => failures.push(format!("{label}: {error}")),
            }
            sent += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} requests were not refused as they should be:\n{}",
        failures.len(),
        failures[..failures.len().min(40)].join("\n")
    );
    assert!(sent >= 400, "{sent} requests");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{sent} requests took {:?}",
        started.elapsed()
    );

    let health = http
        .get(format!("{}/health", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(knowledge_state(&stack).await, before);
    executor.stop().await;
}

// ------------------------------------------------------------------ detections on NATS

/// A durable consumer (`stream`, `name`) and the last message of its stream.
async fn consumer(
    jetstream: &jetstream::Context,
    stream: &str,
    name: &str,
) -> (jetstream::consumer::Info, u64) {
    let mut stream = jetstream.get_stream(stream).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut consumer = stream.get_consumer::<pull::Config>(name).await.unwrap();
    (consumer.info().await.unwrap().clone(), last)
}

/// Waits until every message of `stream` was acknowledged or terminated by consumer `name`,
/// none of them offered twice.
async fn all_settled(jetstream: &jetstream::Context, stream: &str, name: &str) {
    let info = eventually(
        &format!("every message of {stream} settled"),
        Duration::from_secs(30),
        || async {
            let (info, last) = consumer(jetstream, stream, name).await;
            if info.ack_floor.stream_sequence == last && info.num_ack_pending == 0 {
                Ok(info)
            } else {
                Err(format!(
                    "ack floor {} of {last}, {} pending, {} redelivered",
                    info.ack_floor.stream_sequence, info.num_ack_pending, info.num_redelivered
                ))
            }
        },
    )
    .await;
    assert_eq!(info.num_redelivered, 0, "{stream}: {info:?}");
}

/// Action `id` once its status is one of `statuses`.
async fn action_in(stack: &Stack, id: &str, statuses: &[&str]) -> Action {
    eventually(
        &format!("{id} in {statuses:?}"),
        Duration::from_secs(60),
        || async {
            let action = stack
                .knowledge
                .clone()
                .get_action(GetActionRequest {
                    action_id: id.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .action;
            match action {
                Some(a) if statuses.contains(&a.status.as_str()) => Ok(a),
                Some(a) => Err(a.status),
                None => Err("no action".into()),
            }
        },
    )
    .await
}

fn completed(action_id: &str) -> Vec<u8> {
    serde_json::to_vec(&proto::events::ActionCompletedEvent {
        action_id: action_id.into(),
        database_id: "app".into(),
        action_type: "create_index".into(),
        status: "completed".into(),
        timestamp: 1,
        ..Default::default()
    })
    .unwrap()
}

fn detection(id: &str, key: &str, metadata: Value) -> Value {
    json!({
        "id": id, "key": key, "detector_name": "missing_index", "category": "query",
        "severity": "warning", "database_id": "app", "timestamp": 1, "title": "t",
        "description": "d", "action_type": "create_index", "action_metadata": metadata,
    })
}

#[tokio::test]
async fn poison_detections_never_block_the_stream_and_the_good_one_is_acted_on() {
    let pg = PgCluster::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE t (c int); CREATE TABLE items (c int); \
         INSERT INTO items SELECT generate_series(1, 1000)",
    );
    let state = tempfile::tempdir().unwrap();
    let stack = Stack::start(SystemConfig::default(), ("app", pg.url("app"))).await;
    let executor = stack.start_executor(state.path()).await;
    let client = async_nats::connect(stack.nats.url()).await.unwrap();
    let jetstream = jetstream::new(client);
    eventually("the DETECTIONS stream", Duration::from_secs(30), || async {
        jetstream
            .get_stream(proto::subjects::DETECTIONS_STREAM)
            .await
            .ok()
            .map(|_| ())
    })
    .await;

    // Registered in knowledge (as the analyser would), so each reaches the plan.
    let mut knowledge = stack.knowledge.clone();
    let registered = [
        (
            "d-inject",
            json!({"table_name": "t\"; DROP TABLE t; --", "column_name": "c"}),
        ),
        ("d-wrong-type", json!({"table_name": 5, "column_name": "c"})),
        (
            "d-huge",
            json!({"table_name": "items", "column_name": "c".repeat(60_000)}),
        ),
        (
            "d-good",
            json!({"table_name": "items", "column_name": "c", "index_name": "items_c_good"}),
        ),
    ];
    for (id, metadata) in &registered {
        knowledge
            .register_detection(RegisterDetectionRequest {
                id: (*id).into(),
                key: format!("app:missing_index:{id}"),
                severity: "warning".into(),
                category: "query".into(),
                database_id: "app".into(),
                detector_name: "missing_index".into(),
                action_type: "create_index".into(),
                action_metadata_json: metadata.to_string(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let long_id = "d".repeat(200);
    let mut payloads: Vec<(String, Vec<u8>)> = vec![
        ("not JSON".into(), b"x\"; DROP TABLE t; --".to_vec()),
        (
            "wrong types".into(),
            br#"{"id": 1, "timestamp": "now"}"#.to_vec(),
        ),
        // Ids knowledge refuses (whitespace, too long): asking again would never help.
        (
            "an id with spaces".into(),
            detection("d bad id", "app:x:1", json!({}))
                .to_string()
                .into_bytes(),
        ),
        (
            "a 200-byte id".into(),
            detection(&long_id, "app:x:2", json!({}))
                .to_string()
                .into_bytes(),
        ),
        ("a database id knowledge refuses".into(), {
            let mut d = detection("d-bad-db", "app:x:3", json!({}));
            d["database_id"] = json!("app; DROP TABLE t");
            d.to_string().into_bytes()
        }),
        (
            "not registered".into(),
            detection(
                "d-unknown",
                "app:x:4",
                json!({"table_name": "items", "column_name": "c"}),
            )
            .to_string()
            .into_bytes(),
        ),
    ];
    for (id, metadata) in &registered {
        payloads.push((
            (*id).into(),
            detection(id, &format!("app:missing_index:{id}"), metadata.clone())
                .to_string()
                .into_bytes(),
        ));
    }
    for (what, payload) in payloads {
        jetstream
            .publish(proto::subjects::DETECTIONS, payload.into())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    // The good one, behind all the others, runs.
    let good = action_in(&stack, "act-d-good", &["completed", "failed"]).await;
    assert_eq!(good.status, "completed", "{}", good.error);
    assert_eq!(
        pg.psql(
            "app",
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'items_c_good'"
        ),
        "1"
    );

    // Nothing is left waiting: every message was acknowledged or terminated.
    all_settled(
        &jetstream,
        proto::subjects::DETECTIONS_STREAM,
        proto::subjects::EXECUTOR_CONSUMER,
    )
    .await;

    // Verification's intake too: completed actions knowledge has no record of (or could not
    // have) are dropped, not offered again for the stream's lifetime.
    for (what, payload) in [
        ("not JSON", b"{".to_vec()),
        ("wrong types", br#"{"action_id": 5}"#.to_vec()),
        ("an unknown action", completed("act-unknown")),
        ("an id knowledge refuses", completed("act with spaces")),
    ] {
        jetstream
            .publish(proto::subjects::ACTIONS_COMPLETED, payload.into())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    all_settled(&jetstream, proto::subjects::ACTIONS_STREAM, "analyser").await;

    // The registered bad ones failed with a short reason and touched nothing; the others
    // made no action at all.
    for (id, word) in [
        ("d-inject", "does not exist"),
        ("d-wrong-type", "table_name must be a string"),
        ("d-huge", "not a valid identifier"),
    ] {
        let action = action_in(&stack, &format!("act-{id}"), &["failed"]).await;
        assert!(action.error.contains(word), "{id}: {}", action.error);
        assert!(
            action.error.len() < 400,
            "{id}: {} bytes",
            action.error.len()
        );
    }
    let actions = knowledge
        .list_actions(ListActionsRequest {
            database_id: "app".into(),
            status: String::new(),
            limit: 100,
        })
        .await
        .unwrap()
        .into_inner()
        .actions;
    let mut ids: Vec<&str> = actions.iter().map(|a| a.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "act-d-good",
            "act-d-huge",
            "act-d-inject",
            "act-d-wrong-type"
        ]
    );
    assert_eq!(
        pg.psql(
            "app",
            "SELECT count(*) FROM pg_tables WHERE tablename = 't'"
        ),
        "1"
    );
    let health = executor
        .grpc
        .clone()
        .health_check(proto::executor::HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, "healthy");
    executor.stop().await;
}
