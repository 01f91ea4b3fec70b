//! Services killed with SIGKILL mid-scenario (issue 9): nothing lost, nothing done twice.

use std::time::{Duration, Instant};

use proto::knowledge::GetLedgerEntryRequest;

use crate::stack::Stack;

#[tokio::test]
async fn the_analyser_killed_mid_verification_is_restarted_and_reaches_the_same_decision() {
    let pg = crate::s1_database(true);
    let state = tempfile::tempdir().unwrap();
    let mut stack = Stack::start(crate::verifying(8, "autonomous"), ("app", pg.url("app"))).await;
    // The analyser that finds the problem and starts verifying is a process of its own.
    let mut analyser = stack.analyser_as_process().await;
    let (_nats, mut detections) = crate::subscribe(&stack).await;
    let mut executor = stack.start_executor(state.path()).await;
    let load = crate::s1_workload(pg.url("app"));
    let (action_id, detection_id) = crate::posts_index_action(&mut detections).await;
    crate::wait_for_status(
        &mut executor,
        &action_id,
        "completed",
        Duration::from_secs(60),
    )
    .await;

    // Part-way through the eight cycles: SIGKILL, no shutdown code runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let entry = stack
            .knowledge
            .clone()
            .get_ledger_entry(GetLedgerEntryRequest {
                action_id: action_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .entry;
        if let Some(entry) = entry.filter(|e| e.state == "verifying" && e.cycles >= 2) {
            break entry;
        }
        assert!(Instant::now() < deadline, "verification never progressed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    analyser.kill();
    // Down for a few collection cycles: the collector keeps going and reconnects by itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.restart_analyser().await;

    let entry = crate::decided(&stack, &action_id, Duration::from_secs(90)).await;
    load.abort();
    assert_eq!(entry.state, "kept", "{}", entry.reason);
    assert_eq!(entry.cycles, 8, "the cycles before the kill counted");
    assert_eq!(
        entry.before_json, before.before_json,
        "the baseline measured before the kill was kept"
    );
    assert_eq!(
        crate::detection_resolution(&stack, &detection_id).await,
        "verified"
    );
    // One action per problem: the restart did not run or propose any of them again.
    let index_actions: Vec<_> = crate::actions(&stack)
        .await
        .into_iter()
        .filter(|a| a.action_type == "create_index")
        .collect();
    let mut keys: Vec<String> = index_actions
        .iter()
        .map(|a| {
            let params: serde_json::Value = serde_json::from_str(&a.params_json).unwrap();
            params["detection_key"].as_str().unwrap().to_owned()
        })
        .collect();
    keys.sort();
    let distinct = {
        let mut k = keys.clone();
        k.dedup();
        k
    };
    assert_eq!(keys, distinct, "an index was proposed twice: {keys:?}");
    assert!(keys.iter().any(|k| k.contains("public.posts")), "{keys:?}");
    executor.stop().await;
}
