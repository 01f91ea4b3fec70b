//! The analyser service as a process would run it: health, readiness, gRPC, shutdown.

use std::time::Duration;

use analyser::{App, Config};
use lifecycle::{Env, Shutdown};
use proto::metrics::{DatabaseInfo, MetricSnapshot};
use tonic::Code;

/// An address where nothing listens.
fn closed_port() -> u16 {
    testkit::free_port()
}

/// HTTP with a deadline, so a server that stops answering fails the test instead of hanging it.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn started_alone_it_is_healthy_not_ready_acknowledges_snapshots_and_stops() {
    // Knowledge and NATS both absent (never the machine's own NATS: a test must not create
    // streams on a server it does not own).
    let env = Env::from_map([
        ("GRPC_PORT", "0".to_owned()),
        ("HEALTH_PORT", "0".to_owned()),
        ("KNOWLEDGE_ADDRESS", format!("127.0.0.1:{}", closed_port())),
        ("NATS_URL", format!("nats://127.0.0.1:{}", closed_port())),
    ]);
    let shutdown = Shutdown::new();
    let app = App::build(Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", app.health_addr());
    let grpc = app.grpc_addr().to_string();
    let task = tokio::spawn(app.run());

    let health = http().get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["service"].as_str()),
        (Some("healthy"), Some("analyser"))
    );
    let ready = http().get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["knowledge"], "unreachable", "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );

    // Knowledge is unreachable: the fallback thresholds apply, a quiet snapshot finds nothing,
    // and the stream is still acknowledged.
    let mut client = proto::clients::metrics(&grpc).unwrap();
    let quiet = MetricSnapshot {
        database_id: "quiet".into(),
        ..Default::default()
    };
    let ack = client
        .stream_metrics(tokio_stream::iter(vec![quiet; 3]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ack.total_metrics, ack.status.as_str()), (3, "healthy"));
    // Each went through the detectors: /health counts them, per database.
    let body: serde_json::Value = http()
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["snapshots_analysed"],
        serde_json::json!({"quiet": 3}),
        "{body}"
    );
    // And /metrics, for Prometheus: three snapshots, each timed.
    let metrics = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "startupmonkey_snapshots_analysed_total 3",
        "startupmonkey_snapshot_analysis_seconds_count 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    let error = client
        .register_database(DatabaseInfo::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("stops within the drain deadline")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_binary_refuses_a_bad_setting_naming_the_variable_and_value() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_analyser"))
        .env("THRESHOLD_CONNECTION_POOL_CRITICAL", "lots")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("THRESHOLD_CONNECTION_POOL_CRITICAL=\"lots\""),
        "{stderr}"
    );
}
