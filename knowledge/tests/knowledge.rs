//! The knowledge service against a real Redis: every RPC end to end, the fixed defects of the
//! original, and Redis going away and coming back.

use std::time::{Duration, Instant};

use knowledge::{App, Config};
use lifecycle::{Env, Shutdown};
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use proto::knowledge::*;
use testkit::RedisServer;
use tonic::Code;
use tonic::transport::Channel;

struct Knowledge {
    client: KnowledgeServiceClient<Channel>,
    health_url: String,
    /// `127.0.0.1:<port>` of the gRPC server.
    grpc_target: String,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), knowledge::app::AppError>>,
    _key_dir: tempfile::TempDir,
}

async fn start(redis: &RedisServer) -> Knowledge {
    start_with(redis, &[]).await
}

async fn start_with(redis: &RedisServer, settings: &[(&str, &str)]) -> Knowledge {
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("knowledge.key");
    let mut vars = vec![
        ("GRPC_PORT".to_owned(), "0".to_owned()),
        ("HEALTH_PORT".to_owned(), "0".to_owned()),
        ("REDIS_ADDR".to_owned(), redis.addr()),
        (
            "KNOWLEDGE_KEY_FILE".to_owned(),
            key_file.display().to_string(),
        ),
    ];
    vars.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env = Env::from_map(vars);
    let shutdown = Shutdown::new();
    let app = App::build(Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let grpc = app.grpc_addr();
    let health_url = format!("http://{}/health", app.health_addr());
    let task = tokio::spawn(app.run());
    let client = KnowledgeServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    Knowledge {
        client,
        health_url,
        grpc_target: grpc.to_string(),
        shutdown,
        task,
        _key_dir: key_dir,
    }
}

fn database(id: &str, connection_string: &str) -> RegisterDatabaseRequest {
    RegisterDatabaseRequest {
        database_id: id.into(),
        connection_string: connection_string.into(),
        database_type: "postgres".into(),
        database_name: "shop".into(),
        enabled: true,
        ..Default::default()
    }
}

fn detection(key: &str, database_id: &str) -> RegisterDetectionRequest {
    RegisterDetectionRequest {
        key: key.into(),
        severity: "warning".into(),
        category: "query".into(),
        database_id: database_id.into(),
        detector_name: "missing_index".into(),
        title: "Sequential scans detected on table 'public.posts'".into(),
        evidence_json: r#"{"table_name":"public.posts"}"#.into(),
        action_type: "create_index".into(),
        ..Default::default()
    }
}

fn action(detection_id: &str, status: &str) -> RegisterActionRequest {
    RegisterActionRequest {
        detection_id: detection_id.into(),
        action_type: "create_index".into(),
        database_id: "db1".into(),
        status: status.into(),
        params_json: r#"{"statement":"CREATE INDEX CONCURRENTLY ..."}"#.into(),
        can_rollback: true,
        ..Default::default()
    }
}

async fn redis_get(redis: &RedisServer, key: &str) -> Option<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn redis_set(redis: &RedisServer, key: &str, value: &str) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn connection_strings_are_encrypted_at_rest_and_returned_only_when_asked() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    let secret = "postgres://app:Sup3rSecret@db.internal:6543/shop";
    let reply = k
        .client
        .register_database(database("db1", secret))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.success, "{}", reply.message);

    let stored = redis_get(&redis, "database:db1").await.unwrap();
    assert!(
        !stored.contains("Sup3rSecret"),
        "plaintext in Redis: {stored}"
    );
    assert!(
        stored.contains("\"connection_string_enc\":\"v1:"),
        "{stored}"
    );

    let listed = k
        .client
        .list_databases(ListDatabasesRequest {
            enabled_only: true,
            include_connection_strings: false,
        })
        .await
        .unwrap()
        .into_inner()
        .databases;
    assert_eq!(listed.len(), 1);
    let db = &listed[0];
    assert_eq!(db.connection_string, "");
    assert_eq!(
        db.connection_string_redacted,
        "postgres://app:***@db.internal:6543/shop"
    );
    assert_eq!((db.host.as_str(), db.port), ("db.internal", 6543));
    assert_eq!(
        db.status, "unknown",
        "no health before the collector reports"
    );

    let for_collector = k
        .client
        .list_databases(ListDatabasesRequest {
            enabled_only: true,
            include_connection_strings: true,
        })
        .await
        .unwrap()
        .into_inner()
        .databases;
    assert_eq!(for_collector[0].connection_string, secret);

    let got = k
        .client
        .get_database(GetDatabaseRequest {
            database_id: "db1".into(),
            include_connection_string: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.found);
    assert_eq!(got.connection_string, "");
    let missing = k
        .client
        .get_database(GetDatabaseRequest {
            database_id: "nope".into(),
            include_connection_string: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!missing.found);
    k.shutdown.trigger();
}

#[tokio::test]
async fn detection_ids_are_unique_and_an_active_key_is_deduplicated() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    let first = k
        .client
        .register_detection(detection("db1:missing_index:public.posts", "db1"))
        .await
        .unwrap()
        .into_inner();
    let other = k
        .client
        .register_detection(detection("db1:missing_index:public.users", "db1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (first.outcome.as_str(), other.outcome.as_str()),
        ("created", "created")
    );
    assert_ne!(first.detection_id, other.detection_id);

    let again = k
        .client
        .register_detection(detection("db1:missing_index:public.posts", "db1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.outcome, "duplicate");
    assert_eq!(again.detection_id, first.detection_id);

    let status = k
        .client
        .is_detection_active(DetectionKeyRequest {
            key: "db1:missing_index:public.posts".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(status.is_active);
    assert_eq!(status.detection_id, first.detection_id);

    let active = k
        .client
        .get_active_detections(DatabaseFilterRequest {
            database_id: "db1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .detections;
    assert_eq!(active.len(), 2);
    let posts = active.iter().find(|d| d.id == first.detection_id).unwrap();
    assert_eq!(posts.occurrences, 2);
    assert_eq!(posts.evidence_json, r#"{"table_name":"public.posts"}"#);

    // Resolving one key leaves the other active (the original's shared id flipped both).
    let resolved = k
        .client
        .mark_detection_resolved(ResolveDetectionRequest {
            detection_id: other.detection_id.clone(),
            solution: "index_created:idx_db1_users_email".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resolved.success, "{}", resolved.message);
    let posts_status = k
        .client
        .is_detection_active(DetectionKeyRequest {
            key: "db1:missing_index:public.posts".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(posts_status.is_active);
    // A fixed problem that comes back is a new detection, not a cool-down.
    let back = k
        .client
        .register_detection(detection("db1:missing_index:public.users", "db1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.outcome, "created");
    assert_ne!(back.detection_id, other.detection_id);
    k.shutdown.trigger();
}

#[tokio::test]
async fn actions_keep_the_status_they_are_registered_with_and_redelivery_is_a_no_op() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    let d = k
        .client
        .register_detection(detection("db1:missing_index:public.posts", "db1"))
        .await
        .unwrap()
        .into_inner();
    let mut request = action(&d.detection_id, "pending_approval");
    request.id = "action-1".into();
    let registered = k
        .client
        .register_action(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(registered.success);
    assert_eq!(registered.action_id, "action-1");

    request.status = "queued".into();
    let redelivered = k
        .client
        .register_action(request)
        .await
        .unwrap()
        .into_inner();
    assert!(redelivered.message.contains("already registered"));

    let stored = k
        .client
        .get_action(GetActionRequest {
            action_id: "action-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .action
        .unwrap();
    assert_eq!(stored.status, "pending_approval");
    assert!(stored.can_rollback);

    let detection = k
        .client
        .get_detection(GetDetectionRequest {
            detection_id: d.detection_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .detection
        .unwrap();
    assert_eq!(
        detection.action_id, "action-1",
        "the detection links its action"
    );

    let pending = k
        .client
        .get_pending_actions(DatabaseFilterRequest {
            database_id: "db1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .actions;
    assert_eq!(pending.len(), 1);

    let suggested = k
        .client
        .register_action(action("", "suggested"))
        .await
        .unwrap()
        .into_inner();
    assert!(!suggested.action_id.is_empty());
    let pending = k
        .client
        .get_pending_actions(DatabaseFilterRequest::default())
        .await
        .unwrap()
        .into_inner()
        .actions;
    assert_eq!(
        pending.len(),
        1,
        "an observe-mode suggestion is not pending"
    );

    for status in ["executing", "completed"] {
        let updated = k
            .client
            .update_action_status(UpdateActionRequest {
                action_id: "action-1".into(),
                status: status.into(),
                message: format!("now {status}"),
                result_json: if status == "completed" {
                    r#"{"index":"idx_db1_posts_user_id"}"#.into()
                } else {
                    String::new()
                },
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(updated.success, "{}", updated.message);
    }
    let done = k
        .client
        .get_action(GetActionRequest {
            action_id: "action-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .action
        .unwrap();
    assert_eq!(done.status, "completed");
    assert!(done.started_at > 0 && done.completed_at >= done.started_at);
    assert_eq!(done.result_json, r#"{"index":"idx_db1_posts_user_id"}"#);

    let history = k
        .client
        .list_actions(ListActionsRequest {
            database_id: "db1".into(),
            status: "completed".into(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .actions;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, "action-1");

    // Compare-and-set: a second "start" of a completed action is refused, naming its status,
    // and changes nothing.
    let refused = k
        .client
        .update_action_status(UpdateActionRequest {
            action_id: "action-1".into(),
            status: "executing".into(),
            expected_status: vec!["queued".into(), "approved".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused
            .message()
            .contains("is completed, not queued or approved"),
        "{}",
        refused.message()
    );
    let still = k
        .client
        .get_action(GetActionRequest {
            action_id: "action-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .action
        .unwrap();
    assert_eq!(still.status, "completed");
    let allowed = k
        .client
        .update_action_status(UpdateActionRequest {
            action_id: "action-1".into(),
            status: "rolled_back".into(),
            expected_status: vec!["completed".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(allowed.success, "{}", allowed.message);
    k.shutdown.trigger();
}

#[tokio::test]
async fn a_rejected_fix_resolves_its_detection_and_the_key_cools_down_then_returns() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    let key = "db1:idle_transaction:connection";
    let d = k
        .client
        .register_detection(detection(key, "db1"))
        .await
        .unwrap()
        .into_inner();
    let a = k
        .client
        .register_action(action(&d.detection_id, "pending_approval"))
        .await
        .unwrap()
        .into_inner();
    let rejected = k
        .client
        .update_action_status(UpdateActionRequest {
            action_id: a.action_id.clone(),
            status: "rejected".into(),
            message: "Action rejected by user".into(),
            cooldown_seconds: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rejected.success, "{}", rejected.message);

    let resolved = k
        .client
        .get_detection(GetDetectionRequest {
            detection_id: d.detection_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .detection
        .unwrap();
    assert_eq!(resolved.state, "resolved");
    assert_eq!(resolved.resolution, "action_rejected");

    let status = k
        .client
        .is_detection_active(DetectionKeyRequest { key: key.into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!status.is_active);
    assert!(status.cooling_down);

    let during = k
        .client
        .register_detection(detection(key, "db1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(during.outcome, "cooling_down");
    assert!(!during.success);

    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let reply = k
            .client
            .register_detection(detection(key, "db1"))
            .await
            .unwrap()
            .into_inner();
        if reply.outcome != "cooling_down" || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        after.outcome, "created",
        "proposed again after the cool-down"
    );
    assert_ne!(after.detection_id, d.detection_id);
    k.shutdown.trigger();
}

#[tokio::test]
async fn flush_keeps_the_registry_and_configuration_unless_asked() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    k.client
        .register_database(database("db1", "postgres://app@h/shop"))
        .await
        .unwrap();
    k.client
        .save_system_config(SaveSystemConfigRequest {
            config: Some(SystemConfig {
                execution_mode: "approval".into(),
                onboarding_complete: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let d = k
        .client
        .register_detection(detection("db1:table_bloat:public.posts", "db1"))
        .await
        .unwrap()
        .into_inner();
    k.client
        .register_action(action(&d.detection_id, "queued"))
        .await
        .unwrap();

    let flushed = k
        .client
        .flush_all_data(FlushAllDataRequest {
            include_registry: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(flushed.success, "{}", flushed.message);
    let stats = k
        .client
        .get_system_stats(GetSystemStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stats.total_detections, stats.total_actions), (0, 0));
    assert_eq!(stats.total_databases, 1);
    let config = k
        .client
        .get_system_config(GetSystemConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config.execution_mode, "approval");

    k.client
        .flush_all_data(FlushAllDataRequest {
            include_registry: true,
        })
        .await
        .unwrap();
    let status = k
        .client
        .get_system_status(GetSystemStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!status.configured && !status.onboarding_complete);
    k.shutdown.trigger();
}

#[tokio::test]
async fn a_registered_enabled_database_completes_onboarding_without_the_wizard() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    async fn status(mut client: KnowledgeServiceClient<Channel>) -> SystemStatus {
        client
            .get_system_status(GetSystemStatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }
    let first_run = status(k.client.clone()).await;
    assert!(!first_run.configured && !first_run.onboarding_complete);

    k.client
        .register_database(RegisterDatabaseRequest {
            enabled: false,
            ..database("paused", "postgres://app@h/paused")
        })
        .await
        .unwrap();
    let paused = status(k.client.clone()).await;
    assert!(
        !paused.configured && !paused.onboarding_complete,
        "a disabled database is not watched: the wizard still shows"
    );

    // As `make up DATABASE_URL=…` does: registered, the configuration never saved.
    k.client
        .register_database(database("shop", "postgres://app@h/shop"))
        .await
        .unwrap();
    let watched = status(k.client.clone()).await;
    assert!(watched.configured && watched.onboarding_complete);
    let config = k
        .client
        .get_system_config(GetSystemConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        !config.onboarding_complete,
        "the saved flag is the wizard's; the status says whether setup is done"
    );
    k.shutdown.trigger();
}

#[tokio::test]
async fn stats_count_databases_detections_and_actions_by_state() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    for id in ["db1", "db2"] {
        k.client
            .register_database(database(id, "postgres://app@h/shop"))
            .await
            .unwrap();
    }
    let health = k
        .client
        .update_database_health(UpdateDatabaseHealthRequest {
            database_id: "db2".into(),
            status: "degraded".into(),
            health_score: 0.5,
            version: "15.19".into(),
            features: Some(DatabaseFeatures {
                pg_stat_statements: false,
                unavailable: vec![UnavailableFeature {
                    name: "pg_stat_statements".into(),
                    reason: "extension not installed".into(),
                    remedy: "CREATE EXTENSION pg_stat_statements".into(),
                }],
                ..Default::default()
            }),
            last_error: "permission denied for pg_stat_statements".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(health.success, "{}", health.message);
    let unknown = k
        .client
        .update_database_health(UpdateDatabaseHealthRequest {
            database_id: "ghost".into(),
            status: "healthy".into(),
            health_score: 1.0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!unknown.success);

    let d1 = k
        .client
        .register_detection(detection("db1:missing_index:a", "db1"))
        .await
        .unwrap()
        .into_inner();
    k.client
        .register_detection(detection("db2:missing_index:b", "db2"))
        .await
        .unwrap();
    let a = k
        .client
        .register_action(action(&d1.detection_id, "queued"))
        .await
        .unwrap()
        .into_inner();
    k.client
        .update_action_status(UpdateActionRequest {
            action_id: a.action_id,
            status: "failed".into(),
            message: "Execution error".into(),
            error: "lock timeout".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let stats = k
        .client
        .get_system_stats(GetSystemStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.total_databases, 2);
    assert_eq!(stats.degraded_databases, 1);
    assert_eq!(stats.healthy_databases, 0, "db1 has not been collected yet");
    assert_eq!(stats.total_detections, 2);
    assert_eq!(stats.active_detections, 1, "the failed fix resolved d1");
    assert_eq!(stats.resolved_detections, 1);
    assert_eq!(stats.total_actions, 1);
    assert_eq!(stats.actions_failed, 1);
    assert_eq!(stats.actions_queued, 0);

    let db2 = k
        .client
        .get_database(GetDatabaseRequest {
            database_id: "db2".into(),
            include_connection_string: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(db2.version, "15.19");
    assert_eq!(
        db2.features.unwrap().unavailable[0].name,
        "pg_stat_statements"
    );
    assert!(db2.last_error.contains("permission denied"));
    k.shutdown.trigger();
}

#[tokio::test]
async fn update_database_changes_only_what_is_given() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    k.client
        .register_database(database("db1", "postgres://app:old@h1/shop"))
        .await
        .unwrap();
    let reply = k
        .client
        .update_database(UpdateDatabaseRequest {
            database_id: "db1".into(),
            connection_string: "postgres://app:new@h2:5433/shop".into(),
            database_name: String::new(),
            enabled: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.success, "{}", reply.message);
    let db = k
        .client
        .get_database(GetDatabaseRequest {
            database_id: "db1".into(),
            include_connection_string: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(db.connection_string, "postgres://app:new@h2:5433/shop");
    assert_eq!((db.host.as_str(), db.port), ("h2", 5433));
    assert!(
        db.enabled,
        "an omitted enabled flag leaves the database enabled"
    );
    assert_eq!(db.database_name, "shop");

    k.client
        .update_database(UpdateDatabaseRequest {
            database_id: "db1".into(),
            enabled: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    let enabled = k
        .client
        .list_databases(ListDatabasesRequest {
            enabled_only: true,
            include_connection_strings: false,
        })
        .await
        .unwrap()
        .into_inner()
        .databases;
    assert!(enabled.is_empty());

    let removed = k
        .client
        .unregister_database(UnregisterDatabaseRequest {
            database_id: "db1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(removed.success);
    let again = k
        .client
        .unregister_database(UnregisterDatabaseRequest {
            database_id: "db1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.success);
    k.shutdown.trigger();
}

#[tokio::test]
async fn bad_input_is_refused_with_a_readable_message() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    let error = k
        .client
        .register_database(database("db 1; DROP", "postgres://h/d"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("database_id"),
        "{}",
        error.message()
    );

    let error = k
        .client
        .register_database(database("db1", "mysql://h/d"))
        .await
        .unwrap_err();
    assert!(
        error.message().contains("postgres://"),
        "{}",
        error.message()
    );

    let error = k
        .client
        .register_action(action("d", "finished"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("\"finished\""),
        "{}",
        error.message()
    );

    let mut bad_evidence = detection("k", "db1");
    bad_evidence.evidence_json = "[1,2]".into();
    let error = k.client.register_detection(bad_evidence).await.unwrap_err();
    assert!(
        error.message().contains("evidence_json"),
        "{}",
        error.message()
    );

    let error = k
        .client
        .save_system_config(SaveSystemConfigRequest {
            config: Some(SystemConfig {
                thresholds: Some(DetectionThresholds {
                    connection_pool_critical: 7.0,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("connection_pool_critical"),
        "{}",
        error.message()
    );
    k.shutdown.trigger();
}

#[tokio::test]
async fn configuration_round_trips_with_defaults_for_unset_values() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    let defaults = k
        .client
        .get_system_config(GetSystemConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        defaults.thresholds,
        Some(knowledge::system_config::default_thresholds())
    );
    assert!(!defaults.onboarding_complete);

    k.client
        .save_system_config(SaveSystemConfigRequest {
            config: Some(SystemConfig {
                thresholds: Some(DetectionThresholds {
                    p95_latency_ms: 250.0,
                    long_query_seconds: 45.0,
                    ..Default::default()
                }),
                execution_mode: "observe".into(),
                onboarding_complete: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let saved = k
        .client
        .get_system_config(GetSystemConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    let t = saved.thresholds.unwrap();
    assert_eq!((t.p95_latency_ms, t.long_query_seconds), (250.0, 45.0));
    assert_eq!(t.cache_hit_rate_threshold, 0.9);
    assert_eq!(saved.execution_mode, "observe");
    // Stored as the original stored it: snake_case JSON under config:system.
    let raw = redis_get(&redis, "config:system").await.unwrap();
    assert!(raw.contains("\"p95_latency_ms\":250.0"), "{raw}");
    k.shutdown.trigger();
}

#[tokio::test]
async fn a_configuration_saved_before_the_per_second_thresholds_reads_back_with_their_defaults() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    // As a knowledge without the per-second fields wrote it: counts per collection window only.
    redis_set(
        &redis,
        "config:system",
        r#"{"thresholds":{"sequential_scan_delta":250.0,"cache_min_block_reads":5000},"onboarding_complete":true}"#,
    )
    .await;
    let t = k
        .client
        .get_system_config(GetSystemConfigRequest {})
        .await
        .unwrap()
        .into_inner()
        .thresholds
        .unwrap();
    assert_eq!(
        (t.sequential_scan_delta, t.cache_min_block_reads),
        (250.0, 5000)
    );
    assert_eq!(t.index_min_statement_seconds_per_second, 0.02);
    assert_eq!(t.index_min_rows_read_per_second, 100_000.0);
    assert_eq!(t.cache_min_block_reads_per_second, 100.0);
    assert_eq!(t.latency_min_calls_per_second, 5.0);
    assert_eq!(t.index_max_new_per_table_per_hour, 2);

    let error = k
        .client
        .save_system_config(SaveSystemConfigRequest {
            config: Some(SystemConfig {
                thresholds: Some(DetectionThresholds {
                    latency_min_calls_per_second: -5.0,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("latency_min_calls_per_second -5"),
        "{}",
        error.message()
    );
    k.shutdown.trigger();
}

#[tokio::test]
async fn health_follows_redis_down_and_back_without_a_restart() {
    let mut redis = RedisServer::start_persistent();
    let mut k = start(&redis).await;
    k.client
        .register_database(database("db1", "postgres://app@h/shop"))
        .await
        .unwrap();
    let response = reqwest::get(&k.health_url).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["redis"].as_str()),
        (Some("healthy"), Some("connected"))
    );
    // Its own metrics: the call above, timed under its method's name; a path no RPC answers
    // is counted as `unknown`, never under the name a client made up.
    let mut raw = tonic::client::Grpc::new(
        tonic::transport::Channel::from_shared(format!("http://{}", k.grpc_target))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    raw.ready().await.unwrap();
    let made_up = raw
        .unary::<(), (), _>(
            tonic::Request::new(()),
            "/knowledge.KnowledgeService/MadeUp".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(made_up.code(), tonic::Code::Unimplemented);
    let metrics = reqwest::get(k.health_url.replace("/health", "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"startupmonkey_rpc_duration_seconds_count{method="RegisterDatabase"} 1"#,
        r#"startupmonkey_rpc_duration_seconds_count{method="unknown"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    assert!(!metrics.contains("MadeUp"), "{metrics}");

    redis.stop();
    let response = reqwest::get(&k.health_url).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["redis"], "disconnected");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let error = k
        .client
        .list_databases(ListDatabasesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");

    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = reqwest::get(&k.health_url).await.unwrap().status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let databases = k
        .client
        .list_databases(ListDatabasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .databases;
    assert_eq!(databases.len(), 1, "nothing lost across the Redis restart");
    k.shutdown.trigger();
}

#[tokio::test]
async fn the_service_stops_cleanly_on_shutdown() {
    let redis = RedisServer::start();
    let k = start(&redis).await;
    k.shutdown.trigger();
    let result = tokio::time::timeout(Duration::from_secs(15), k.task)
        .await
        .expect("knowledge stops within the drain deadline")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn an_independent_client_generated_from_the_proto_registers_lists_and_reads() {
    let redis = RedisServer::start();
    let k = start(&redis).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pydeps = root.join(".startupmonkey/pydeps");
    assert!(
        pydeps.join("grpc_tools").exists(),
        "grpcio-tools is missing from {}: run `make test`, which installs it",
        pydeps.display()
    );
    let output = tokio::process::Command::new("python3")
        .arg(root.join("tests/contract/knowledge_client.py"))
        .arg(k.grpc_target.clone())
        .arg(root.join("proto"))
        .env("PYTHONPATH", &pydeps)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "contract client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["registered"], true);
    assert_eq!(seen["databases"][0]["id"], "contract_db");
    assert_eq!(
        seen["databases"][0]["connection_string"], "",
        "secrets only on request"
    );
    assert_eq!(
        seen["databases"][0]["redacted"],
        "postgres://app:***@db.example:5432/shop"
    );
    assert_eq!(seen["connection_pool_critical"], 0.8);
    assert_eq!(seen["execution_mode"], "autonomous");
    assert_eq!(seen["total_databases"], 1);
    k.shutdown.trigger();
}

#[tokio::test]
async fn the_binary_serves_health_and_exits_cleanly_on_sigterm() {
    let redis = RedisServer::start();
    let key_dir = tempfile::tempdir().unwrap();
    let (grpc_port, health_port) = (testkit::free_port(), testkit::free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_knowledge"))
        .env("GRPC_PORT", grpc_port.to_string())
        .env("HEALTH_PORT", health_port.to_string())
        .env("REDIS_ADDR", redis.addr())
        .env("KNOWLEDGE_KEY_FILE", key_dir.path().join("k.key"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{health_port}/health");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = reqwest::get(&url).await
            && response.status() == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "knowledge binary never answered {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within the drain deadline")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn the_binary_refuses_a_bad_setting_naming_the_variable_and_value() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_knowledge"))
        .env("GRPC_PORT", "not-a-port")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GRPC_PORT=\"not-a-port\""), "{stderr}");
}

#[tokio::test]
async fn the_ledger_keeps_one_entry_per_action_listed_by_state_and_refuses_bad_input() {
    let redis = RedisServer::start();
    let mut k = start(&redis).await;
    let entry = |id: &str, state: &str, started_at: i64| LedgerEntry {
        action_id: id.into(),
        database_id: "db1".into(),
        action_type: "create_index".into(),
        state: state.into(),
        started_at,
        before_json: r#"{"served":{"mean_ms":4.2}}"#.into(),
        ..Default::default()
    };
    for (id, state, at) in [("a1", "verifying", 10), ("a2", "kept", 20)] {
        k.client
            .save_ledger_entry(entry(id, state, at))
            .await
            .unwrap();
    }
    // a1 decided: it moves from "verifying" to "rolled_back".
    let mut decided = entry("a1", "rolled_back", 10);
    decided.reason = "INSERT got slower".into();
    k.client.save_ledger_entry(decided).await.unwrap();
    let list = |state: &str| {
        let mut client = k.client.clone();
        let state = state.to_owned();
        async move {
            client
                .list_ledger(ListLedgerRequest {
                    database_id: "db1".into(),
                    state,
                    limit: 0,
                })
                .await
                .unwrap()
                .into_inner()
                .entries
                .into_iter()
                .map(|e| e.action_id)
                .collect::<Vec<_>>()
        }
    };
    assert!(list("verifying").await.is_empty());
    assert_eq!(list("rolled_back").await, ["a1"]);
    assert_eq!(list("").await, ["a2", "a1"], "newest first");
    let one = k
        .client
        .get_ledger_entry(GetLedgerEntryRequest {
            action_id: "a1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(one.found);
    assert_eq!(one.entry.unwrap().reason, "INSERT got slower");

    for (bad, message) in [
        (entry("a3", "maybe", 1), "invalid state"),
        (entry("", "kept", 1), "action_id"),
        (
            LedgerEntry {
                after_json: "[1]".into(),
                ..entry("a3", "kept", 1)
            },
            "after_json",
        ),
    ] {
        let error = k.client.save_ledger_entry(bad).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(error.message().contains(message), "{}", error.message());
    }
    k.shutdown.trigger();
}
