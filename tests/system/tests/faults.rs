//! Services killed with SIGKILL mid-scenario (issue 9): nothing lost, nothing done twice.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use crate::stack::{Services, Stack, eventually};

/// How the analyser goes away mid-verification.
enum Restart {
    /// Its shutdown runs (in process).
    Graceful,
    /// SIGKILL of its process: no shutdown code runs.
    Killed,
}

/// S1's index is built and verification is part-way through its eight cycles when the analyser
/// goes; the new one (nothing kept in memory) reaches the same decision from what knowledge holds.
async fn analyser_restarted_mid_verification(how: Restart) {
    let pg = crate::s1_database(true);
    let state = tempfile::tempdir().unwrap();
    let mut stack = Stack::start(crate::verifying(8, "autonomous"), ("app", pg.url("app"))).await;
    let mut process = match how {
        Restart::Killed => Some(stack.analyser_as_process().await),
        Restart::Graceful => None,
    };
    let executor = stack.start_executor(state.path()).await;
    let gateway = stack.start_gateway(&executor.grpc_addr, state.path()).await;
    let api = gateway.api();
    let load = crate::s1_workload(pg.url("app"));
    let action = crate::index_action(&api, "posts", Duration::from_secs(60)).await;
    let action_id = action["action_id"].as_str().unwrap().to_owned();
    let detection_id = action["detection_id"].as_str().unwrap().to_owned();
    api.wait_for_action(&action_id, "completed", Duration::from_secs(60))
        .await;

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
    if let Some(process) = process.as_mut() {
        process.kill();
        // Down for a few collection cycles (the collector keeps going, and reconnects by
        // itself once an analyser listens again).
        stack.collected_cycles("app", 3).await;
    }
    stack.restart_analyser().await;

    let entry = api.decided(&action_id, Duration::from_secs(90)).await;
    load.abort();
    assert_eq!(entry["state"], "kept", "{entry}");
    assert_eq!(
        entry["cycles"], 8,
        "the cycles before the restart counted: {entry}"
    );
    assert_eq!(
        entry["before"], before["before"],
        "the baseline measured before the restart was kept"
    );
    // The detection is resolved once the decision is saved.
    eventually(
        "the detection resolved as verified",
        Duration::from_secs(10),
        || async {
            let detection = api.detection(&detection_id).await;
            (detection["resolution"] == "verified")
                .then_some(())
                .ok_or(detection.to_string())
        },
    )
    .await;
    // One action per problem: the restart did not run or propose any of them again.
    crate::only_index_actions(&api).await;
    executor.stop().await;
}

#[tokio::test]
async fn restarting_the_analyser_mid_verification_reaches_the_same_decision() {
    analyser_restarted_mid_verification(Restart::Graceful).await;
}

#[tokio::test]
async fn the_analyser_killed_mid_verification_is_restarted_and_reaches_the_same_decision() {
    analyser_restarted_mid_verification(Restart::Killed).await;
}

#[tokio::test]
async fn knowledge_collector_analyser_and_gateway_each_killed_mid_s1_lose_nothing_and_do_nothing_twice()
 {
    let pg = crate::s1_database(true);
    let redis = testkit::RedisServer::start_persistent();
    let nats = testkit::NatsServer::start();
    let mut services = Services::start(&nats.url(), &redis.addr(), &[], &[]);
    services.wait_until_ready().await;
    let api = services.api();
    api.save_config(&crate::verifying(6, "autonomous")).await;
    let (status, created) = api
        .post(
            "/databases",
            serde_json::json!({
                "database_id": "app", "database_name": "app", "connection_string": pg.url("app"),
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let load = crate::s1_workload(pg.url("app"));

    // The collector is killed while the problem is being found: the pipeline has analysed the
    // database, and the posts index is not built yet (the first snapshot has no window, so
    // nothing can be found on it).
    services.analysed_cycles("app", 1).await;
    let posts_built = |actions: &[serde_json::Value]| {
        actions
            .iter()
            .any(|a| a["plan"]["table"] == "posts" && a["status"] == "completed")
    };
    let actions = api.actions().await;
    assert!(!posts_built(&actions), "killed after the fix: {actions:#?}");
    services.kill("collector");
    services.start_one("collector");

    // The analyser is killed once the posts index is proposed, before verification decided it.
    let action = crate::index_action(&api, "posts", Duration::from_secs(90)).await;
    let action_id = action["action_id"].as_str().unwrap().to_owned();
    let undecided = api.ledger_entry(&action_id).await;
    assert!(
        undecided.as_ref().is_none_or(|e| e["state"] == "verifying"),
        "killed before verification decided: {undecided:?}"
    );
    services.kill("analyser");
    services.start_one("analyser");
    services.analysed_cycles("app", 1).await;

    // The posts index is built; then knowledge and the gateway die mid-verification.
    api.wait_for_action(&action_id, "completed", Duration::from_secs(60))
        .await;
    let undecided = api.ledger_entry(&action_id).await;
    assert!(
        undecided.as_ref().is_none_or(|e| e["state"] == "verifying"),
        "killed mid-verification, not after: {undecided:?}"
    );
    services.kill("knowledge");
    services.kill("gateway");
    // The analyser goes on through the outage: it analyses without knowledge.
    services.analysed_cycles("app", 2).await;
    services.start_one("knowledge");
    services.start_one("gateway");
    services.wait_until_ready().await;

    let entry = api.decided(&action_id, Duration::from_secs(120)).await;
    load.abort();
    assert_eq!(entry["state"], "kept", "{entry}");
    assert_eq!(entry["cycles"], 6, "{entry}");

    // Nothing done twice: one index per table that needs one, and on the database itself one
    // index on posts, (user_id, created_at DESC), nothing INVALID.
    crate::only_index_actions(&api).await;
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
