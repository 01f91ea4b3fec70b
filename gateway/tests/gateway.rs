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
