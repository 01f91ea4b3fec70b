//! The executor service as a process would run it: health, readiness, gRPC, shutdown.

use std::time::Duration;

use executor::{App, Config};
use lifecycle::{Env, Shutdown};
use proto::executor::{ActionDecisionRequest, ActionStatusRequest, HealthRequest};
use tonic::Code;

/// HTTP with a deadline, so a server that stops answering fails the test instead of hanging it.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn started_alone_it_is_healthy_not_ready_answers_health_check_and_is_honest_about_the_rest() {
    let env = Env::from_map([
        ("GRPC_PORT", "0".to_owned()),
        ("HEALTH_PORT", "0".to_owned()),
        (
            "KNOWLEDGE_ADDRESS",
            format!("127.0.0.1:{}", testkit::free_port()),
        ),
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

    let mut client = proto::clients::executor(&grpc).unwrap();
    let reply = client
        .health_check(HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status, "healthy");
    let error = client
        .get_action_status(ActionStatusRequest {
            action_id: "a1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);
    let error = client
        .approve_action(ActionDecisionRequest::default())
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
