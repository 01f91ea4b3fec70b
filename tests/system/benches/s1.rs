//! S1 at 1M rows (run by `make bench`, not by `make test`): knowledge, collector and analyser
//! watch a private cluster while pgbench runs S1's statement
//! (`SELECT * FROM posts WHERE user_id = $1 ORDER BY created_at DESC LIMIT 10`, -c 8).
//!
//! * `ttd_s` — pgbench started → the missing_index detection received on NATS (5 s collection
//!   interval, default thresholds);
//! * `tps_before` — no index on user_id;
//! * `tps_after` — with the index built from the advisor's own statement;
//! * `tps_ideal` — with the index a DBA writes by hand for this statement:
//!   `CREATE INDEX ON posts (user_id, created_at DESC)`;
//! * `tps_user_id_only` — with `(user_id)` alone, the original's kind of index, for comparison;
//! * `ttm_s` — pgbench started → the executor built the index (autonomous mode) and
//!   verification decided (3 cycles of 5 s); `false_actions` — any other action it took;
//! * `p95_before_ms` / `p95_after_ms` — pgbench transaction latency (-l logs).
//!
//! Index states are measured in turn after a warm-up (advisor, ideal, user_id only, then again in
//! reverse order) and averaged, so a drift of this shared machine does not favour one of them.
//! Writes `bench/results/<UTC timestamp>-s1.json` and prints a markdown table.

#[path = "../tests/stack/mod.rs"]
#[allow(dead_code)] // the tests use all of it; this benchmark less
mod stack;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use proto::knowledge::SystemConfig;
use testkit::PgCluster;

const ROWS: u32 = 1_000_000;
const CLIENTS: u32 = 8;
const SECONDS: u32 = 10;
const SCRIPT: &str = "\\set uid random(1, 1000)\n\
    SELECT * FROM posts WHERE user_id = :uid ORDER BY created_at DESC LIMIT 10;\n";

#[tokio::main]
async fn main() {
    let pg = PgCluster::start_with(&[("max_connections", "50")]);
    pg.create_database("app");
    eprintln!("loading {ROWS} rows...");
    pg.psql(
        "app",
        &format!(
            "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg; \
             CREATE TABLE posts (id serial PRIMARY KEY, user_id int NOT NULL, title text, \
                                 body text, created_at timestamptz NOT NULL); \
             INSERT INTO posts (user_id, title, body, created_at) \
               SELECT 1 + (random() * 999)::int, 'title ' || g, repeat('body ', 20), \
                      now() - g * interval '1 second' \
               FROM generate_series(1, {ROWS}) g;"
        ),
    );
    pg.psql("app", "VACUUM ANALYZE posts");
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), SCRIPT).unwrap();
    let pgbench = testkit::binary("pgbench", "postgresql-15");
    // One pgbench run: TPS, and the p95 of its transactions' latency (from pgbench -l).
    let run = |seconds: u32| {
        let logs = tempfile::tempdir().unwrap();
        let output = Command::new(&pgbench)
            .current_dir(logs.path())
            .arg("-l")
            .args([
                "-n",
                "-M",
                "prepared",
                "-j",
                "2",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .arg("-c")
            .arg(CLIENTS.to_string())
            .arg("-T")
            .arg(seconds.to_string())
            .arg("-f")
            .arg(script.path())
            .arg("-p")
            .arg(pg.port().to_string())
            .arg("app")
            .output()
            .unwrap();
        (testkit::pgbench::tps(&output), p95_ms(logs.path()))
    };

    let (tps_before, p95_before_ms) = run(SECONDS);
    eprintln!("no index: {tps_before:.1} tps, p95 {p95_before_ms:.2} ms");

    // The services watch while S1 runs, in autonomous mode: detection, the executor's index,
    // verification's decision.
    let stack =
        stack::Stack::start_with(SystemConfig::default(), ("app", pg.url("app")), "5s").await;
    let state = tempfile::tempdir().unwrap();
    let executor = stack.start_executor(state.path()).await;
    let nats = async_nats::connect(stack.nats.url()).await.unwrap();
    let mut detections = nats.subscribe(proto::subjects::DETECTIONS).await.unwrap();
    nats.flush().await.unwrap();
    let started = Instant::now();
    let load = tokio::task::spawn_blocking({
        let pgbench = pgbench.clone();
        let script = script.path().to_owned();
        let port = pg.port();
        move || {
            Command::new(pgbench)
                .args(["-n", "-M", "prepared", "-c", "8", "-j", "2", "-T", "120"])
                .args(["-h", "127.0.0.1", "-U", "postgres", "-f"])
                .arg(script)
                .arg("-p")
                .arg(port.to_string())
                .arg("app")
                .output()
        }
    });
    let detection: serde_json::Value = loop {
        let message = tokio::time::timeout(Duration::from_secs(120), detections.next())
            .await
            .expect("a missing_index detection within 120 s")
            .unwrap();
        let detection: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        if detection["detector_name"] == "missing_index" {
            break detection;
        }
    };
    let ttd_s = started.elapsed().as_secs_f64();
    let statement = detection["action_metadata"]["statement"]
        .as_str()
        .unwrap()
        .to_owned();
    eprintln!("detected after {ttd_s:.1} s: {statement}");
    let action_id = format!("act-{}", detection["id"].as_str().unwrap());
    let mut knowledge = stack.knowledge.clone();
    let deadline = Instant::now() + Duration::from_secs(180);
    let verdict = loop {
        let entry = knowledge
            .get_ledger_entry(proto::knowledge::GetLedgerEntryRequest {
                action_id: action_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .entry;
        if let Some(entry) = entry.filter(|e| e.state != "verifying") {
            break entry;
        }
        assert!(
            Instant::now() < deadline,
            "no verification decision within 180 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ttm_s = started.elapsed().as_secs_f64();
    eprintln!(
        "verified after {ttm_s:.1} s: {} ({})",
        verdict.state, verdict.reason
    );
    // Actions other than this index: none should exist on this workload.
    let false_actions = knowledge
        .list_actions(proto::knowledge::ListActionsRequest {
            database_id: "app".into(),
            status: String::new(),
            limit: 100,
        })
        .await
        .unwrap()
        .into_inner()
        .actions
        .iter()
        .filter(|a| a.id != action_id)
        .count();
    executor.stop().await;
    stack.shutdown.trigger();
    drop(stack);
    // pgbench runs out its 120 s; its TPS is not used.
    let _ = load.await;
    // The comparisons below build their own indexes.
    pg.psql(
        "app",
        "DO $$ DECLARE i record; BEGIN FOR i IN SELECT indexrelid::regclass AS name \
         FROM pg_index WHERE indrelid = 'posts'::regclass AND NOT indisprimary LOOP \
         EXECUTE 'DROP INDEX ' || i.name; END LOOP; END $$",
    );

    let mut after = Vec::new();
    let mut after_p95 = Vec::new();
    let mut ideal = Vec::new();
    let mut user_id_only = Vec::new();
    let states: [(&str, &str); 3] = [
        ("advisor", statement.as_str()),
        (
            "ideal",
            "CREATE INDEX posts_ideal ON posts (user_id, created_at DESC)",
        ),
        ("user_id", "CREATE INDEX posts_user_id ON posts (user_id)"),
    ];
    run(5); // warm-up, with the caches as the last pgbench left them
    for round in 0..2 {
        let order: Vec<_> = if round == 0 {
            states.iter().collect()
        } else {
            states.iter().rev().collect()
        };
        for (label, create) in order {
            pg.psql("app", create);
            pg.psql("app", "ANALYZE posts");
            let (tps, p95) = run(SECONDS);
            eprintln!("{label}: {tps:.1} tps, p95 {p95:.2} ms");
            match *label {
                "advisor" => {
                    after.push(tps);
                    after_p95.push(p95);
                }
                "ideal" => ideal.push(tps),
                _ => user_id_only.push(tps),
            }
            pg.psql(
                "app",
                "DO $$ DECLARE i record; BEGIN FOR i IN SELECT indexrelid::regclass AS name \
                 FROM pg_index WHERE indrelid = 'posts'::regclass AND NOT indisprimary LOOP \
                 EXECUTE 'DROP INDEX ' || i.name; END LOOP; END $$",
            );
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (tps_after, tps_ideal, tps_user_id) = (mean(&after), mean(&ideal), mean(&user_id_only));
    let p95_after_ms = mean(&after_p95);

    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let result = serde_json::json!({
        "benchmark": "s1",
        "unix_time": stamp,
        "rows": ROWS,
        "pgbench": format!("-M prepared -c {CLIENTS} -j 2 -T {SECONDS}, S1's statement"),
        "collection_interval_s": 5,
        "ttd_s": ttd_s,
        "ttm_s": ttm_s,
        "verification": {"state": verdict.state, "reason": verdict.reason},
        "p95_before_ms": p95_before_ms,
        "p95_after_ms": p95_after_ms,
        "false_actions": false_actions,
        "advisor_statement": statement,
        "advisor_method": detection["evidence"]["method"],
        "estimated_time_saved_ms_per_day": detection["evidence"]["estimated_time_saved_ms_per_day"],
        "tps_before": tps_before,
        "tps_after": tps_after,
        "tps_ideal": tps_ideal,
        "tps_user_id_only": tps_user_id,
        "after_over_ideal": tps_after / tps_ideal,
        "runs": {"after": after, "ideal": ideal, "user_id_only": user_id_only},
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{stamp}-s1.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    println!("| S1, {ROWS} rows, pgbench -c {CLIENTS} | value |\n|---|---|");
    println!("| ttd_s (5 s interval) | {ttd_s:.1} |");
    println!("| ttm_s (index built and verified) | {ttm_s:.1} |");
    println!("| p95 before / after (ms) | {p95_before_ms:.2} / {p95_after_ms:.2} |");
    println!("| false actions | {false_actions} |");
    println!("| tps_before (no index) | {tps_before:.1} |");
    println!("| tps_after (advisor's index) | {tps_after:.1} |");
    println!("| tps_ideal (hand-made (user_id, created_at DESC)) | {tps_ideal:.1} |");
    println!("| tps with (user_id) only | {tps_user_id:.1} |");
    println!("| after / ideal | {:.3} |", tps_after / tps_ideal);
    println!("\nadvisor: {statement}\nwritten to {}", path.display());
}

/// The 95th percentile of transaction latency in the pgbench -l logs of `dir`, in ms.
fn p95_ms(dir: &std::path::Path) -> f64 {
    let mut latencies: Vec<f64> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.parse::<f64>().ok())
            {
                latencies.push(us / 1000.0);
            }
        }
    }
    if latencies.is_empty() {
        return f64::NAN;
    }
    latencies.sort_by(f64::total_cmp);
    latencies[((latencies.len() - 1) as f64 * 0.95) as usize]
}
