//! Collector benchmarks (run by `make bench`, not by `make test`), on a private cluster:
//!
//! * `cycle_ms_10k_tables` — one collection cycle (every query, the window and the snapshot) on a
//!   database with 10,000 tables, each with a primary key and ten rows, one in ten with dead rows
//!   (so some tables are of interest even when nothing moves): the median of 10 cycles after a
//!   first one (which reads everything).
//! * `cycle_server_ms_10k_tables` — the server time of our own statements over those cycles, per
//!   cycle (pg_stat_statements, reset after the first cycle, statements marked
//!   `/* startupmonkey-collector */`).
//! * `snapshot_bytes_10k_tables_idle` — the encoded size of the snapshot sent to the analyser on
//!   the last of those cycles, when nothing changed in the database.
//! * `overhead_tps_ratio_10s` and `overhead_tps_ratio_1s` — pgbench select-only TPS with the
//!   collector collecting at a 10 s (30 s runs) and a 1 s interval (10 s runs), divided by TPS
//!   without it, in the same run: after a warm-up, 5 pairs per interval in ABBA order (off-on,
//!   on-off, ...), so a steady drift of the machine cancels out; the median of the pairs' ratios
//!   with their spread (min, max) beside it, and every pair in `overhead_pairs`.
//!
//! Writes `bench/results/<UTC timestamp>-collector.json` and prints a markdown table, and the server
//! time of each of our statements per cycle on stderr. `BENCH_CYCLE_ONLY=1` stops after the cycle
//! figures (no overhead run, nothing written).

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use collector::cycle;
use prost::Message;
use sqlx::postgres::PgPoolOptions;
use testkit::PgCluster;

const TABLES: usize = 10_000;
const CYCLES: usize = 10;
const PGBENCH_SECONDS: u32 = 10;
/// Off/on pairs of pgbench runs at each collection interval.
const PAIRS: usize = 5;
const PGBENCH_CLIENTS: u32 = 4;

#[tokio::main]
async fn main() {
    let pg = PgCluster::start_with(&[("max_connections", "50")]);
    pg.create_database("bench");
    pg.psql("bench", "CREATE EXTENSION pg_stat_statements");
    eprintln!("creating {TABLES} tables...");
    for batch in 0..TABLES / 1000 {
        pg.psql(
            "bench",
            &format!(
                "DO $$ BEGIN FOR i IN {}..{} LOOP \
                 EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v int)', i); \
                 EXECUTE format('INSERT INTO t%s SELECT g, g FROM generate_series(1, 10) g', i); \
                 IF i % 10 = 0 THEN EXECUTE format('DELETE FROM t%s WHERE id <= 3', i); END IF; \
                 END LOOP; END $$",
                batch * 1000 + 1,
                batch * 1000 + 1000
            ),
        );
    }
    let options = collector::orchestrator::connect_options(&pg.url("bench")).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();

    // Statistics reach shared memory at most a second after each transaction: let them settle, so
    // the measured cycles see a database where nothing changes.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut database = cycle::Database::default();
    let mut cycles = Vec::new();
    let mut idle_bytes = 0;
    for cycle in 0..=CYCLES {
        if cycle == 1 {
            sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(&pool)
                .await
                .unwrap();
        }
        let started = Instant::now();
        let (sample, mut snap) = database
            .collect("bench", &pool, true, 0, started)
            .await
            .unwrap();
        assert!(sample.errors.is_empty(), "{:?}", sample.errors);
        // What `Outputs::publish` sends the analyser, on one stream.
        database.sent.encode(&mut snap, 1, started);
        idle_bytes = snap.encoded_len();
        std::hint::black_box(snap);
        if cycle > 0 {
            cycles.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let server_ms: f64 = sqlx::query_scalar(
        "SELECT coalesce(sum(total_exec_time), 0)::float8 FROM pg_stat_statements \
         WHERE query LIKE '/* startupmonkey-collector */%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let server_ms = server_ms / CYCLES as f64;
    // Where that time goes, statement by statement.
    let by_statement: Vec<(f64, i64, String)> = sqlx::query_as(
        "SELECT total_exec_time::float8 / $1, calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) \
         FROM pg_stat_statements WHERE query LIKE '/* startupmonkey-collector */%' \
         ORDER BY total_exec_time DESC LIMIT 8",
    )
    .bind(CYCLES as f64)
    .fetch_all(&pool)
    .await
    .unwrap();
    for (ms, calls, query) in &by_statement {
        eprintln!("  {ms:7.2} ms/cycle  {calls:3} calls  {query}");
    }
    if std::env::var_os("BENCH_CYCLE_ONLY").is_some() {
        eprintln!("BENCH_CYCLE_ONLY: no overhead run, nothing written");
        return;
    }
    cycles.sort_by(f64::total_cmp);
    let cycle_ms = cycles[CYCLES / 2];
    eprintln!(
        "cycle on {TABLES} tables: median {cycle_ms:.1} ms (min {:.1}, max {:.1})",
        cycles[0],
        cycles[CYCLES - 1]
    );
    eprintln!("server time per cycle {server_ms:.1} ms; idle snapshot {idle_bytes} bytes");

    // Overhead: pgbench -S on a scale-10 database, collector off and on, alternating.
    pg.create_database("load");
    pg.psql("load", "CREATE EXTENSION pg_stat_statements");
    let pgbench = testkit::binary("pgbench", "postgresql-15");
    let init = Command::new(&pgbench)
        .args([
            "-i",
            "-q",
            "-s",
            "10",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
        ])
        .arg(pg.port().to_string())
        .arg("load")
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let load_pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(collector::orchestrator::connect_options(&pg.url("load")).unwrap())
        .await
        .unwrap();

    // A warm-up run (not counted), then at each interval PAIRS pairs of runs, collector off and
    // on, in ABBA order (off-on, on-off, off-on, ...): throughput drifts as caches warm and the
    // shared machine's load changes, and this order cancels a linear drift instead of crediting
    // it to one side. Each pair gives one on/off ratio; the median and spread are reported.
    run_pgbench(&pgbench, pg.port(), PGBENCH_SECONDS);
    let mut overhead = Vec::new();
    for (interval, seconds) in [(Duration::from_secs(10), 30), (Duration::from_secs(1), 10)] {
        let pairs = overhead_pairs(&pgbench, pg.port(), &load_pool, interval, seconds).await;
        overhead.push((interval, seconds, pairs));
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        }
    };
    let summary: Vec<(u64, f64, f64, f64)> = overhead
        .iter()
        .map(|(interval, _, pairs)| {
            let ratios: Vec<f64> = pairs.iter().map(|p| p.on / p.off).collect();
            let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (interval.as_secs(), median(&ratios), min, max)
        })
        .collect();
    let ratio_at = |secs: u64| summary.iter().find(|s| s.0 == secs).copied().unwrap();
    let (_, ratio_10s, min_10s, max_10s) = ratio_at(10);
    let (_, ratio_1s, min_1s, max_1s) = ratio_at(1);

    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let result = serde_json::json!({
        "benchmark": "collector",
        "unix_time": stamp,
        "cycle_ms_10k_tables": cycle_ms,
        "cycle_ms_10k_tables_min": cycles[0],
        "cycle_ms_10k_tables_max": cycles[CYCLES - 1],
        "cycle_server_ms_10k_tables": server_ms,
        "snapshot_bytes_10k_tables_idle": idle_bytes,
        "overhead_tps_ratio_10s": ratio_10s,
        "overhead_tps_ratio_10s_spread": [min_10s, max_10s],
        "overhead_tps_ratio_1s": ratio_1s,
        "overhead_tps_ratio_1s_spread": [min_1s, max_1s],
        "overhead_pairs": overhead.iter().map(|(interval, seconds, pairs)| serde_json::json!({
            "collection_interval_s": interval.as_secs(),
            "pgbench_seconds": seconds,
            "pairs": pairs.iter().map(|p| serde_json::json!({
                "order": if p.off_first { "off, on" } else { "on, off" },
                "tps_off": p.off,
                "tps_on": p.on,
                "ratio": p.on / p.off,
                "collections": p.cost.collections,
                "cycle_ms": p.cost.cycle_ms,
                "server_ms_per_cycle": p.cost.server_ms,
                "collector_cpu_ms_per_cycle": p.cost.cpu_ms,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "pgbench": format!("-S -c {PGBENCH_CLIENTS} -j 2, scale 10; {PAIRS} ABBA pairs per interval"),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{stamp}-collector.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    println!("| metric | value |\n|---|---|");
    println!("| cycle_ms_10k_tables (median of {CYCLES}) | {cycle_ms:.1} |");
    println!("| cycle_server_ms_10k_tables (per cycle) | {server_ms:.1} |");
    println!("| snapshot_bytes_10k_tables_idle | {idle_bytes} |");
    println!(
        "| overhead_tps_ratio_10s (on / off, median of {PAIRS} pairs; min, max) | {ratio_10s:.3} ({min_10s:.3}, {max_10s:.3}) |"
    );
    println!(
        "| overhead_tps_ratio_1s (on / off, median of {PAIRS} pairs; min, max) | {ratio_1s:.3} ({min_1s:.3}, {max_1s:.3}) |"
    );
    println!("\nwritten to {}", path.display());
}

/// One pair of pgbench runs, the collector off and on.
struct Pair {
    off_first: bool,
    off: f64,
    on: f64,
    /// What the "on" run cost the collector's side.
    cost: Collecting,
}

/// What collecting during one pgbench run cost: where the overhead goes.
#[derive(Debug, Clone, Copy, Default)]
struct Collecting {
    collections: u32,
    /// Wall time of a cycle, on average.
    cycle_ms: f64,
    /// Server time of our own statements per cycle (pg_stat_statements, marked statements).
    server_ms: f64,
    /// Processor time of this process (the collector's work: decoding, the window, the snapshot)
    /// per cycle; pgbench runs in a child process and is not counted.
    cpu_ms: f64,
}

/// [`PAIRS`] pairs in ABBA order at a collection `interval`, each run `seconds` long.
async fn overhead_pairs(
    pgbench: &std::path::Path,
    port: u16,
    pool: &sqlx::PgPool,
    interval: Duration,
    seconds: u32,
) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for k in 0..PAIRS {
        let off_first = k % 2 == 0;
        let (mut off, mut on, mut cost) = (0.0, 0.0, Collecting::default());
        for collector_on in [!off_first, off_first] {
            if collector_on {
                (on, cost) = collecting(pgbench, port, pool, interval, seconds).await;
            } else {
                off = run_pgbench(pgbench, port, seconds);
            }
        }
        eprintln!(
            "interval {} s, pair {}: off {off:.0} tps, on {on:.0} tps: {:.3}; {} collections, \
             per cycle {:.1} ms wall, {:.1} ms server, {:.1} ms processor here",
            interval.as_secs(),
            k + 1,
            on / off,
            cost.collections,
            cost.cycle_ms,
            cost.server_ms,
            cost.cpu_ms
        );
        pairs.push(Pair {
            off_first,
            off,
            on,
            cost,
        });
    }
    pairs
}

/// One pgbench run while the collector collects `pool`'s database every `interval`, as the
/// service does (every query, the window, the snapshot and its table list).
async fn collecting(
    pgbench: &std::path::Path,
    port: u16,
    pool: &sqlx::PgPool,
    interval: Duration,
    seconds: u32,
) -> (f64, Collecting) {
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(pool)
        .await
        .unwrap();
    let cpu_before = process_cpu_ms();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let task = {
        let pool = pool.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut database = cycle::Database::default();
            let mut ticker = tokio::time::interval(interval);
            let mut cycles = 0;
            let mut busy = Duration::ZERO;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = async {
                        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    } => break,
                }
                let started = Instant::now();
                let (_, mut snap) = database
                    .collect("load", &pool, true, 0, started)
                    .await
                    .unwrap();
                database.sent.encode(&mut snap, 1, started);
                std::hint::black_box(snap);
                busy += started.elapsed();
                cycles += 1;
            }
            (cycles, busy)
        })
    };
    let tps = tokio::task::spawn_blocking({
        let pgbench = pgbench.to_owned();
        move || run_pgbench(&pgbench, port, seconds)
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (collections, busy) = task.await.unwrap();
    let cpu_ms = process_cpu_ms() - cpu_before;
    let server_ms: f64 = sqlx::query_scalar(
        "SELECT coalesce(sum(total_exec_time), 0)::float8 FROM pg_stat_statements \
         WHERE query LIKE '/* startupmonkey-collector */%'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let per = f64::from(collections.max(1));
    (
        tps,
        Collecting {
            collections,
            cycle_ms: busy.as_secs_f64() * 1000.0 / per,
            server_ms: server_ms / per,
            cpu_ms: cpu_ms / per,
        },
    )
}

/// This process's processor time so far (user and system, ms), from `/proc/self/stat`.
fn process_cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After the command name in parentheses: state, then 10 fields, then utime and stime in
    // clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks * 10.0
}

fn run_pgbench(pgbench: &std::path::Path, port: u16, seconds: u32) -> f64 {
    let output = Command::new(pgbench)
        .args(["-S", "-n", "-j", "2", "-h", "127.0.0.1", "-U", "postgres"])
        .arg("-c")
        .arg(PGBENCH_CLIENTS.to_string())
        .arg("-T")
        .arg(seconds.to_string())
        .arg("-p")
        .arg(port.to_string())
        .arg("load")
        .output()
        .unwrap();
    testkit::pgbench::tps(&output)
}
