//! Scenarios end to end (SCENARIOS.md), asserted the way a user sees them: through the gateway's
//! HTTP API (`/detections`, `/actions`, `/ledger` and the live `/events` stream), with the
//! whole stack running in autonomous mode against a private PostgreSQL cluster.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::knowledge::{DetectionThresholds, SystemConfig};
use serde_json::Value;
use sqlx::{Connection, Executor};

use crate::stack::{self, Live, Stack, eventually};

/// The stack's collection interval (`Stack::start`).
const INTERVAL: Duration = Duration::from_secs(1);

fn autonomous(thresholds: DetectionThresholds) -> SystemConfig {
    crate::execution_mode("autonomous", thresholds)
}

/// A client session that runs a short statement every 50 ms until stopped: an innocent
/// bystander whose every statement must succeed.
struct Bystander {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Option<String>)>,
}

impl Bystander {
    async fn start(url: String) -> Self {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut ok = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let id = 1 + (ok % 1000) as i32;
                if let Err(e) = sqlx::query("SELECT balance FROM accounts WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut conn)
                    .await
                {
                    return (ok, Some(e.to_string()));
                }
                ok += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (ok, None)
        });
        Self { stop, task }
    }

    /// Stops it; panics unless every statement succeeded.
    async fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (ok, error) = self.task.await.unwrap();
        assert!(error.is_none(), "a bystander's statement failed: {error:?}");
        assert!(ok > 10, "the bystander ran only {ok} statements");
        ok
    }
}

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

fn unix_us(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

// ------------------------------------------------------------------ S3

/// S3: a session left idle in a REPEATABLE READ transaction holds back the xmin horizon, so a
/// table's dead tuples cannot be reclaimed. The bloat is detected naming the holder; the holder
/// is terminated once idle past the threshold (the policy: `idle_transaction_seconds`); the
/// VACUUM runs after that and reclaims every dead tuple, and the ledger says how many. Nothing
/// else is touched.
#[tokio::test]
async fn s3_bloat_behind_an_xmin_holder_the_holder_is_ended_then_vacuum_reclaims_it_all() {
    const IDLE_SECONDS: f64 = 8.0;
    let pg = crate::app_database();
    pg.psql(
        "app",
        "CREATE ROLE shop LOGIN; GRANT ALL ON accounts TO shop; \
         CREATE TABLE events (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = off); \
         INSERT INTO events SELECT g, repeat('x', 50) FROM generate_series(1, 30000) g; \
         GRANT ALL ON events TO shop;",
    );
    let state = tempfile::tempdir().unwrap();
    let stack = Stack::start(
        autonomous(DetectionThresholds {
            idle_transaction_seconds: IDLE_SECONDS,
            ..Default::default()
        }),
        ("app", pg.url("app")),
    )
    .await;
    let executor = stack.start_executor(state.path()).await;
    let gateway = stack.start_gateway(&executor.grpc_addr, state.path()).await;
    let api = gateway.api();
    let live = Live::open(&api).await;

    // Bystanders: a session sitting idle (not in a transaction) and one running statements.
    let mut idle_bystander = sqlx::PgConnection::connect(&pg.url_as("shop", "app"))
        .await
        .unwrap();
    let idle_bystander_pid = backend_pid(&mut idle_bystander).await;
    let busy_bystander = Bystander::start(pg.url_as("shop", "app")).await;

    // The holder takes its snapshot, then later transactions age the horizon and delete a third
    // of the table: those dead tuples are still visible to the holder.
    let mut holder = sqlx::PgConnection::connect(&pg.url_as("shop", "app"))
        .await
        .unwrap();
    let holder_pid = backend_pid(&mut holder).await;
    holder
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .await
        .unwrap();
    let idle_since = Instant::now();
    pg.psql(
        "app",
        "DO $$ BEGIN FOR i IN 1..200 LOOP \
           UPDATE accounts SET balance = balance + 1 WHERE id = 2; COMMIT; \
         END LOOP; END $$",
    );
    pg.psql("app", "DELETE FROM events WHERE id % 3 = 0");

    // Detected, naming the holder: listed by /detections while it is active.
    let names_holder = |d: &Value| {
        d["detector_name"] == "table_bloat"
            && d["evidence"]["table_name"] == "public.events"
            && d["evidence"]["xmin_holder"]["pid"] == holder_pid
    };
    let bloat = eventually(
        "/detections lists the bloat naming the holder",
        Duration::from_secs(30),
        || async {
            let active = api.get("/detections?database_id=app").await;
            stack::list(&active)
                .into_iter()
                .find(|d| names_holder(d))
                .ok_or(active.to_string())
        },
    )
    .await;
    assert_eq!(bloat["action_type"], "vacuum_table", "{bloat}");
    assert_eq!(
        bloat["evidence"]["xmin_holder"]["kind"], "session",
        "{bloat}"
    );
    assert_eq!(
        bloat["action_metadata"]["blocked_by_xmin_holder"], true,
        "{bloat}"
    );
    assert!(
        bloat["description"]
            .as_str()
            .unwrap()
            .contains(&format!("session {holder_pid}")),
        "{bloat}"
    );
    let bloat_id = bloat["id"].as_str().unwrap().to_owned();
    let vacuum_id = format!("act-{bloat_id}");

    // The holder is ended once idle past the threshold, and only then does the VACUUM run.
    let actions = eventually(
        "the terminate and the vacuum completed",
        Duration::from_secs(40),
        || async {
            let actions = api.get("/actions?database_id=app").await;
            let done = stack::list(&actions)
                .iter()
                .filter(|a| a["status"] == "completed")
                .count();
            (done >= 2)
                .then_some(stack::list(&actions))
                .ok_or(actions.to_string())
        },
    )
    .await;
    let types: Vec<&str> = actions
        .iter()
        .map(|a| a["action_type"].as_str().unwrap())
        .collect();
    let terminate = actions
        .iter()
        .find(|a| a["action_type"] == "terminate_query")
        .unwrap_or_else(|| panic!("no terminate_query among {types:?}"));
    let vacuum = actions
        .iter()
        .find(|a| a["action_type"] == "vacuum_table")
        .unwrap_or_else(|| panic!("no vacuum_table among {types:?}"));
    assert_eq!(
        actions.len(),
        2,
        "exactly one terminate and one vacuum: {actions:#?}"
    );
    assert_eq!(vacuum["action_id"], vacuum_id.as_str());
    assert_eq!(terminate["plan"]["pid"], holder_pid, "{terminate}");
    assert_eq!(terminate["plan"]["graceful"], false, "{terminate}");
    assert_eq!(terminate["changes"]["outcome"], "terminated", "{terminate}");
    // Ended by the idle-transaction policy, once past its threshold.
    let holder_text = holder_pid.to_string();
    let idle = live
        .find("detection", |d| {
            d["detector_name"] == "idle_transaction" && d["evidence"]["pid"] == holder_text.as_str()
        })
        .expect("the holder's idle transaction was detected, live");
    assert_eq!(terminate["detection_id"], idle.data["id"], "{terminate}");
    assert!(
        idle.data["evidence"]["duration_secs"].as_f64().unwrap() >= IDLE_SECONDS,
        "ended before its idle threshold: {}",
        idle.data
    );
    assert!(idle.at - idle_since >= Duration::from_secs_f64(IDLE_SECONDS));
    let changes = &vacuum["changes"];
    let dead_before = changes["dead_tuples_before"].as_i64().unwrap();
    assert!(dead_before >= 9_000, "about 10,000 dead tuples: {vacuum}");
    assert_eq!(changes["dead_tuples_after"], 0, "all reclaimed: {vacuum}");
    assert_eq!(changes["tuples_reclaimed"], dead_before, "{vacuum}");
    assert_eq!(changes["blocked_by_xmin_holder"], true, "{vacuum}");

    // In that order on the live stream: the terminate completed before the vacuum did.
    let terminate_done = live
        .wait_for("the terminate's completion, live", |a| {
            a["action_id"] == terminate["action_id"] && a["status"] == "completed"
        })
        .await;
    let vacuum_done = live
        .wait_for("the vacuum's completion, live", |a| {
            a["action_id"] == vacuum["action_id"] && a["status"] == "completed"
        })
        .await;
    assert!(
        terminate_done.at <= vacuum_done.at,
        "the vacuum completed before the holder was ended"
    );
    assert_eq!(
        changes["waited_for_holder"]["pid"], holder_pid,
        "the vacuum waited for the holder: {vacuum}"
    );
    let detectors: Vec<(String, Value)> = live
        .events("detection")
        .iter()
        .map(|e| {
            (
                e.data["detector_name"].as_str().unwrap().to_owned(),
                e.data["evidence"]["table_name"].clone(),
            )
        })
        .collect();
    assert_eq!(
        detectors.len(),
        2,
        "only the bloat and the idle transaction: {detectors:?}"
    );

    // The ledger says how many dead tuples went away.
    let entry = eventually(
        "the vacuum's ledger entry is decided",
        Duration::from_secs(20),
        || async {
            let ledger = api.get("/ledger?database_id=app").await;
            stack::list(&ledger)
                .into_iter()
                .find(|e| e["action_id"] == vacuum_id.as_str() && e["state"] != "verifying")
                .ok_or(ledger.to_string())
        },
    )
    .await;
    assert_eq!(entry["state"], "kept", "{entry}");
    assert_eq!(entry["action_type"], "vacuum_table", "{entry}");
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "dead tuples went from {dead_before} to 0 ({dead_before} reclaimed)"
        )),
        "{entry}"
    );

    // The holder's session is gone; the bystanders are untouched.
    assert!(
        sqlx::query("SELECT 1").execute(&mut holder).await.is_err(),
        "the holder's session was ended"
    );
    let sessions = pg.psql(
        "app",
        &format!(
            "SELECT count(*) FILTER (WHERE pid = {holder_pid}), \
                    count(*) FILTER (WHERE pid = {idle_bystander_pid}) FROM pg_stat_activity"
        ),
    );
    assert_eq!(sessions, "0|1", "holder gone, idle bystander alive");
    sqlx::query("SELECT 1")
        .execute(&mut idle_bystander)
        .await
        .expect("the idle bystander's session is alive");
    busy_bystander.finish().await;

    // Nothing is left active: the bloat verified, the idle transaction gone.
    eventually(
        "no detection is left active",
        Duration::from_secs(15),
        || async {
            let active = api.get("/detections?database_id=app").await;
            stack::list(&active)
                .is_empty()
                .then_some(())
                .ok_or(active.to_string())
        },
    )
    .await;
    // Three more cycles analysed with nothing active: no later action.
    stack.analysed_cycles("app", 3).await;
    let after = api.get("/actions?database_id=app").await;
    assert_eq!(stack::list(&after).len(), 2, "no later action: {after}");
    executor.stop().await;
}

// ------------------------------------------------------------------ S4

/// What became of one runaway statement.
struct Runaway {
    pid: i32,
    started: Instant,
    error: sqlx::Error,
    ended: Instant,
    ended_wall: SystemTime,
    conn: sqlx::PgConnection,
}

/// Runs `sql` on a new session of `url` and waits (at most `limit`) for it to end.
async fn runaway(url: String, sql: &'static str) -> tokio::task::JoinHandle<Runaway> {
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let pid = backend_pid(&mut conn).await;
    tokio::spawn(async move {
        let started = Instant::now();
        let result = sqlx::query(sql).execute(&mut conn).await;
        let (ended, ended_wall) = (Instant::now(), SystemTime::now());
        let error = match result {
            Ok(_) => panic!("{sql} ran to its end"),
            Err(e) => e,
        };
        Runaway {
            pid,
            started,
            error,
            ended,
            ended_wall,
            conn,
        }
    })
}

/// S4: two runaway statements — `pg_sleep(600)` and a CPU-bound four-way cross join — while
/// pgbench runs. Each is detected at the first collection past the threshold and cancelled
/// (not terminated) within one cycle of it: the client gets SQLSTATE 57014 and keeps a usable
/// connection. pgbench and a bystander session are untouched; nothing else is done.
#[tokio::test]
async fn s4_runaway_queries_are_cancelled_within_a_cycle_and_their_sessions_stay_usable() {
    const THRESHOLD: f64 = 6.0;
    let pg = crate::app_database();
    pg.psql(
        "app",
        "CREATE ROLE shop LOGIN; GRANT SELECT ON accounts TO shop",
    );
    let pgbench = testkit::binary("pgbench", "postgresql-15");
    let port = pg.port().to_string();
    let pgbench_args = |extra: &[&str]| {
        let mut command = std::process::Command::new(&pgbench);
        command
            .args(extra)
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p", &port, "app"]);
        command
    };
    let init = pgbench_args(&["-i", "-q", "-s", "1"]).output().unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    let state = tempfile::tempdir().unwrap();
    let stack = Stack::start(
        autonomous(DetectionThresholds {
            long_query_seconds: THRESHOLD,
            ..Default::default()
        }),
        ("app", pg.url("app")),
    )
    .await;
    let executor = stack.start_executor(state.path()).await;
    let gateway = stack.start_gateway(&executor.grpc_addr, state.path()).await;
    let api = gateway.api();
    let live = Live::open(&api).await;

    let mut load = pgbench_args(&["-n", "-S", "-c", "4", "-j", "2", "-R", "400", "-T", "15"]);
    let load = tokio::task::spawn_blocking(move || load.output().unwrap());
    let bystander = Bystander::start(pg.url_as("shop", "app")).await;
    let sleeper = runaway(pg.url_as("shop", "app"), "SELECT pg_sleep(600)").await;
    let joiner = runaway(
        pg.url_as("shop", "app"),
        "SELECT count(*) FROM accounts a, accounts b, accounts c, accounts d",
    )
    .await;

    let limit = Duration::from_secs_f64(THRESHOLD) + Duration::from_secs(20);
    let mut cancelled = Vec::new();
    for (what, task) in [("pg_sleep", sleeper), ("cross join", joiner)] {
        let mut r = tokio::time::timeout(limit, task)
            .await
            .unwrap_or_else(|_| panic!("the {what} was not stopped within {limit:?}"))
            .unwrap();
        let database_error = r
            .error
            .as_database_error()
            .unwrap_or_else(|| panic!("the {what} failed otherwise: {}", r.error));
        assert_eq!(
            database_error.code().as_deref(),
            Some("57014"),
            "{what}: {}",
            r.error
        );
        assert_eq!(
            database_error.message(),
            "canceling statement due to user request",
            "{what}"
        );
        // Cancelled, not terminated: the same session answers.
        assert_eq!(
            backend_pid(&mut r.conn).await,
            r.pid,
            "{what}: the session survived"
        );
        cancelled.push((what, r));
    }

    // Through the gateway: each detected (live) and cancelled by a completed terminate_query.
    let actions = eventually(
        "both cancellations completed",
        Duration::from_secs(15),
        || async {
            let actions = api.get("/actions?database_id=app").await;
            let done = stack::list(&actions)
                .iter()
                .filter(|a| a["status"] == "completed")
                .count();
            (done >= 2)
                .then_some(stack::list(&actions))
                .ok_or(actions.to_string())
        },
    )
    .await;
    assert_eq!(actions.len(), 2, "one action per runaway: {actions:#?}");
    for (what, r) in &cancelled {
        let pid = r.pid.to_string();
        let detection = live
            .find("detection", |d| {
                d["detector_name"] == "long_running_query" && d["evidence"]["pid"] == pid.as_str()
            })
            .unwrap_or_else(|| panic!("no live detection of the {what}"));
        let d = &detection.data;
        assert_eq!(d["action_type"], "terminate_query", "{d}");
        assert_eq!(d["action_metadata"]["graceful"], true, "{d}");
        let action = actions
            .iter()
            .find(|a| a["detection_id"] == d["id"])
            .unwrap_or_else(|| panic!("no action for the {what}'s detection: {actions:#?}"));
        assert_eq!(action["action_type"], "terminate_query", "{action}");
        assert_eq!(action["plan"]["pid"], r.pid, "{action}");
        assert_eq!(action["changes"]["outcome"], "cancelled", "{action}");
        assert_eq!(action["changes"]["method"], "pg_cancel_backend", "{action}");

        // Timing. The collector measured the statement at `detected_wall` (its start plus the
        // duration it saw); the first collection past the threshold fired.
        let seen_secs = d["evidence"]["duration_secs"].as_f64().unwrap();
        assert!(
            seen_secs >= THRESHOLD && seen_secs < THRESHOLD + INTERVAL.as_secs_f64() + 1.0,
            "{what}: detected at {seen_secs:.2} s, not at the first cycle past {THRESHOLD} s"
        );
        let detected_us =
            d["evidence"]["query_start_us"].as_i64().unwrap() + (seen_secs * 1e6) as i64;
        let detection_to_cancel =
            Duration::from_micros((unix_us(r.ended_wall) - detected_us).max(0) as u64);
        let published_to_cancel = r.ended.saturating_duration_since(detection.at);
        let run_time = r.ended - r.started;
        println!(
            "S4 {what}: ran {run_time:.2?} (threshold {THRESHOLD} s); detection (collector's \
             measurement) → cancel {detection_to_cancel:.2?}; gateway's live detection → \
             cancel {published_to_cancel:.2?}"
        );
        let margin = Duration::from_millis(1500);
        assert!(
            detection_to_cancel <= INTERVAL + margin,
            "{what}: cancelled {detection_to_cancel:?} after its detection"
        );
        assert!(
            run_time <= Duration::from_secs_f64(THRESHOLD) + INTERVAL + Duration::from_secs(2),
            "{what}: ran {run_time:?}, more than one cycle past the {THRESHOLD} s threshold"
        );
    }
    // Three more cycles analysed after both were cancelled: nothing else was found or done.
    stack.analysed_cycles("app", 3).await;
    let detections = live.events("detection");
    assert_eq!(
        detections.len(),
        2,
        "only the two runaways were detected: {:#?}",
        detections.iter().map(|e| &e.data).collect::<Vec<_>>()
    );

    // Nothing else touched: pgbench's clients and the bystander ran throughout without an error.
    bystander.finish().await;
    let output = load.await.unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench: {report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("number of failed transactions: 0"),
        "{report}"
    );
    let after = api.get("/actions?database_id=app").await;
    assert_eq!(stack::list(&after).len(), 2, "no later action: {after}");
    executor.stop().await;
}
