//! Untrusted input against real servers: generated identifiers through our quoting into a real
//! PostgreSQL, and malformed detections through the JetStream consumer of a running executor.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use executor::actions::{Plan, PlanExt};
use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, TestCaseError, TestRunner};
use proto::events::Detection;
use proto::sql::{qualified, quote_ident, valid_identifier};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use testkit::{NatsServer, PgCluster};

// ------------------------------------------------------------------ identifiers in PostgreSQL

/// Characters that have broken quoting elsewhere, among any others.
fn awkward_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec![
            '"', '\\', '\'', ' ', '\0', '.', ';', '-', '\n', '$', 'A', 'é', '€', '\u{1d11e}',
        ]),
    ]
}

/// Any name, many of them near PostgreSQL's 63-byte limit.
fn awkward_name() -> impl Strategy<Value = String> {
    let near_the_limit = prop_oneof![8 => Just('a'), 1 => Just('é'), 1 => Just('"')];
    prop_oneof![
        3 => prop::collection::vec(awkward_char(), 0..40),
        1 => prop::collection::vec(near_the_limit, 58..66),
    ]
    .prop_map(|chars| chars.into_iter().collect())
}

/// A name we accept: no NUL, cut to 63 bytes at a character boundary.
fn awkward_identifier() -> impl Strategy<Value = String> {
    prop::collection::vec(awkward_char().prop_filter("no NUL", |c| *c != '\0'), 1..24).prop_map(
        |chars| {
            let mut name = String::new();
            for c in chars {
                if name.len() + c.len_utf8() > proto::sql::MAX_IDENTIFIER_BYTES {
                    break;
                }
                name.push(c);
            }
            name
        },
    )
}

fn failed(error: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(error.to_string())
}

/// Relations outside the system schemas.
async fn relations(conn: &mut PgConnection) -> Result<i64, TestCaseError> {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
    )
    .fetch_one(conn)
    .await
    .map_err(failed)
}

async fn run(conn: &mut PgConnection, sql: &str) -> Result<(), TestCaseError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| failed(format!("{sql}: {e}")))
}

/// One generated schema and name: we accept a name exactly when PostgreSQL keeps it as written,
/// our quoting denotes what PostgreSQL's `quote_ident`/`parse_ident` do, and a `CREATE TABLE`
/// of the qualified name creates one table of exactly that schema and name — nothing else.
async fn one_identifier_case(
    conn: &mut PgConnection,
    schema: &str,
    name: &str,
) -> Result<(), TestCaseError> {
    for n in [schema, name] {
        if n.contains('\0') {
            // No statement or parameter can carry a NUL.
            prop_assert!(!valid_identifier(n));
            continue;
        }
        // `name` is PostgreSQL's identifier type: it keeps NAMEDATALEN - 1 bytes, the rest is
        // cut off (a quoted identifier too, with a NOTICE); a zero-length one it refuses.
        let kept: bool = sqlx::query_scalar("SELECT $1::name::text = $1")
            .bind(n)
            .fetch_one(&mut *conn)
            .await
            .map_err(failed)?;
        prop_assert_eq!(valid_identifier(n), kept && !n.is_empty(), "{:?}", n);
        if !valid_identifier(n) {
            continue;
        }
        let (theirs, parsed): (String, Vec<String>) =
            sqlx::query_as("SELECT quote_ident($1), parse_ident($2)")
                .bind(n)
                .bind(qualified(n, n))
                .fetch_one(&mut *conn)
                .await
                .map_err(failed)?;
        // PostgreSQL leaves simple lower-case names bare; when it quotes, it quotes as we do.
        prop_assert!(theirs == n || theirs == quote_ident(n), "{theirs} vs {n:?}");
        prop_assert_eq!(parsed, vec![n.to_owned(), n.to_owned()]);
    }
    // `pg_` schemas are reserved to the system whatever the quoting.
    if !(valid_identifier(schema) && valid_identifier(name)) || schema.starts_with("pg_") {
        return Ok(());
    }
    run(
        conn,
        &format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)),
    )
    .await?;
    let before = relations(conn).await?;
    run(
        conn,
        &format!("CREATE TABLE {} ()", qualified(schema, name)),
    )
    .await?;
    let exact: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'",
    )
    .bind(schema)
    .bind(name)
    .fetch_one(&mut *conn)
    .await
    .map_err(failed)?;
    prop_assert_eq!(exact, 1, "no table named exactly {:?}.{:?}", schema, name);
    prop_assert_eq!(relations(conn).await?, before + 1, "more than one relation");
    run(conn, &format!("DROP TABLE {}", qualified(schema, name))).await?;
    prop_assert_eq!(relations(conn).await?, before);
    Ok(())
}

/// Drops every table outside the system schemas (their names quoted by PostgreSQL itself).
const DROP_EVERY_TABLE: &str = "DO $$ DECLARE t regclass; BEGIN \
    FOR t IN SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
      WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
    LOOP EXECUTE format('DROP TABLE %s CASCADE', t); END LOOP; END $$";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn cases(cases: u32) -> TestRunner {
    TestRunner::new(Cases {
        cases,
        failure_persistence: None,
        ..Cases::default()
    })
}

#[test]
fn names_we_accept_are_exactly_those_postgresql_keeps_and_name_exactly_one_table() {
    let pg = PgCluster::start();
    pg.create_database("app");
    let runtime = runtime();
    // One connection for every case (the runner takes a `Fn`).
    let conn = tokio::sync::Mutex::new(
        runtime
            .block_on(PgConnection::connect(&pg.url("app")))
            .unwrap(),
    );
    cases(256)
        .run(&(awkward_name(), awkward_name()), |(schema, name)| {
            runtime.block_on(async {
                one_identifier_case(&mut *conn.lock().await, &schema, &name).await
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_create_index_plan_with_awkward_names_indexes_exactly_the_named_column() {
    let pg = PgCluster::start();
    pg.create_database("app");
    let runtime = runtime();
    // One connection for every case (the runner takes a `Fn`).
    let conn = tokio::sync::Mutex::new(
        runtime
            .block_on(PgConnection::connect(&pg.url("app")))
            .unwrap(),
    );
    let context = runtime.block_on(async { super::context(&pg, Duration::from_secs(30)) });
    let names = (
        awkward_identifier().prop_filter("pg_ schemas are the system's", |s| !s.starts_with("pg_")),
        awkward_identifier(),
        awkward_identifier(),
        awkward_identifier(),
        any::<bool>(),
    );
    cases(32)
        .run(&names, |(schema, table, column, index_name, descending)| {
            prop_assume!(
                index_name != table,
                "an index and its table share a namespace"
            );
            runtime.block_on(async {
                let conn = &mut *conn.lock().await;
                let plan = Plan::from_detection(&Detection {
                    action_type: "create_index".into(),
                    action_metadata: Some(json!({
                        "schema": schema, "table_name": table, "index_name": index_name,
                        "columns": [{"name": column, "descending": descending}],
                    })),
                    ..Default::default()
                })
                .map_err(failed)?;
                // What a failed case (or shrinking) left behind.
                run(conn, DROP_EVERY_TABLE).await?;
                run(
                    conn,
                    &format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&schema)),
                )
                .await?;
                run(
                    conn,
                    &format!(
                        "CREATE TABLE {} ({} int); INSERT INTO {0} SELECT generate_series(1, 100)",
                        qualified(&schema, &table),
                        quote_ident(&column)
                    ),
                )
                .await?;
                let outcome = plan.execute(&context).await.map_err(failed)?;
                let result = crate::stored(&outcome);
                let oid = result["index_oid"]
                    .as_i64()
                    .ok_or_else(|| failed(&result))?;
                let built: (String, String, String, String, i16) = sqlx::query_as(
                    "SELECT i.relname::text, n.nspname::text, t.relname::text, a.attname::text, \
                     (x.indoption[0] & 1)::int2 FROM pg_index x \
                     JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
                     JOIN pg_namespace n ON n.oid = t.relnamespace \
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] \
                     WHERE x.indexrelid = $1::oid",
                )
                .bind(oid)
                .fetch_one(&mut *conn)
                .await
                .map_err(failed)?;
                let expected = (
                    index_name,
                    schema.clone(),
                    table.clone(),
                    column,
                    i16::from(descending),
                );
                prop_assert_eq!(built, expected);
                let undone = plan.rollback(&context, &outcome).await.map_err(failed)?;
                prop_assert_eq!(&crate::stored(&undone)["dropped"], &json!(true));
                run(conn, &format!("DROP TABLE {}", qualified(&schema, &table))).await
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

// ------------------------------------------------------------------ detections from NATS

/// The executor's durable consumer, as JetStream sees it.
async fn consumer(jetstream: &jetstream::Context) -> Option<jetstream::consumer::Info> {
    let stream = jetstream
        .get_stream(proto::subjects::DETECTIONS_STREAM)
        .await
        .ok()?;
    let mut consumer = stream
        .get_consumer::<pull::Config>(proto::subjects::EXECUTOR_CONSUMER)
        .await
        .ok()?;
    consumer.info().await.ok().cloned()
}

/// Payloads no executor can act on: not JSON, not UTF-8, wrong types, missing fields, nested
/// past any decoder's limit, and as large as the server allows.
fn poison(max_payload: usize) -> Vec<(&'static str, Vec<u8>)> {
    let valid = json!({
        "id": "d-1", "key": "db:x", "detector_name": "missing_index", "category": "query",
        "severity": "warning", "database_id": "db", "timestamp": 1, "title": "t",
        "description": "d", "action_type": "create_index",
        "action_metadata": {"table_name": "x\"; DROP TABLE t; --", "column_name": "c"},
    });
    let with = |field: &str, value: serde_json::Value| {
        let mut v = valid.clone();
        v[field] = value;
        v.to_string().into_bytes()
    };
    let without = |field: &str| {
        let mut v = valid.clone();
        v.as_object_mut().unwrap().remove(field);
        v.to_string().into_bytes()
    };
    let mut oversized = valid.clone();
    oversized["description"] = json!("");
    let room = max_payload - oversized.to_string().len() - 64;
    oversized["description"] = json!("\"x".repeat(room / 3));
    vec![
        ("empty", Vec::new()),
        ("not JSON", b"x\"; DROP TABLE t; --".to_vec()),
        ("truncated JSON", b"{\"id\": \"d-1\", \"key\":".to_vec()),
        ("not UTF-8", b"{\"id\": \"\xff\xfe\"}".to_vec()),
        ("an array", b"[1, 2, 3]".to_vec()),
        ("a string", b"\"detection\"".to_vec()),
        ("id a number", with("id", json!(7))),
        ("timestamp a string", with("timestamp", json!("yesterday"))),
        ("timestamp overflowing", with("timestamp", json!(u64::MAX))),
        ("title null", with("title", json!(null))),
        (
            "action type a list",
            with("action_type", json!(["create_index"])),
        ),
        ("no key", without("key")),
        ("no database", without("database_id")),
        (
            "deeply nested evidence",
            format!(
                r#"{{"id": "d-1", "evidence": {}{}}}"#,
                "[".repeat(50_000),
                "]".repeat(50_000)
            )
            .into_bytes(),
        ),
        ("oversized, truncated", {
            let mut bytes = oversized.to_string().into_bytes();
            bytes.truncate(bytes.len() - 2);
            bytes
        }),
    ]
}

#[tokio::test]
async fn poison_detections_are_terminated_and_the_stream_moves_on_to_the_next() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let jetstream = jetstream::new(client.clone());
    // The executor's own consumer and engine. Knowledge is down: a well-formed detection must
    // wait for it (the whole executor waits for knowledge before it consumes at all).
    let engine = executor::engine::Engine::new(
        proto::clients::knowledge(&format!("127.0.0.1:{}", testkit::free_port())).unwrap(),
        client.clone(),
        executor::engine::Settings {
            executor_id: "untrusted".into(),
            max_concurrent_actions: 1,
            action_timeout: Duration::from_secs(10),
            auto_execution: true,
            state_dir: std::env::temp_dir(),
            policy: Default::default(),
        },
    );
    let shutdown = lifecycle::Shutdown::new();
    let consuming = tokio::spawn(executor::consumer::detections(
        engine,
        jetstream.clone(),
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumer(&jetstream).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the executor never set up its consumer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let max_payload = client.server_info().max_payload;
    let bad = poison(max_payload);
    assert!(bad.iter().any(|(_, p)| p.len() > max_payload - 1024));
    for (what, payload) in &bad {
        jetstream
            .publish(proto::subjects::DETECTIONS, payload.clone().into())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let good = json!({
        "id": "d-good", "key": "db:missing_index:t.c", "detector_name": "missing_index",
        "category": "query", "severity": "warning", "database_id": "db", "timestamp": 1,
        "title": "t", "description": "d", "action_type": "create_index",
        "action_metadata": {"table_name": "t", "column_name": "c"},
    });
    jetstream
        .publish(proto::subjects::DETECTIONS, good.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let last = bad.len() as u64 + 1;

    // Every poison message is terminated at once (the ack floor passes all of them); the good
    // one behind them is delivered and kept waiting for knowledge, not dropped.
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info = consumer(&jetstream).await.unwrap();
        if info.delivered.stream_sequence == last && info.ack_floor.stream_sequence == last - 1 {
            break info;
        }
        assert!(
            Instant::now() < deadline,
            "poison messages still pending: delivered {}, ack floor {}, pending acks {}",
            info.delivered.stream_sequence,
            info.ack_floor.stream_sequence,
            info.num_ack_pending
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(info.num_pending, 0);
    assert_eq!(
        info.num_ack_pending, 1,
        "only the well-formed detection waits"
    );

    // It is offered again while knowledge stays down; no poison message ever comes back.
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info = consumer(&jetstream).await.unwrap();
        if info.delivered.consumer_sequence > last {
            break info;
        }
        assert!(
            Instant::now() < deadline,
            "the waiting detection was not offered again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(info.ack_floor.stream_sequence, last - 1);
    assert_eq!(info.num_ack_pending, 1);
    assert_eq!(info.num_redelivered, 1, "{info:?}");

    assert!(!consuming.is_finished(), "the consumer stopped");
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(15), consuming)
        .await
        .expect("stops on shutdown")
        .unwrap();
}
