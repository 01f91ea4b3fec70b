//! B-scale load (run by `make bench`, not by `make test`): the five services as their release
//! binaries, each its own process, against real Redis, NATS and one private PostgreSQL cluster
//! (`max_connections` 5000, so the collector's own sessions stay far from the connection
//! detector's 80 %), in observe mode (detections are published, nothing is executed).
//!
//! 1. **One collector, many databases**, at `COLLECTION_INTERVAL=10s`: 100 databases of the one
//!    cluster (`db000` has 50 tables and 50 distinct statements; `db001`–`db019` run a light mix
//!    of reads and writes; the rest are idle copies of a 4-table schema), then 200, 400 and 1,000
//!    while every database still fits. A database fits when each of its cycles in the measured window
//!    took less than the interval (`cycle_ms` and `cycles` of the collector's `/health`, polled
//!    every 2 s) and its snapshots reached the analyser at least every 1.5 intervals (no tick
//!    skipped). Snapshots pass through a counting relay in this process on their way to the
//!    analyser process, which receives them all.
//! 2. **The analyser alone**: `db000`'s real snapshot, as the collector sent it, replayed straight
//!    to the analyser's `MetricsService` as 1,000 databases, counters scaled 0.6–1.4×, one in ten
//!    with a session idle in a transaction for an hour (a problem found in every one of its
//!    snapshots: registered in knowledge and published on JetStream once, found again after).
//!    Snapshots per second on one stream (what one collector's stream gets: a stream is processed
//!    in order) and on four concurrent streams, the analyser's processor time per snapshot, and
//!    the latency of a snapshot sent on a stream of its own (stream set-up included).
//! 3. **`rss_mb`**: VmRSS of each service process at the end of the 100-database window (VmHWM
//!    beside it), and at the end of each larger step. **`analyser_rss_mb_1000db`**: the
//!    analyser's VmRSS after every one of the 1,000 replayed databases sent it 30 snapshots (10 s
//!    apart in their own time), with the figure after 15 beside it: flat means bounded.
//!
//! 4. Beside the figures measured from outside, each service's own: the collector's cycles and
//!    snapshot sizes per step, the analyser's snapshots and time per snapshot during the replay,
//!    from their Prometheus `/metrics`.
//!
//! Needs the release binaries (`cargo build --release --bins`, which `make bench` runs first).
//! Writes `bench/results/<unix time>-load.json` and prints a markdown table. The machine is
//! shared: the numbers are as measured, nothing here asserts a timing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use proto::knowledge::{RegisterDatabaseRequest, SaveSystemConfigRequest, SystemConfig};
use proto::metrics::metrics_service_client::MetricsServiceClient;
use proto::metrics::metrics_service_server::{MetricsService, MetricsServiceServer};
use proto::metrics::{DatabaseInfo, MetricSnapshot, MetricsAck, RegistrationAck, SessionInfo};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use testkit::{NatsServer, PgCluster, RedisServer};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

const INTERVAL: Duration = Duration::from_secs(10);
/// Databases watched at each step; the next step runs only when every database fitted.
const STEPS: [usize; 4] = [100, 200, 400, 1_000];
/// How long each step is measured, after every database has completed two cycles.
const WINDOW_FIRST: Duration = Duration::from_secs(60);
const WINDOW_NEXT: Duration = Duration::from_secs(40);
/// Longest gap between two snapshots of one database that still means no tick was skipped.
const MAX_GAP: Duration = Duration::from_millis(15_000);
const HEALTH_POLL: Duration = Duration::from_secs(2);
/// `db000` (wide) and `db001`..`db019` (light mix) run a load; the others are idle.
const LOADED: usize = 20;
const WIDE: &str = "db000";
const WIDE_TABLES: usize = 50;
const SERVICES: [&str; 5] = ["knowledge", "analyser", "executor", "collector", "gateway"];
/// Snapshot variants replayed to the analyser (one database id each).
const VARIANTS: usize = 1_000;
/// Rounds of every variant for the analyser's memory: RSS after each of these many rounds (a
/// round is one snapshot of each database, 10 s apart in the snapshots' own time), so enough to
/// fill whatever it keeps per database, and as many again to see whether it keeps growing.
const MEMORY_ROUNDS: [usize; 2] = [15, 30];
/// One variant in this many carries a problem (a session idle in a transaction for an hour): its
/// detection is registered and published once, then found again in every snapshot.
const PROBLEM_EVERY: usize = 10;
const LATENCY_SAMPLES: usize = 500;
const THROUGHPUT_RUN: Duration = Duration::from_secs(10);
const CONCURRENT_STREAMS: usize = 4;

#[tokio::main]
async fn main() {
    let bin = release_binaries();
    let started = Instant::now();
    // The collector holds up to two sessions per database: 1,000 databases take ~2,030. The
    // connection detector fires at 80 % of max_connections, on every database of the cluster,
    // and would measure the agent's reaction to the benchmark's own sessions instead of its load.
    let pg = PgCluster::start_with(&[
        ("max_connections", "5000"),
        ("pg_stat_statements.max", "10000"),
    ]);
    prepare_templates(&pg);
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.url("postgres"))
        .await
        .unwrap();

    // The services, each its own process.
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    // The services' logs (and state) are kept, to read after a surprising number.
    let logs = tempfile::Builder::new()
        .prefix("bench-load-")
        .tempdir()
        .unwrap()
        .keep();
    eprintln!("service logs in {}", logs.display());
    let port = testkit::free_port;
    let (k_grpc, k_health, a_grpc, a_health) = (port(), port(), port(), port());
    let (e_grpc, e_health, e_http) = (port(), port(), port());
    let (c_health, g_http, relay_port) = (port(), port(), port());
    let knowledge_addr = format!("127.0.0.1:{k_grpc}");
    let analyser_addr = format!("127.0.0.1:{a_grpc}");
    let state = logs.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let s = |v: &str| v.to_owned();
    let mut services: BTreeMap<&'static str, Service> = BTreeMap::new();
    services.insert(
        "knowledge",
        Service::start(
            "knowledge",
            &bin,
            &logs,
            k_health,
            vec![
                ("GRPC_PORT", k_grpc.to_string()),
                ("HEALTH_PORT", k_health.to_string()),
                ("REDIS_ADDR", redis.addr()),
                (
                    "KNOWLEDGE_KEY_FILE",
                    state.join("knowledge.key").display().to_string(),
                ),
            ],
        )
        .await,
    );
    services.insert(
        "analyser",
        Service::start(
            "analyser",
            &bin,
            &logs,
            a_health,
            vec![
                ("GRPC_PORT", a_grpc.to_string()),
                ("HEALTH_PORT", a_health.to_string()),
                ("KNOWLEDGE_ADDRESS", knowledge_addr.clone()),
                ("NATS_URL", nats.url()),
            ],
        )
        .await,
    );
    services.insert(
        "executor",
        Service::start(
            "executor",
            &bin,
            &logs,
            e_health,
            vec![
                ("GRPC_PORT", e_grpc.to_string()),
                ("HEALTH_PORT", e_health.to_string()),
                ("HTTP_PORT", e_http.to_string()),
                ("KNOWLEDGE_ADDRESS", knowledge_addr.clone()),
                ("NATS_URL", nats.url()),
                ("STATE_DIR", state.join("executor").display().to_string()),
                ("EXECUTOR_ID", s("executor-1")),
            ],
        )
        .await,
    );
    services.insert(
        "gateway",
        Service::start(
            "gateway",
            &bin,
            &logs,
            g_http,
            vec![
                ("PORT", g_http.to_string()),
                ("KNOWLEDGE_ADDRESS", knowledge_addr.clone()),
                ("EXECUTOR_ADDRESS", format!("127.0.0.1:{e_grpc}")),
                ("NATS_URL", nats.url()),
                ("GATEWAY_TOKEN", s("bench-token-0123456789abcdef")),
                ("STATE_DIR", state.join("gateway").display().to_string()),
                (
                    "COLLECTOR_HEALTH_URL",
                    format!("http://127.0.0.1:{c_health}/health"),
                ),
                (
                    "ANALYSER_HEALTH_URL",
                    format!("http://127.0.0.1:{a_health}/health"),
                ),
            ],
        )
        .await,
    );

    // The collector streams to the relay, which counts and forwards to the analyser.
    let seen = Seen::default();
    let relay = Relay {
        analyser: proto::clients::metrics(&analyser_addr).unwrap(),
        seen: seen.clone(),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(relay))
            .serve(([127, 0, 0, 1], relay_port).into()),
    );

    let mut knowledge = proto::clients::knowledge(&knowledge_addr).unwrap();
    // Observe mode: detections are registered and published, nothing is executed on the
    // benchmark's databases (no VACUUM, no PgBouncer left behind).
    knowledge
        .save_system_config(SaveSystemConfigRequest {
            config: Some(SystemConfig {
                execution_mode: "observe".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut created = 0;
    create_databases(&admin, &mut created, STEPS[0]).await;
    register(&mut knowledge, &pg, 0, STEPS[0]).await;
    let stop_load = Arc::new(AtomicBool::new(false));
    let load = start_load(&pg, stop_load.clone()).await;
    services.insert(
        "collector",
        Service::start(
            "collector",
            &bin,
            &logs,
            c_health,
            vec![
                ("HEALTH_PORT", c_health.to_string()),
                ("KNOWLEDGE_ADDRESS", knowledge_addr.clone()),
                ("ANALYSER_ADDRESS", format!("127.0.0.1:{relay_port}")),
                ("NATS_URL", nats.url()),
                ("COLLECTION_INTERVAL", s("10s")),
                ("SYNC_INTERVAL", s("5s")),
                ("COLLECTOR_ID", s("collector-1")),
            ],
        )
        .await,
    );
    let health = HealthPoller::start(format!("http://127.0.0.1:{c_health}/health"));

    // 1. Steps of 100, 200, 400 databases.
    let mut steps: Vec<Step> = Vec::new();
    for (n, &count) in STEPS.iter().enumerate() {
        if n > 0 {
            if steps.last().is_some_and(|s| s.fitting < s.databases) {
                break;
            }
            eprintln!("adding databases up to {count}...");
            create_databases(&admin, &mut created, count).await;
            register(&mut knowledge, &pg, STEPS[n - 1], count).await;
        }
        let ids: Vec<String> = (0..count).map(name).collect();
        eprintln!("{count} databases: waiting until each has completed two cycles...");
        let warm = health
            .wait_for_cycles(&ids, 2, Duration::from_secs(120))
            .await;
        if !warm {
            eprintln!("  not every database completed two cycles within 120 s; measuring anyway");
        }
        let window = if n == 0 { WINDOW_FIRST } else { WINDOW_NEXT };
        let cycles_before = Exposition::read(c_health).await;
        let t0 = Instant::now();
        eprintln!("  measuring for {} s...", window.as_secs());
        tokio::time::sleep(window).await;
        // One more poll, so cycles completed just before the window's end are seen.
        tokio::time::sleep(HEALTH_POLL + Duration::from_millis(200)).await;
        let t1 = t0 + window;
        let cycles_after = Exposition::read(c_health).await;
        let connections: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity")
            .fetch_one(&admin)
            .await
            .unwrap();
        let rss: BTreeMap<&str, (f64, f64)> =
            services.iter().map(|(n, s)| (*n, s.memory_mb())).collect();
        let mut step = Step::analyse(
            &ids,
            t0,
            t1,
            &health.observations(),
            &health.statuses(),
            &seen.arrivals(),
            connections,
            rss,
        );
        step.from_metrics = collector_figures(&cycles_before, &cycles_after);
        eprintln!(
            "  {} / {} fit; cycle p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms; {:.1} snapshots per 10 s; \
             {} PostgreSQL sessions",
            step.fitting,
            step.databases,
            step.cycle_ms_p50,
            step.cycle_ms_p95,
            step.cycle_ms_max,
            step.snapshots_per_10s,
            connections
        );
        eprintln!("  collector's /metrics: {}", step.from_metrics);
        for (service, (rss, hwm)) in &step.rss_mb {
            eprintln!("  {service}: {rss:.1} MB resident (peak {hwm:.1})");
        }
        steps.push(step);
    }
    health.stop();

    // 2. The analyser alone, with the collector and the load stopped.
    services.get_mut("collector").unwrap().kill();
    stop_load.store(true, Ordering::SeqCst);
    for task in load {
        let _ = task.await;
    }
    let wide = seen
        .wide
        .lock()
        .unwrap()
        .clone()
        .expect("a windowed snapshot of db000 reached the relay");
    let detail = wide.postgres.clone().unwrap_or_default();
    eprintln!(
        "replaying db000's snapshot: {} tables, {} indexes, {} statements",
        detail.tables.len(),
        detail.indexes.len(),
        detail.top_statements.len()
    );
    let variants: Arc<Vec<MetricSnapshot>> = Arc::new(
        (0..VARIANTS)
            .map(|k| {
                let mut variant =
                    vary(&wide, &name(k), 0.6 + 0.8 * ((k * 37) % 100) as f64 / 100.0);
                if k % PROBLEM_EVERY == 0 {
                    with_idle_transaction(&mut variant, k);
                }
                variant
            })
            .collect(),
    );
    let published_before = published(&logs);
    let analysed_before = Exposition::read(a_health).await;
    let replay = replay(
        &analyser_addr,
        services["analyser"].child.id(),
        variants.clone(),
    )
    .await;
    let analysed = analyser_figures(&analysed_before, &Exposition::read(a_health).await);
    eprintln!("analyser's /metrics during the replay: {analysed}");
    let published_replay = published(&logs) - published_before;
    let analyser_after = services["analyser"].memory_mb();
    let memory = memory_over_rounds(
        &analyser_addr,
        services["analyser"].child.id(),
        variants.clone(),
    )
    .await;
    for (rounds, mb) in &memory {
        eprintln!("analyser: {mb:.1} MB resident after {rounds} rounds of {VARIANTS} databases");
    }
    eprintln!(
        "analyser: {:.0} snapshots/s on one stream, {:.0} on {CONCURRENT_STREAMS}; \
         latency p50 {:.2} ms, p99 {:.2} ms",
        replay.one_stream, replay.concurrent, replay.p50_ms, replay.p99_ms
    );

    // The result.
    let first = &steps[0];
    let fitted = steps
        .iter()
        .filter(|s| s.fitting == s.databases)
        .map(|s| s.databases)
        .max();
    let lower_bound = steps.last().is_some_and(|s| s.fitting == s.databases);
    let rss_mb: BTreeMap<&str, f64> = first.rss_mb.iter().map(|(k, v)| (*k, v.0)).collect();
    let rss_hwm_mb: BTreeMap<&str, f64> = first.rss_mb.iter().map(|(k, v)| (*k, v.1)).collect();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let result = json!({
        "benchmark": "load",
        "unix_time": stamp,
        "collection_interval_s": INTERVAL.as_secs(),
        "databases_per_collector_10s": fitted.unwrap_or(first.fitting),
        "databases_per_collector_10s_is_lower_bound": lower_bound,
        "databases_fitting_at_100": first.fitting,
        "collector_cycle_ms_p50_100db": first.cycle_ms_p50,
        "collector_cycle_ms_p95_100db": first.cycle_ms_p95,
        "collector_cycle_ms_max_100db": first.cycle_ms_max,
        "analyser_snapshots_per_10s_100db": first.snapshots_per_10s,
        "rss_mb": rss_mb,
        "rss_hwm_mb": rss_hwm_mb,
        "analyser_snapshots_per_s": replay.concurrent,
        "analyser_snapshots_per_s_one_stream": replay.one_stream,
        "analyser_streams": CONCURRENT_STREAMS,
        "analyser_latency_ms_p50": replay.p50_ms,
        "analyser_latency_ms_p99": replay.p99_ms,
        "analyser_cpu_ms_per_snapshot": replay.cpu_ms_per_snapshot,
        "analyser_metrics_during_replay": analysed,
        "analyser_rss_mb_after_replay": analyser_after.0,
        "analyser_rss_mb_1000db": memory.last().map(|(_, mb)| *mb),
        "analyser_rss_mb_1000db_by_rounds": memory
            .iter()
            .map(|(rounds, mb)| json!({"rounds": rounds, "rss_mb": mb}))
            .collect::<Vec<_>>(),
        "detections_published_during_load": published_before,
        "detections_published_during_replay": published_replay,
        "replayed_snapshot": {
            "tables": detail.tables.len(),
            "indexes": detail.indexes.len(),
            "statements": detail.top_statements.len(),
            "variants": VARIANTS,
            "with_an_idle_transaction": VARIANTS / PROBLEM_EVERY,
        },
        "steps": steps.iter().map(Step::to_json).collect::<Vec<_>>(),
        "load": format!(
            "{WIDE}: {WIDE_TABLES} tables, {WIDE_TABLES} statements in a loop; db001-{}: \
             5 statements every 200 ms; the rest idle",
            name(LOADED - 1)
        ),
        "runtime_s": started.elapsed().as_secs(),
    });
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{stamp}-load.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap() + "\n").unwrap();

    println!("| load, one collector at a 10 s interval | value |\n|---|---|");
    for step in &steps {
        println!(
            "| {} databases: fitting / cycle p50, p95, max (ms) / snapshots per 10 s | {} / {:.0}, {:.0}, {:.0} / {:.1} |",
            step.databases,
            step.fitting,
            step.cycle_ms_p50,
            step.cycle_ms_p95,
            step.cycle_ms_max,
            step.snapshots_per_10s
        );
    }
    println!(
        "| analyser snapshots/s: one stream / {CONCURRENT_STREAMS} streams | {:.0} / {:.0} |",
        replay.one_stream, replay.concurrent
    );
    println!(
        "| analyser latency per snapshot p50 / p99 (ms) | {:.2} / {:.2} |",
        replay.p50_ms, replay.p99_ms
    );
    for (service, mb) in &rss_mb {
        println!("| RSS {service} at 100 databases (MB) | {mb:.1} |");
    }
    for (rounds, mb) in &memory {
        println!(
            "| RSS analyser, {VARIANTS} databases replayed, after {rounds} snapshots each (MB) | {mb:.1} |"
        );
    }
    println!("\nwritten to {}", path.display());
    drop(services);
}

/// The directory of the release binaries (`make bench` builds them first with
/// `cargo build --release --bins`), so the services run as users run them.
fn release_binaries() -> PathBuf {
    // This benchmark runs from <target>/release/deps.
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_owned();
    for service in SERVICES {
        let binary = dir.join(service);
        assert!(
            binary.exists(),
            "{} is missing: run `cargo build --release --bins` first (`make bench` does)",
            binary.display()
        );
    }
    dir
}

fn name(index: usize) -> String {
    format!("db{index:03}")
}

/// `tmpl` (the 4-table schema of most databases) and `db000` (50 tables).
fn prepare_templates(pg: &PgCluster) {
    pg.create_database("tmpl");
    pg.psql(
        "tmpl",
        "CREATE EXTENSION pg_stat_statements; \
         CREATE TABLE customers (id int PRIMARY KEY, name text, email text); \
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, total numeric, \
                              created_at timestamptz NOT NULL); \
         CREATE INDEX orders_customer ON orders (customer_id); \
         CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL, sku text, qty int); \
         CREATE TABLE events (id bigserial PRIMARY KEY, kind text, payload jsonb, at timestamptz); \
         INSERT INTO customers SELECT g, 'customer ' || g, g || '@example.com' \
           FROM generate_series(1, 1000) g; \
         INSERT INTO orders SELECT g, 1 + g % 1000, g % 97, now() - g * interval '1 minute' \
           FROM generate_series(1, 3000) g; \
         INSERT INTO items SELECT g, 1 + g % 3000, 'sku-' || g % 50, g % 7 \
           FROM generate_series(1, 5000) g;",
    );
    pg.psql("tmpl", "VACUUM ANALYZE");
    pg.create_database(WIDE);
    pg.psql(
        WIDE,
        &format!(
            "CREATE EXTENSION pg_stat_statements; \
             DO $$ BEGIN FOR i IN 1..{WIDE_TABLES} LOOP \
               EXECUTE format('CREATE TABLE w%s (id int PRIMARY KEY, v int, note text)', i); \
               EXECUTE format('INSERT INTO w%s SELECT g, g %% 100, md5(g::text) \
                               FROM generate_series(1, 500) g', i); \
             END LOOP; END $$;"
        ),
    );
    pg.psql(WIDE, "VACUUM ANALYZE");
}

/// Creates `db<created>`..`db<to - 1>` from the template (`db000` already exists).
async fn create_databases(admin: &PgPool, created: &mut usize, to: usize) {
    let begun = Instant::now();
    let from = (*created).max(1);
    for i in from..to {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE {} TEMPLATE tmpl",
            name(i)
        )))
        .execute(admin)
        .await
        .unwrap();
    }
    *created = to;
    eprintln!(
        "created {} databases in {:.1} s",
        to - from,
        begun.elapsed().as_secs_f64()
    );
}

async fn register(
    knowledge: &mut KnowledgeServiceClient<Channel>,
    pg: &PgCluster,
    from: usize,
    to: usize,
) {
    for i in from..to {
        knowledge
            .register_database(RegisterDatabaseRequest {
                database_id: name(i),
                connection_string: pg.url(&name(i)),
                database_name: name(i),
                enabled: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// A pseudo-random number in 1..=range (no generator crate in this workspace's benches).
fn next(state: &mut u64, range: u64) -> i32 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((*state >> 33) % range + 1) as i32
}

/// The load: `db000` runs its 50 statements in a loop; `db001`..`db019` a small mix every 200 ms.
async fn start_load(pg: &PgCluster, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for index in 0..LOADED {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&pg.url(&name(index)))
            .await
            .unwrap();
        let statements: Vec<(String, u64, Duration)> = if index == 0 {
            let statements = (1..=WIDE_TABLES)
                .map(|t| match t % 5 {
                    0 => (format!("SELECT count(*) FROM w{t} WHERE v > $1"), 100),
                    1 | 3 => (format!("UPDATE w{t} SET v = v + 1 WHERE id = $1"), 500),
                    2 => (format!("SELECT id, v, note FROM w{t} WHERE id = $1"), 500),
                    _ => (
                        format!("SELECT id, note FROM w{t} WHERE id BETWEEN $1 AND $1 + 20"),
                        480,
                    ),
                })
                .map(|(sql, range)| (sql, range, Duration::ZERO));
            let mut statements: Vec<_> = statements.collect();
            statements.last_mut().unwrap().2 = Duration::from_millis(300);
            statements
        } else {
            vec![
                (
                    "SELECT * FROM customers WHERE id = $1".into(),
                    1000,
                    Duration::ZERO,
                ),
                (
                    "SELECT id, total FROM orders WHERE customer_id = $1 \
                     ORDER BY created_at DESC LIMIT 5"
                        .into(),
                    1000,
                    Duration::ZERO,
                ),
                (
                    "UPDATE orders SET total = total + 1 WHERE id = $1".into(),
                    3000,
                    Duration::ZERO,
                ),
                (
                    "INSERT INTO events (kind, payload, at) VALUES ('k' || $1::int, '{}', now())"
                        .into(),
                    10,
                    Duration::ZERO,
                ),
                (
                    "SELECT count(*) FROM items WHERE qty > $1".into(),
                    6,
                    Duration::from_millis(200),
                ),
            ]
        };
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut state = index as u64 + 1;
            while !stop.load(Ordering::SeqCst) {
                for (sql, range, pause) in &statements {
                    let value = next(&mut state, *range);
                    if let Err(error) = sqlx::query(AssertSqlSafe(sql.clone()))
                        .bind(value)
                        .execute(&pool)
                        .await
                    {
                        eprintln!("load on {}: {error}", name(index));
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(*pause).await;
                    }
                }
            }
            pool.close().await;
        }));
    }
    tasks
}

/// A service process of the release build, killed when dropped.
struct Service {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Service {
    async fn start(
        name: &'static str,
        bin: &Path,
        logs: &Path,
        health_port: u16,
        env: Vec<(&'static str, String)>,
    ) -> Self {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin.join(name))
            .envs(env)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut service = Self { child, name, log };
        let url = format!("http://127.0.0.1:{health_port}/health");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = client.get(&url).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            let exited = service.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{name} did not answer on {url} ({exited:?}); log:\n{}",
                service.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        service
    }

    /// VmRSS and VmHWM in MB.
    fn memory_mb(&self) -> (f64, f64) {
        memory_mb(self.child.id())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait()
            && self.name != "collector"
        {
            eprintln!(
                "{} had exited ({status}); log:\n{}",
                self.name,
                self.log_tail()
            );
        }
        self.kill();
    }
}

/// What reached the relay: each snapshot's arrival, and the newest windowed snapshot of `db000`.
#[derive(Clone, Default)]
struct Seen {
    arrivals: Arc<Mutex<Vec<(Instant, String)>>>,
    wide: Arc<Mutex<Option<MetricSnapshot>>>,
}

impl Seen {
    fn arrivals(&self) -> Vec<(Instant, String)> {
        self.arrivals.lock().unwrap().clone()
    }
}

/// Between the collector and the analyser: counts each snapshot once the analyser's stream has
/// taken it, and keeps `db000`'s for the replay.
struct Relay {
    analyser: MetricsServiceClient<Channel>,
    seen: Seen,
}

#[tonic::async_trait]
impl MetricsService for Relay {
    async fn register_database(
        &self,
        request: Request<DatabaseInfo>,
    ) -> Result<Response<RegistrationAck>, Status> {
        self.analyser
            .clone()
            .register_database(request.into_inner())
            .await
    }

    async fn stream_metrics(
        &self,
        request: Request<Streaming<MetricSnapshot>>,
    ) -> Result<Response<MetricsAck>, Status> {
        let mut incoming = request.into_inner();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<MetricSnapshot>(16);
        let mut analyser = self.analyser.clone();
        let forwarded = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let upstream = tokio::spawn(async move { analyser.stream_metrics(forwarded).await });
        while let Some(snapshot) = incoming.message().await? {
            let id = snapshot.database_id.clone();
            if id == WIDE && snapshot.time_delta_seconds.is_some() {
                *self.seen.wide.lock().unwrap() = Some(snapshot.clone());
            }
            if tx.send(snapshot).await.is_err() {
                break;
            }
            self.seen
                .arrivals
                .lock()
                .unwrap()
                .push((Instant::now(), id));
        }
        drop(tx);
        upstream
            .await
            .map_err(|e| Status::internal(e.to_string()))?
    }
}

/// A cycle seen in the collector's `/health`.
#[derive(Clone)]
struct Observation {
    at: Instant,
    id: String,
    cycle_ms: f64,
    /// Cycles completed since the previous poll (more than 1: some were not seen).
    new_cycles: u64,
}

/// Polls the collector's `/health` every 2 s, recording each database's new cycles.
struct HealthPoller {
    observations: Arc<Mutex<Vec<Observation>>>,
    cycles: Arc<Mutex<HashMap<String, (u64, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthPoller {
    fn start(url: String) -> Self {
        let observations: Arc<Mutex<Vec<Observation>>> = Default::default();
        let cycles: Arc<Mutex<HashMap<String, (u64, String)>>> = Default::default();
        let task = tokio::spawn({
            let (observations, cycles) = (observations.clone(), cycles.clone());
            async move {
                let client = reqwest::Client::new();
                loop {
                    let body = client.get(&url).send().await;
                    let at = Instant::now();
                    if let Ok(body) = body
                        && let Ok(health) = body.json::<Value>().await
                        && let Some(databases) = health["databases"].as_object()
                    {
                        let mut cycles = cycles.lock().unwrap();
                        let mut observations = observations.lock().unwrap();
                        for (id, status) in databases {
                            let state = status["status"].as_str().unwrap_or("").to_owned();
                            let count = status["cycles"].as_u64().unwrap_or(0);
                            let entry = cycles.entry(id.clone()).or_insert((0, String::new()));
                            if count > entry.0 {
                                observations.push(Observation {
                                    at,
                                    id: id.clone(),
                                    cycle_ms: status["cycle_ms"].as_f64().unwrap_or(f64::NAN),
                                    new_cycles: count - entry.0,
                                });
                            }
                            *entry = (count.max(entry.0), state);
                        }
                    }
                    tokio::time::sleep(HEALTH_POLL).await;
                }
            }
        });
        Self {
            observations,
            cycles,
            task,
        }
    }

    /// Waits until every database in `ids` has completed `cycles` cycles.
    async fn wait_for_cycles(&self, ids: &[String], cycles: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let done = {
                let seen = self.cycles.lock().unwrap();
                ids.iter()
                    .all(|id| seen.get(id).is_some_and(|(n, _)| *n >= cycles))
            };
            if done {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }

    fn observations(&self) -> Vec<Observation> {
        self.observations.lock().unwrap().clone()
    }

    /// Each database's last status (`healthy`, `degraded`, `unreachable`…).
    fn statuses(&self) -> HashMap<String, String> {
        self.cycles
            .lock()
            .unwrap()
            .iter()
            .map(|(id, (_, state))| (id.clone(), state.clone()))
            .collect()
    }

    fn stop(&self) {
        self.task.abort();
    }
}

/// One step's measurements.
struct Step {
    databases: usize,
    window_s: f64,
    fitting: usize,
    cycles_measured: usize,
    cycles_unobserved: u64,
    cycle_ms_p50: f64,
    cycle_ms_p95: f64,
    cycle_ms_max: f64,
    /// The slowest database's longest gap between two snapshots at the analyser.
    max_gap_s: f64,
    snapshots_per_10s: f64,
    not_fitting: Vec<String>,
    not_healthy: Vec<String>,
    pg_sessions: i64,
    rss_mb: BTreeMap<&'static str, (f64, f64)>,
    /// The collector's own figures over the window, from its `/metrics` (`collector_figures`).
    from_metrics: Value,
}

impl Step {
    #[allow(clippy::too_many_arguments)]
    fn analyse(
        ids: &[String],
        t0: Instant,
        t1: Instant,
        observations: &[Observation],
        statuses: &HashMap<String, String>,
        arrivals: &[(Instant, String)],
        pg_sessions: i64,
        rss_mb: BTreeMap<&'static str, (f64, f64)>,
    ) -> Self {
        let in_window = |at: Instant| at > t0 && at <= t1 + HEALTH_POLL;
        let mut all_cycles: Vec<f64> = Vec::new();
        let mut unobserved = 0;
        let mut per_db_max: HashMap<&str, f64> = HashMap::new();
        for o in observations.iter().filter(|o| in_window(o.at)) {
            if !ids.contains(&o.id) {
                continue;
            }
            all_cycles.push(o.cycle_ms);
            unobserved += o.new_cycles - 1;
            let max = per_db_max.entry(o.id.as_str()).or_insert(0.0);
            *max = max.max(o.cycle_ms);
        }
        let mut by_db: HashMap<&str, Vec<Instant>> = HashMap::new();
        for (at, id) in arrivals {
            by_db.entry(id.as_str()).or_default().push(*at);
        }
        let mut received = 0;
        let mut max_gap = Duration::ZERO;
        let mut not_fitting = Vec::new();
        for id in ids {
            let times = by_db.get(id.as_str()).cloned().unwrap_or_default();
            received += times.iter().filter(|&&at| at > t0 && at <= t1).count();
            // The last snapshot before the window, those in it, and the window's end.
            let mut points: Vec<Instant> = vec![
                times
                    .iter()
                    .copied()
                    .filter(|&at| at <= t0)
                    .max()
                    .unwrap_or(t0),
            ];
            points.extend(times.iter().copied().filter(|&at| at > t0 && at <= t1));
            points.push(t1);
            let gap = points
                .windows(2)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or_default();
            max_gap = max_gap.max(gap);
            let slowest = per_db_max.get(id.as_str()).copied();
            let fits = slowest.is_some_and(|ms| ms < INTERVAL.as_millis() as f64) && gap < MAX_GAP;
            if !fits {
                not_fitting.push(id.clone());
            }
        }
        all_cycles.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            if all_cycles.is_empty() {
                return f64::NAN;
            }
            let rank = (q * all_cycles.len() as f64).ceil() as usize;
            all_cycles[rank.clamp(1, all_cycles.len()) - 1]
        };
        let window_s = (t1 - t0).as_secs_f64();
        let mut not_healthy: Vec<String> = ids
            .iter()
            .filter(|id| statuses.get(*id).is_none_or(|s| s != "healthy"))
            .cloned()
            .collect();
        not_healthy.truncate(20);
        Self {
            databases: ids.len(),
            window_s,
            fitting: ids.len() - not_fitting.len(),
            cycles_measured: all_cycles.len(),
            cycles_unobserved: unobserved,
            cycle_ms_p50: quantile(0.5),
            cycle_ms_p95: quantile(0.95),
            cycle_ms_max: all_cycles.last().copied().unwrap_or(f64::NAN),
            max_gap_s: max_gap.as_secs_f64(),
            snapshots_per_10s: received as f64 / (window_s / INTERVAL.as_secs_f64()),
            not_fitting,
            not_healthy,
            pg_sessions,
            rss_mb,
            from_metrics: Value::Null,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "databases": self.databases,
            "window_s": self.window_s,
            "fitting": self.fitting,
            "cycles_measured": self.cycles_measured,
            "cycles_unobserved": self.cycles_unobserved,
            "cycle_ms_p50": self.cycle_ms_p50,
            "cycle_ms_p95": self.cycle_ms_p95,
            "cycle_ms_max": self.cycle_ms_max,
            "max_gap_between_snapshots_s": self.max_gap_s,
            "snapshots_per_10s": self.snapshots_per_10s,
            "not_fitting": self.not_fitting,
            "not_healthy_first_20": self.not_healthy,
            "postgres_sessions": self.pg_sessions,
            "collector_metrics": self.from_metrics,
            "rss_mb": self.rss_mb.iter().map(|(k, v)| (*k, v.0)).collect::<BTreeMap<_, _>>(),
            "rss_hwm_mb": self.rss_mb.iter().map(|(k, v)| (*k, v.1)).collect::<BTreeMap<_, _>>(),
        })
    }
}

/// A service's Prometheus exposition (`GET /metrics` on its health port), as text.
struct Exposition(String);

impl Exposition {
    /// Empty when the service does not answer (its figures are then NaN, not a failure).
    async fn read(health_port: u16) -> Self {
        let url = format!("http://127.0.0.1:{health_port}/metrics");
        let text = match reqwest::get(&url).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        Self(text)
    }

    /// The sum of every sample of `name`, whatever its labels; NaN when there is none.
    fn sum(&self, name: &str) -> f64 {
        let values: Vec<f64> = self
            .0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let metric = series.split('{').next()?;
                (metric == name).then(|| value.parse::<f64>().ok())?
            })
            .collect();
        if values.is_empty() {
            f64::NAN
        } else {
            values.iter().sum()
        }
    }

    /// How many series of `name` there are (one per database for the collector's).
    fn series(&self, name: &str) -> usize {
        self.0
            .lines()
            .filter(|line| line.split([' ', '{']).next() == Some(name))
            .count()
    }
}

/// The collector's cycles between two readings of its `/metrics`: how many, their mean time, and
/// the mean size of the snapshot each database last sent.
fn collector_figures(before: &Exposition, after: &Exposition) -> Value {
    let delta = |name: &str| after.sum(name) - before.sum(name);
    let cycles = delta("startupmonkey_cycle_duration_seconds_count");
    let seconds = delta("startupmonkey_cycle_duration_seconds_sum");
    let bytes = after.sum("startupmonkey_snapshot_bytes");
    let databases = after.series("startupmonkey_snapshot_bytes");
    json!({
        "cycles": cycles,
        "cycle_ms_mean": 1000.0 * seconds / cycles,
        "snapshot_bytes_mean": bytes / databases as f64,
    })
}

/// The analyser's snapshots and its time per snapshot (arrival to detections published) between
/// two readings of its `/metrics`.
fn analyser_figures(before: &Exposition, after: &Exposition) -> Value {
    let delta = |name: &str| after.sum(name) - before.sum(name);
    let snapshots = delta("startupmonkey_snapshots_analysed_total");
    let seconds = delta("startupmonkey_snapshot_analysis_seconds_sum");
    json!({
        "snapshots": snapshots,
        "analysis_ms_per_snapshot": 1000.0 * seconds / snapshots,
    })
}

/// User and system time of process `pid` so far, in ms (`/proc/<pid>/stat`, 100 ticks a second
/// as on every Linux this runs on).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) * 10.0,
        _ => f64::NAN,
    }
}

/// Detections the analyser has published so far, from its log.
fn published(logs: &Path) -> usize {
    std::fs::read_to_string(logs.join("analyser.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("detection published"))
        .count()
}

/// Adds a session idle in a transaction for an hour on the snapshot's database.
fn with_idle_transaction(snapshot: &mut MetricSnapshot, k: usize) {
    let Some(pg) = snapshot.postgres.as_mut() else {
        return;
    };
    pg.idle_in_transaction.push(SessionInfo {
        pid: 40_000 + k as i32,
        backend_start_us: 1_700_000_000_000_000,
        username: "app".into(),
        application_name: "bench".into(),
        database: pg.database_name.clone(),
        state: "idle in transaction".into(),
        query: "UPDATE w1 SET v = v + 1 WHERE id = $1".into(),
        duration_secs: 3600.0,
        ..Default::default()
    });
}

/// `snapshot` as database `id` would send it, its counters scaled by `factor`.
fn vary(snapshot: &MetricSnapshot, id: &str, factor: f64) -> MetricSnapshot {
    let scale = |v: i64| (v as f64 * factor).round() as i64;
    let mut s = snapshot.clone();
    s.database_id = id.to_owned();
    for value in s.metric_deltas.values_mut() {
        *value *= factor;
    }
    if let Some(pg) = s.postgres.as_mut() {
        pg.database_name = id.to_owned();
        for t in &mut pg.tables {
            t.seq_scan = scale(t.seq_scan);
            t.seq_tup_read = scale(t.seq_tup_read);
            t.idx_scan = t.idx_scan.map(scale);
            t.n_tup_ins = scale(t.n_tup_ins);
            t.n_tup_upd = scale(t.n_tup_upd);
            t.n_tup_del = scale(t.n_tup_del);
            t.n_tup_hot_upd = scale(t.n_tup_hot_upd);
        }
        for st in &mut pg.top_statements {
            st.calls = scale(st.calls);
            st.total_time_ms *= factor;
            st.rows = scale(st.rows);
            st.shared_blks_hit = scale(st.shared_blks_hit);
            st.shared_blks_read = scale(st.shared_blks_read);
        }
        pg.statements_calls = scale(pg.statements_calls);
        pg.statements_total_time_ms *= factor;
    }
    s
}

/// The analyser's VmRSS (MB) after each of [`MEMORY_ROUNDS`] rounds: every variant sent once per
/// round, on [`CONCURRENT_STREAMS`] streams, its timestamp 10 s after the round before's.
async fn memory_over_rounds(
    address: &str,
    analyser_pid: u32,
    variants: Arc<Vec<MetricSnapshot>>,
) -> Vec<(usize, f64)> {
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut measured = Vec::new();
    let mut round = 0;
    for until in MEMORY_ROUNDS {
        while round < until {
            let mut tasks = Vec::new();
            for stream in 0..CONCURRENT_STREAMS {
                let variants = variants.clone();
                let mut client = proto::clients::metrics(address).unwrap();
                let timestamp = start + 10 * round as i64;
                tasks.push(tokio::spawn(async move {
                    let sent: Vec<MetricSnapshot> = (stream..variants.len())
                        .step_by(CONCURRENT_STREAMS)
                        .map(|k| {
                            let mut s = variants[k].clone();
                            s.timestamp = timestamp;
                            s
                        })
                        .collect();
                    client
                        .stream_metrics(futures::stream::iter(sent))
                        .await
                        .unwrap();
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            round += 1;
        }
        measured.push((until, memory_mb(analyser_pid).0));
    }
    measured
}

/// VmRSS and VmHWM of process `pid` in MB (NaN when unreadable).
fn memory_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Replay {
    /// Processor time of the analyser process per snapshot, over both throughput runs.
    cpu_ms_per_snapshot: f64,
    one_stream: f64,
    concurrent: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The replay of part 2 against the analyser at `address`.
async fn replay(address: &str, analyser_pid: u32, variants: Arc<Vec<MetricSnapshot>>) -> Replay {
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let snapshot = move |variants: &[MetricSnapshot], k: usize| {
        let mut s = variants[k % variants.len()].clone();
        s.timestamp = now();
        s
    };
    // Latency: one snapshot per stream, one stream after another (after a warm-up).
    let mut client = proto::clients::metrics(address).unwrap();
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    for k in 0..LATENCY_SAMPLES + 100 {
        let one = snapshot(&variants, k);
        let begun = Instant::now();
        client
            .stream_metrics(futures::stream::iter([one]))
            .await
            .unwrap();
        if k >= 100 {
            latencies.push(begun.elapsed().as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let (p50_ms, p99_ms) = (at(0.5), at(0.99));

    // Throughput: streams that send for THROUGHPUT_RUN, then wait for the analyser's count.
    let run = |streams: usize| {
        let variants = variants.clone();
        async move {
            let begun = Instant::now();
            let deadline = begun + THROUGHPUT_RUN;
            let mut tasks = Vec::new();
            for stream in 0..streams {
                let variants = variants.clone();
                let mut client = proto::clients::metrics(address).unwrap();
                tasks.push(tokio::spawn(async move {
                    let sent = futures::stream::unfold(stream * 31, move |k| {
                        let variants = variants.clone();
                        async move {
                            (Instant::now() < deadline).then(|| (snapshot(&variants, k), k + 1))
                        }
                    });
                    client
                        .stream_metrics(sent)
                        .await
                        .unwrap()
                        .into_inner()
                        .total_metrics
                }));
            }
            let mut total = 0;
            for task in tasks {
                total += task.await.unwrap();
            }
            (total, total as f64 / begun.elapsed().as_secs_f64())
        }
    };
    let cpu_before = cpu_ms(analyser_pid);
    let (sent_one, one_stream) = run(1).await;
    let (sent_concurrent, concurrent) = run(CONCURRENT_STREAMS).await;
    let cpu_ms_per_snapshot =
        (cpu_ms(analyser_pid) - cpu_before) / (sent_one + sent_concurrent).max(1) as f64;
    Replay {
        cpu_ms_per_snapshot,
        one_stream,
        concurrent,
        p50_ms,
        p99_ms,
    }
}
