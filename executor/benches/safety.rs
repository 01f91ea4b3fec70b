//! B-safety (run by `make bench`, not by `make test`): the executor's `CREATE INDEX
//! CONCURRENTLY` on a busy 1M-row table. pgbench clients update and read the table by primary
//! key throughout; we record every client transaction's latency (pgbench -l) and sample
//! pg_stat_activity every 20 ms for sessions waiting on a lock.
//!
//! * `max_lock_wait_ms` — the longest a client session was seen waiting on a heavyweight lock
//!   while the index was built;
//! * `p99/max_latency_ms` of client transactions before the build and during it.
//!
//! Writes `bench/results/<UTC timestamp>-safety.json` and prints a markdown table.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use executor::actions::deploy::Deploy;
use executor::actions::terminate::Policy;
use executor::actions::{Context, Plan, PlanExt};
use executor::databases::Database;
use proto::events::Detection;
use serde_json::json;
use testkit::PgCluster;

const ROWS: u32 = 1_000_000;
const CLIENTS: u32 = 4;
const SCRIPT: &str = "\\set id random(1, 1000000)\n\
    UPDATE posts SET title = 'edited' WHERE id = :id;\n\
    SELECT * FROM posts WHERE id = :id;\n";

#[tokio::main]
async fn main() {
    let pg = PgCluster::start_with(&[("max_connections", "50")]);
    pg.create_database("app");
    eprintln!("loading {ROWS} rows...");
    pg.psql(
        "app",
        &format!(
            "CREATE TABLE posts (id int PRIMARY KEY, user_id int NOT NULL, title text, \
                                 created_at timestamptz NOT NULL); \
             INSERT INTO posts SELECT g, 1 + (random() * 999)::int, 'title ' || g, \
                    now() - g * interval '1 second' FROM generate_series(1, {ROWS}) g;"
        ),
    );
    pg.psql("app", "VACUUM ANALYZE posts");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("load.sql");
    std::fs::write(&script, SCRIPT).unwrap();
    let pgbench = testkit::binary("pgbench", "postgresql-15");
    let started = Instant::now();
    let load = std::process::Command::new(&pgbench)
        .current_dir(dir.path())
        .args([
            "-n",
            "-j",
            "2",
            "-T",
            "30",
            "-l",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .arg("-c")
        .arg(CLIENTS.to_string())
        .arg("-f")
        .arg(&script)
        .arg("-p")
        .arg(pg.port().to_string())
        .arg("app")
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;

    // Sample lock waits while the executor builds the index.
    let sampler_pool = sqlx::PgPool::connect(&pg.url("app")).await.unwrap();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut max_wait_ms: f64 = 0.0;
            while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                let wait: Option<f64> = sqlx::query_scalar(
                    "SELECT max(extract(epoch FROM clock_timestamp() - state_change) * 1000)::float8 \
                     FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                     AND application_name = 'pgbench'",
                )
                .fetch_one(&sampler_pool)
                .await
                .unwrap();
                max_wait_ms = max_wait_ms.max(wait.unwrap_or(0.0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            max_wait_ms
        })
    };
    let plan = Plan::from_detection(&Detection {
        id: "d".into(),
        database_id: "db".into(),
        action_type: "create_index".into(),
        action_metadata: Some(json!({"schema": "public", "table_name": "posts",
            "index_name": "idx_posts_user_id_created_at",
            "columns": [{"name": "user_id"}, {"name": "created_at", "descending": true}]})),
        ..Default::default()
    })
    .unwrap();
    let context = Context {
        database: Some(Database::connect("db", &pg.url("app")).unwrap()),
        timeout: Duration::from_secs(300),
        state_dir: dir.path().to_owned(),
        deploy: Deploy::Process,
        action_id: "bench".into(),
        policy: Policy::default(),
        stop: Default::default(),
    };
    let build_start = started.elapsed().as_secs_f64();
    let result = plan.execute(&context).await.unwrap();
    let build_end = started.elapsed().as_secs_f64();
    sampling.store(false, std::sync::atomic::Ordering::SeqCst);
    let max_lock_wait_ms = sampler.await.unwrap();
    let output = load.wait_with_output().unwrap();
    assert!(output.status.success(), "pgbench failed");

    // pgbench -l: one line per transaction: client tx latency_us script_no epoch epoch_us.
    let mut before = Vec::new();
    let mut during = Vec::new();
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - started.elapsed().as_secs_f64();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pgbench_log")
        {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(latency), Some(sec), Some(usec)) = (f.get(2), f.get(4), f.get(5)) else {
                continue;
            };
            let latency_ms = latency.parse::<f64>().unwrap() / 1000.0;
            let at = sec.parse::<f64>().unwrap() + usec.parse::<f64>().unwrap() / 1e6 - t0;
            if at < build_start {
                before.push(latency_ms);
            } else if at <= build_end {
                during.push(latency_ms);
            }
        }
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * p) as usize]
    };
    let (p99_before, max_before) = (pct(&mut before, 0.99), pct(&mut before, 1.0));
    let (p99_during, max_during) = (pct(&mut during, 0.99), pct(&mut during, 1.0));
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let result = serde_json::to_value(&result).unwrap();
    let report = json!({
        "benchmark": "safety",
        "unix_time": stamp,
        "rows": ROWS,
        "pgbench": format!("-c {CLIENTS} -j 2: UPDATE + SELECT by primary key"),
        "statement": result["statement"],
        "build_ms": result["build_ms"],
        "max_lock_wait_ms": max_lock_wait_ms,
        "p99_latency_ms_before": p99_before,
        "max_latency_ms_before": max_before,
        "p99_latency_ms_during": p99_during,
        "max_latency_ms_during": max_during,
        "transactions_before": before.len(),
        "transactions_during": during.len(),
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join(format!("{stamp}-safety.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!(
        "| B-safety: CREATE INDEX CONCURRENTLY on {ROWS} rows under pgbench -c {CLIENTS} | value |\n|---|---|"
    );
    println!("| build_ms | {} |", result["build_ms"]);
    println!("| max_lock_wait_ms (clients, sampled every 20 ms) | {max_lock_wait_ms:.1} |");
    println!("| p99 / max latency before (ms) | {p99_before:.2} / {max_before:.2} |");
    println!("| p99 / max latency during (ms) | {p99_during:.2} / {max_during:.2} |");
    println!("\nwritten to {}", path.display());
}
