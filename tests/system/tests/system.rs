//! The services together, as a user runs them: knowledge on a real Redis, the collector watching a
//! private PostgreSQL cluster, the analyser publishing on a real NATS with JetStream.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lifecycle::{Env, Shutdown};
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use proto::knowledge::*;
use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;
use testkit::{NatsServer, PgCluster, RedisServer};
use tonic::transport::Channel;

/// Knowledge, analyser and collector running in this process against real servers.
struct Stack {
    knowledge: KnowledgeServiceClient<Channel>,
    nats: NatsServer,
    shutdown: Shutdown,
    _redis: RedisServer,
    _key_dir: tempfile::TempDir,
}

impl Stack {
    async fn start(settings: SystemConfig, database: (&str, String)) -> Self {
        let redis = RedisServer::start();
        let nats = NatsServer::start();
        let key_dir = tempfile::tempdir().unwrap();
        let shutdown = Shutdown::new();

        let knowledge_env = Env::from_map([
            ("GRPC_PORT", "0".to_owned()),
            ("HEALTH_PORT", "0".to_owned()),
            ("REDIS_ADDR", redis.addr()),
            (
                "KNOWLEDGE_KEY_FILE",
                key_dir.path().join("k.key").display().to_string(),
            ),
        ]);
        let knowledge_app = knowledge::App::build(
            knowledge::Config::from_env(&knowledge_env).unwrap(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let knowledge_addr = knowledge_app.grpc_addr().to_string();
        tokio::spawn(knowledge_app.run());
        let mut client = proto::clients::knowledge(&knowledge_addr).unwrap();
        client
            .save_system_config(SaveSystemConfigRequest {
                config: Some(settings),
            })
            .await
            .unwrap();
        client
            .register_database(RegisterDatabaseRequest {
                database_id: database.0.into(),
                connection_string: database.1,
                enabled: true,
                ..Default::default()
            })
            .await
            .unwrap();

        let analyser_env = Env::from_map([
            ("GRPC_PORT", "0".to_owned()),
            ("HEALTH_PORT", "0".to_owned()),
            ("KNOWLEDGE_ADDRESS", knowledge_addr.clone()),
            ("NATS_URL", nats.url()),
        ]);
        let analyser_app = analyser::App::build(
            analyser::Config::from_env(&analyser_env).unwrap(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let analyser_addr = analyser_app.grpc_addr().to_string();
        tokio::spawn(analyser_app.run());

        let collector_env = Env::from_map([
            ("HEALTH_PORT", "0".to_owned()),
            ("KNOWLEDGE_ADDRESS", knowledge_addr),
            ("ANALYSER_ADDRESS", analyser_addr),
            ("NATS_URL", nats.url()),
            ("COLLECTION_INTERVAL", "1s".to_owned()),
            ("SYNC_INTERVAL", "5s".to_owned()),
        ]);
        let collector_app = collector::App::build(
            collector::Config::from_env(&collector_env).unwrap(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        tokio::spawn(collector_app.run());

        Self {
            knowledge: client,
            nats,
            shutdown,
            _redis: redis,
            _key_dir: key_dir,
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

fn app_database() -> PgCluster {
    let pg = PgCluster::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE EXTENSION pg_stat_statements; \
         CREATE TABLE accounts (id int PRIMARY KEY, balance int); \
         INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 1000) g;",
    );
    pg
}

#[tokio::test]
async fn an_idle_transaction_is_detected_once_registered_in_knowledge_and_kept_in_jetstream() {
    let pg = app_database();
    // The threshold comes from knowledge's configuration (the original's default is 300 s).
    let settings = SystemConfig {
        thresholds: Some(DetectionThresholds {
            idle_transaction_seconds: 6.0,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut stack = Stack::start(settings, ("app", pg.url("app"))).await;
    let nats = async_nats::connect(stack.nats.url()).await.unwrap();
    let mut detections = nats.subscribe(proto::subjects::DETECTIONS).await.unwrap();
    nats.flush().await.unwrap();

    // A quiet database: a few cycles, and nothing is detected.
    let quiet = tokio::time::timeout(Duration::from_secs(4), detections.next()).await;
    assert!(
        quiet.is_err(),
        "a healthy, idle database produced a detection: {quiet:?}"
    );

    let session = PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.url("app"))
        .await
        .unwrap();
    let mut session = session.acquire().await.unwrap();
    session
        .execute("BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *session)
        .await
        .unwrap();
    let idle_since = Instant::now();

    let deadline = Instant::now() + Duration::from_secs(30);
    let detection: serde_json::Value = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), detections.next())
            .await
            .expect("a detection within 30 s")
            .unwrap();
        let detection: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        if detection["detector_name"] == "idle_transaction" {
            break detection;
        }
        assert!(Instant::now() < deadline, "no idle_transaction detection");
    };
    assert!(
        idle_since.elapsed() >= Duration::from_secs(6),
        "fired before the threshold"
    );
    assert_eq!(detection["evidence"]["pid"], pid.to_string());
    assert_eq!(detection["action_type"], "terminate_query");
    assert_eq!(detection["database_id"], "app");
    let key = detection["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with(&format!("app:idle_transaction:{pid}:")),
        "{key}"
    );
    let id = detection["id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty());

    let active = stack
        .knowledge
        .get_active_detections(DatabaseFilterRequest {
            database_id: "app".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .detections;
    let registered = active
        .iter()
        .find(|d| d.key == key)
        .expect("registered in knowledge");
    assert_eq!(registered.id, id);

    // Still idle over the next cycles: the same key is not published again.
    let until = Instant::now() + Duration::from_secs(4);
    while let Ok(Some(message)) = tokio::time::timeout(
        until.saturating_duration_since(Instant::now()),
        detections.next(),
    )
    .await
    {
        let again: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        assert_ne!(again["key"], key, "published twice");
    }
    let occurrences = stack
        .knowledge
        .get_detection(GetDetectionRequest { detection_id: id })
        .await
        .unwrap()
        .into_inner()
        .detection
        .unwrap()
        .occurrences;
    assert!(
        occurrences >= 2,
        "later cycles counted as occurrences: {occurrences}"
    );

    // Kept in JetStream for an executor that is not running yet.
    let jetstream = async_nats::jetstream::new(nats.clone());
    let mut stream = jetstream.get_stream("DETECTIONS").await.unwrap();
    assert!(stream.info().await.unwrap().state.messages >= 1);

    session.execute("ROLLBACK").await.unwrap();
}
