//! Services killed with SIGKILL mid-scenario (issue 9): nothing lost, nothing done twice.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use crate::stack::{Services, Stack, eventually};

#[tokio::test]
async fn the_analyser_killed_mid_verification_is_restarted_and_reaches_the_same_decision() {
    let pg = crate::s1_database(true);
    let state = tempfile::tempdir().unwrap();
    let mut stack = Stack::start(crate::verifying(8, "autonomous"), ("app", pg.url("app"))).await;
    // The analyser that finds the problem and starts verifying is a process of its own.
    let mut analyser = stack.analyser_as_process().await;
    let executor = stack.start_executor(state.path()).await;
    let gateway = stack.start_gateway(&executor.grpc_addr, state.path()).await;
    let api = gateway.api();
    let load = crate::s1_workload(pg.url("app"));
    let action = crate::index_action(&api, "posts", Duration::from_secs(60)).await;
    let action_id = action["action_id"].as_str().unwrap().to_owned();
    let detection_id = action["detection_id"].as_str().unwrap().to_owned();
    api.wait_for_action(&action_id, "completed", Duration::from_secs(60))
        .await;

    // Part-way through the eight cycles: SIGKILL, no shutdown code runs.
    let before = eventually(
        "verification progressed",
        Duration::from_secs(60),
        || async {
            match api.ledger_entry(&action_id).await {
                Some(e) if e["state"] == "verifying" && e["cycles"].as_i64().unwrap() >= 2 => Ok(e),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    analyser.kill();
    // Down for a few collection cycles: the collector keeps going and reconnects by itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.restart_analyser().await;

    let entry = api.decided(&action_id, Duration::from_secs(90)).await;
    load.abort();
    assert_eq!(entry["state"], "kept", "{entry}");
    assert_eq!(
        entry["cycles"], 8,
        "the cycles before the kill counted: {entry}"
    );
    assert_eq!(
        entry["before"], before["before"],
        "the baseline measured before the kill was kept"
    );
    let detection = api.detection(&detection_id).await;
    assert_eq!(detection["resolution"], "verified", "{detection}");
    // One action per problem: the restart did not run or propose any of them again.
    crate::only_index_actions(&api).await;
    executor.stop().await;
}

/// The gateway's JSON list at `path`, with the token.
async fn listed(services: &Services, path: &str) -> Vec<serde_json::Value> {
    let reply = reqwest::Client::new()
        .get(format!("{}{path}", services.gateway))
        .header("authorization", services.bearer())
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match reply {
        Ok(r) if r.status() == 200 => r.json().await.unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn knowledge_collector_analyser_and_gateway_each_killed_mid_s1_lose_nothing_and_do_nothing_twice()
 {
    let pg = crate::s1_database(true);
    let redis = testkit::RedisServer::start_persistent();
    let nats = testkit::NatsServer::start();
    let mut services = Services::start(&nats.url(), &redis.addr(), &[], &[]);
    services.wait_until_ready().await;
    let mut knowledge = proto::clients::knowledge(&services.knowledge).unwrap();
    knowledge
        .save_system_config(proto::knowledge::SaveSystemConfigRequest {
            config: Some(crate::verifying(6, "autonomous")),
        })
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/databases", services.gateway))
        .header("authorization", services.bearer())
        .json(&serde_json::json!({"database_name": "app", "connection_string": pg.url("app")}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let load = crate::s1_workload(pg.url("app"));

    // Killed while the problem is being found: the collector, then the analyser.
    tokio::time::sleep(Duration::from_secs(3)).await;
    services.kill("collector");
    tokio::time::sleep(Duration::from_secs(2)).await;
    services.start_one("collector");
    services.kill("analyser");
    tokio::time::sleep(Duration::from_secs(2)).await;
    services.start_one("analyser");

    // The posts index is proposed and built; then knowledge and the gateway die mid-verification.
    let action = eventually(
        "the posts index is built, seen through the gateway",
        Duration::from_secs(90),
        || async {
            listed(&services, "/actions?database_id=app")
                .await
                .into_iter()
                .find(|a| {
                    a["action_type"] == "create_index"
                        && a["description"]
                            .as_str()
                            .is_some_and(|d| d.contains("\"posts\""))
                        && a["status"] == "completed"
                })
        },
    )
    .await;
    let action_id = action["action_id"].as_str().unwrap().to_owned();
    let undecided = listed(&services, "/ledger?database_id=app")
        .await
        .into_iter()
        .find(|e| e["action_id"] == action_id.as_str());
    assert!(
        undecided.as_ref().is_none_or(|e| e["state"] == "verifying"),
        "killed mid-verification, not after: {undecided:?}"
    );
    services.kill("knowledge");
    services.kill("gateway");
    tokio::time::sleep(Duration::from_secs(3)).await;
    services.start_one("knowledge");
    services.start_one("gateway");
    services.wait_until_ready().await;

    let entry = eventually(
        "the index's verification is decided, seen through the gateway",
        Duration::from_secs(120),
        || async {
            listed(&services, "/ledger?database_id=app")
                .await
                .into_iter()
                .find(|e| e["action_id"] == action_id.as_str() && e["state"] != "verifying")
        },
    )
    .await;
    load.abort();
    assert_eq!(entry["state"], "kept", "{entry}");
    assert_eq!(entry["cycles"], 6, "{entry}");

    // Nothing done twice: one action per detection key, one index on posts (user_id, created_at).
    let actions = listed(&services, "/actions?database_id=app").await;
    let mut keys: Vec<String> = actions
        .iter()
        .filter(|a| a["action_type"] == "create_index")
        .map(|a| a["detection_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let all = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(all, keys.len(), "an action twice: {actions:?}");
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.url("app"))
        .await
        .unwrap();
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'posts' AND indexname <> 'posts_pkey'",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    assert!(
        indexes[0].contains("user_id, created_at DESC"),
        "{indexes:?}"
    );
    let invalid: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(invalid, 0);
}
