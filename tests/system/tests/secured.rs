//! The whole loop with every connection authenticated and encrypted (issue 9): NATS with a user,
//! a password and TLS (client certificates verified), Redis with a password over TLS, gRPC
//! between the services with mutual TLS — and each server shown to refuse what lacks them.

use std::io::{Read, Write};
use std::time::Duration;

use futures::StreamExt;
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use proto::knowledge::{DetectionThresholds, GetSystemConfigRequest};
use sqlx::{Connection, Executor};

use crate::stack::{self, Stack};

/// Whether a gRPC call to knowledge over `channel` succeeds within 5 s.
async fn knowledge_answers(channel: tonic::transport::Channel) -> bool {
    let mut client = KnowledgeServiceClient::new(channel);
    let call = client.get_system_config(GetSystemConfigRequest {});
    matches!(
        tokio::time::timeout(Duration::from_secs(5), call).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn with_nats_redis_and_grpc_secured_an_idle_transaction_is_ended_and_the_gateway_shows_it() {
    let pg = crate::app_database();
    pg.psql(
        "app",
        "CREATE ROLE shop LOGIN; GRANT ALL ON accounts TO shop",
    );
    let state = tempfile::tempdir().unwrap();
    let stack = Stack::start_secured(
        crate::execution_mode(
            "autonomous",
            DetectionThresholds {
                idle_transaction_seconds: 3.0,
                ..Default::default()
            },
        ),
        ("app", pg.url("app")),
    )
    .await;
    let certificates = stack.certificates.as_ref().unwrap();

    // NATS: TLS with the right CA and a client certificate, but no password: refused.
    let no_password = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(certificates.ca())
        .add_client_certificate(certificates.client_cert(), certificates.client_key())
        .connect(stack.nats.url());
    let no_password = tokio::time::timeout(Duration::from_secs(5), no_password).await;
    assert!(
        !matches!(no_password, Ok(Ok(_))),
        "NATS let a client in without a password"
    );
    // The password, but no client certificate: refused by TLS.
    let no_certificate = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(certificates.ca())
        .user_and_password(stack::NATS_USER.into(), stack::NATS_PASSWORD.into())
        .connect(stack.nats.url());
    let no_certificate = tokio::time::timeout(Duration::from_secs(5), no_certificate).await;
    assert!(
        !matches!(no_certificate, Ok(Ok(_))),
        "NATS let a client in without a certificate"
    );

    // gRPC: knowledge answers the services' mutual TLS, and nothing less.
    assert!(
        knowledge_answers(stack::grpc_channel(
            &stack.shared_env,
            &stack.knowledge_addr
        ))
        .await
    );
    assert!(
        !knowledge_answers(proto::clients::channel(&stack.knowledge_addr).unwrap()).await,
        "knowledge answered plain-text gRPC"
    );
    let ca_only = tonic::transport::ClientTlsConfig::new().ca_certificate(
        tonic::transport::Certificate::from_pem(std::fs::read(certificates.ca()).unwrap()),
    );
    assert!(
        !knowledge_answers(
            proto::clients::secure_channel(&stack.knowledge_addr, Some(&ca_only)).unwrap()
        )
        .await,
        "knowledge answered a client without a certificate"
    );

    // Redis speaks only TLS: a plain-text PING gets no PONG.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", stack.redis.port())).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    plain.write_all(b"PING\r\n").unwrap();
    let mut reply = [0_u8; 5];
    let read = plain.read(&mut reply).unwrap_or(0);
    assert_ne!(&reply[..read], b"+PONG", "Redis answered in plain text");

    // The loop, through all of it: an idle transaction is found and ended.
    let nats = stack.nats_client().await;
    let mut detections = nats.subscribe(proto::subjects::DETECTIONS).await.unwrap();
    nats.flush().await.unwrap();
    let executor = stack.start_executor(state.path()).await;
    let gateway = stack.start_gateway(&executor.grpc_addr, state.path()).await;
    let mut holder = sqlx::PgConnection::connect(&pg.url_as("shop", "app"))
        .await
        .unwrap();
    holder
        .execute("BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        .await
        .unwrap();

    let detection = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let message = detections
                .next()
                .await
                .expect("the subscription stays open");
            let detection: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
            if detection["detector_name"] == "idle_transaction" {
                return detection;
            }
        }
    })
    .await
    .expect("the idle transaction is published on the secured NATS within 30 s");
    assert_eq!(detection["database_id"], "app");

    let api = gateway.api();
    let actions = api
        .wait_for_actions(
            "a completed termination through the secured stack",
            Duration::from_secs(45),
            |actions| {
                actions
                    .iter()
                    .any(|a| a["action_type"] == "terminate_query" && a["status"] == "completed")
            },
        )
        .await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    let action = &actions[0];
    assert_eq!(action["database_id"], "app");
    assert!(
        sqlx::query("SELECT 1").execute(&mut holder).await.is_err(),
        "the idle transaction was ended"
    );

    // Every service reports its peers reachable over the secured connections.
    let status = api.get("/status").await;
    assert_eq!(status["services"]["knowledge"], "healthy", "{status}");
    assert_eq!(status["services"]["executor"], "healthy", "{status}");
    assert_eq!(status["services"]["nats"], "connected", "{status}");
    executor.stop().await;
}

/// The secrets every service of the test below is given or handles, as they could leak: raw and
/// percent-encoded (as in a URL).
fn leaks(text: &str, secrets: &[&str]) -> Vec<String> {
    secrets
        .iter()
        .flat_map(|s| {
            let encoded =
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            [s.to_string(), encoded]
        })
        .filter(|s| text.contains(s.as_str()))
        .collect()
}

#[tokio::test]
async fn no_service_logs_a_secret_even_at_debug_level() {
    use testkit::{Certificates, NatsServer, RedisServer};
    const KNOWLEDGE_KEY: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";
    const DB_PASSWORD: &str = "db-Secret-77";
    const WRONG_DB_PASSWORD: &str = "wrong-Secret-88";
    const GUESSED_TOKEN: &str = "guess-Secret-99";

    let certificates = Certificates::generate();
    let redis = RedisServer::start_secured(stack::REDIS_PASSWORD, Some(&certificates));
    let nats = NatsServer::start_secured(
        stack::NATS_USER,
        stack::NATS_PASSWORD,
        Some(&certificates),
        true,
    );
    let pg = crate::app_database();
    pg.psql(
        "app",
        &format!("CREATE ROLE watcher LOGIN PASSWORD '{DB_PASSWORD}' IN ROLE pg_monitor"),
    );
    // So that the wrong password is really refused, again and again.
    pg.require_password_for("watcher");
    let services = stack::Services::start(
        &nats.url(),
        &redis.addr(),
        &stack::secured_env(&certificates),
        &[
            ("REDIS_PASSWORD", stack::REDIS_PASSWORD.into()),
            ("REDIS_TLS_CA", certificates.ca().display().to_string()),
            ("KNOWLEDGE_SECRET_KEY", KNOWLEDGE_KEY.into()),
        ],
    );
    services.wait_until_ready().await;
    let api = services.api();
    // Work that handles every secret: a database with a password, one with a wrong password
    // (its connection fails, over and over), a wrong token, a connection test.
    let mut ids = Vec::new();
    for (name, password) in [("Shop", DB_PASSWORD), ("Broken", WRONG_DB_PASSWORD)] {
        let (status, created) = api
            .post(
                "/databases",
                serde_json::json!({
                    "database_name": name,
                    "connection_string": format!("postgres://watcher:{password}@127.0.0.1:{}/app", pg.port()),
                }),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["database_id"].as_str().unwrap().to_owned());
    }
    let refused = reqwest::Client::new()
        .post(format!("{}/auth/login", services.gateway))
        .json(&serde_json::json!({"token": GUESSED_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let (status, tested) = api
        .post(
            "/databases/test",
            serde_json::json!({
                "connection_string": format!("postgres://watcher:{WRONG_DB_PASSWORD}@127.0.0.1:{}/app", pg.port()),
            }),
        )
        .await;
    assert_eq!(status, 200, "an unreachable database is a report: {tested}");
    assert_eq!(tested["ok"], false, "{tested}");
    assert!(!tested.to_string().contains(WRONG_DB_PASSWORD), "{tested}");

    // Until the collector has collected the good database and failed on the broken one.
    stack::eventually(
        "the collector collects one database and is refused by the other",
        Duration::from_secs(30),
        || async {
            let text = services.log("collector");
            // The wrong password really fails (PostgreSQL's own words), the right one works.
            if text.contains("password authentication failed") && text.contains("shop") {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
    .await;
    // And the analyser has analysed the good one's snapshots (what it logs is checked too).
    services.analysed_cycles(&ids[0], 2).await;

    let secrets = [
        stack::NATS_PASSWORD,
        stack::REDIS_PASSWORD,
        KNOWLEDGE_KEY,
        &services.token,
        DB_PASSWORD,
        WRONG_DB_PASSWORD,
        GUESSED_TOKEN,
    ];
    for name in stack::SERVICES {
        let text = services.log(name);
        assert!(
            text.lines().count() > 3,
            "{name} logged almost nothing at debug level:\n{text}"
        );
        let leaked = leaks(&text, &secrets);
        assert!(leaked.is_empty(), "{name} logged {leaked:?}:\n{text}");
    }
}
