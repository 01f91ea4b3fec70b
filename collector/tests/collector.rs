//! The collector against real PostgreSQL clusters: each metric from a real induced state, the
//! degraded case, and the orchestration (an unreachable database, a changed connection string)
//! with a recording analyser and a small knowledge stand-in served over real gRPC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collector::pg_stats::{self, Sample};
use collector::window::{Interval, Window};
use collector::{App, Config, snapshot};
use lifecycle::{Env, Shutdown};
use proto::knowledge::knowledge_service_server::{KnowledgeService, KnowledgeServiceServer};
use proto::knowledge::*;
use proto::metrics::metrics_service_server::{MetricsService, MetricsServiceServer};
use proto::metrics::{DatabaseInfo, MetricSnapshot, MetricsAck, RegistrationAck};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
use testkit::PgCluster;
use tonic::{Request, Response as GrpcResponse, Status, Streaming};

fn app_database(pg: &PgCluster) {
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE EXTENSION pg_stat_statements; \
         CREATE TABLE orders (id int PRIMARY KEY, customer int, note text) \
           WITH (autovacuum_enabled = false); \
         INSERT INTO orders SELECT g, g % 100, 'n' FROM generate_series(1, 5000) g; \
         CREATE TABLE customers (id int, name text) WITH (autovacuum_enabled = false); \
         INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 1000) g; \
         CREATE SCHEMA billing; \
         CREATE TABLE billing.customers (id int PRIMARY KEY); \
         CREATE INDEX orders_recent ON orders (customer, id DESC);",
    );
}

async fn pool(url: &str) -> PgPool {
    let options = collector::orchestrator::connect_options(url).unwrap();
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap()
}

async fn sample(pool: &PgPool) -> Sample {
    pg_stats::collect(pool, true, &pg_stats::ServerWide::default())
        .await
        .unwrap()
}

/// The snapshot of a sample, its tables' sizes and indexes read as a cycle reads them.
async fn build(pool: &PgPool, s: &Sample, mut interval: Interval) -> MetricSnapshot {
    let mut errors = Vec::new();
    let indexes = pg_stats::Details::default()
        .complete(
            pool,
            &s.tables,
            &mut interval.tables,
            &mut errors,
            Instant::now(),
        )
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    snapshot::build("db1", 1, s, interval, indexes)
}

/// Samples until `done` holds for the interval since `window`'s last sample (statistics reach
/// the shared view up to a second after a session's work), or panics after 15 s.
async fn interval_until(
    pool: &PgPool,
    window: &mut Window,
    what: &str,
    done: impl Fn(&Interval) -> bool,
) -> Interval {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Interval::default();
    loop {
        let s = sample(pool).await;
        let interval = window.advance(&s, Instant::now());
        // Fold consecutive intervals so a slow flush is not lost between samples.
        merge(&mut seen, interval);
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never showed up; last: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn merge(into: &mut Interval, next: Interval) {
    for table in next.tables {
        match into
            .tables
            .iter_mut()
            .find(|t| t.qualified_name == table.qualified_name)
        {
            Some(t) => {
                t.seq_scan += table.seq_scan;
                t.seq_tup_read += table.seq_tup_read;
                t.dead_tuples = table.dead_tuples;
                t.live_tuples = table.live_tuples;
                t.idx_scan = match (t.idx_scan, table.idx_scan) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
            }
            None => into.tables.push(table),
        }
    }
    for statement in next.top_statements {
        match into
            .top_statements
            .iter_mut()
            .find(|s| s.queryid == statement.queryid)
        {
            Some(s) => {
                s.calls += statement.calls;
                s.total_time_ms += statement.total_time_ms;
                s.mean_time_ms = s.total_time_ms / s.calls as f64;
            }
            None => into.top_statements.push(statement),
        }
    }
    into.top_statements
        .sort_by(|a, b| b.total_time_ms.total_cmp(&a.total_time_ms));
    if next.seconds.is_some() {
        into.seconds = next.seconds;
    }
}

#[tokio::test]
async fn a_seq_scan_loop_on_one_table_counts_on_that_table_only_schema_qualified() {
    let pg = PgCluster::start();
    app_database(&pg);
    let pool = pool(&pg.url("app")).await;
    let mut window = Window::default();
    window.advance(&sample(&pool).await, Instant::now());

    pg.psql(
        "app",
        &"SELECT count(*) FROM customers WHERE name = 'c7';".repeat(20),
    );
    let interval = interval_until(&pool, &mut window, "20 scans of public.customers", |i| {
        i.tables
            .iter()
            .any(|t| t.qualified_name == "public.customers" && t.seq_scan >= 20)
    })
    .await;
    let customers = interval
        .tables
        .iter()
        .find(|t| t.qualified_name == "public.customers")
        .unwrap();
    assert_eq!(customers.seq_scan, 20);
    assert_eq!(customers.seq_tup_read, 20 * 1000);
    let orders = interval
        .tables
        .iter()
        .find(|t| t.qualified_name == "public.orders")
        .unwrap();
    assert_eq!(
        orders.seq_scan, 0,
        "another table's scans are not counted here"
    );
    assert!(
        interval
            .tables
            .iter()
            .any(|t| t.qualified_name == "billing.customers"),
        "same-named tables in other schemas are told apart"
    );

    let snap = build(&pool, &sample(&pool).await, interval).await;
    let detail = snap.postgres.as_ref().unwrap();
    let scans = |name: &str| {
        detail
            .tables
            .iter()
            .find(|t| t.qualified_name == name)
            .unwrap()
            .idx_scan
    };
    assert_eq!(
        scans("public.customers"),
        None,
        "a table without any index has no idx_scan"
    );
    assert_eq!(
        scans("public.orders"),
        Some(0),
        "first cycle: nothing windowed"
    );
    assert_eq!(
        snap.extended_metrics["pg.table.public.customers.seq_scans"],
        20.0
    );
    assert_eq!(snap.labels["pg.worst_seq_scan_table"], "public.customers");
    let detail = snap.postgres.unwrap();
    assert!(
        detail
            .indexes
            .iter()
            .any(|i| i.qualified_table == "public.orders"
                && i.is_primary
                && i.columns == vec!["id".to_owned()])
    );
    let recent = detail
        .indexes
        .iter()
        .find(|i| i.name == "orders_recent")
        .unwrap();
    assert_eq!(recent.columns, ["customer", "id DESC"]);
}

#[tokio::test]
async fn sessions_show_long_running_idle_in_transaction_blocked_and_the_xmin_holder() {
    let pg = PgCluster::start();
    app_database(&pg);
    let url = pg.url("app");
    let holder = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let mut holder = holder.acquire().await.unwrap();
    holder
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM orders")
        .await
        .unwrap();
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *holder)
        .await
        .unwrap();

    let locker = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let mut locker = locker.acquire().await.unwrap();
    locker
        .execute("BEGIN; UPDATE orders SET note = 'secret-note' WHERE id = 1")
        .await
        .unwrap();
    let locker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *locker)
        .await
        .unwrap();

    let waiter_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        let _ = sqlx::query("UPDATE orders SET note = 'other-secret' WHERE id = 1")
            .execute(&waiter_pool)
            .await;
    });
    let sleeper_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let sleeper = tokio::spawn(async move {
        let _ = sqlx::query("SELECT pg_sleep(60), 'literal-value'")
            .execute(&sleeper_pool)
            .await;
    });
    // A literal longer than PostgreSQL keeps of a live statement (track_activity_query_size,
    // 1024 bytes): its text is cut inside the literal.
    let cut_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let mut cut_session = cut_pool.acquire().await.unwrap();
    let cut_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *cut_session)
        .await
        .unwrap();
    let cut_sql = format!("SELECT pg_sleep(60), 'secret-{}'", "x".repeat(1500));
    let cut = tokio::spawn(async move {
        let _ = sqlx::query(sqlx::AssertSqlSafe(cut_sql))
            .execute(&mut *cut_session)
            .await;
    });

    let pool = pool(&url).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let activity = loop {
        let activity = sample(&pool).await.activity.unwrap();
        let ready = activity
            .long_running
            .iter()
            .any(|s| s.query.contains("pg_sleep") && s.pid != cut_pid)
            && activity.long_running.iter().any(|s| s.pid == cut_pid)
            && activity
                .idle_in_transaction
                .iter()
                .any(|s| s.pid == locker_pid)
            && !activity.blocked.is_empty();
        if ready {
            break activity;
        }
        assert!(
            Instant::now() < deadline,
            "sessions never showed up: {activity:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let sleeping = activity
        .long_running
        .iter()
        .find(|s| s.query.contains("pg_sleep") && s.pid != cut_pid)
        .unwrap();
    assert!(sleeping.duration_secs >= 5.0);
    assert!(sleeping.backend_start_us > 0 && sleeping.query_start_us > 0);
    assert_eq!(
        sleeping.query, "SELECT pg_sleep($1), $2",
        "literals are redacted by PostgreSQL's parser"
    );
    // Cut inside its literal, the text does not parse: the scanner removes what is there.
    let cut_short = activity
        .long_running
        .iter()
        .find(|s| s.pid == cut_pid)
        .unwrap();
    assert_eq!(
        cut_short.query, "SELECT pg_sleep(?), '?'",
        "literals are redacted from text cut short"
    );
    let idle = activity
        .idle_in_transaction
        .iter()
        .find(|s| s.pid == locker_pid)
        .unwrap();
    assert!(idle.duration_secs >= 5.0);
    assert!(
        !idle.query.contains("secret-note"),
        "literals are redacted: {}",
        idle.query
    );
    let blocked = &activity.blocked[0];
    assert_eq!(blocked.blocking_pids, vec![locker_pid]);
    let oldest = activity.xmin_horizon.oldest_session.as_ref().unwrap();
    assert_eq!(
        oldest.pid, holder_pid,
        "the REPEATABLE READ session holds the horizon"
    );
    assert!(activity.xmin_horizon.oldest_session_xmin_age >= 1);

    locker.execute("ROLLBACK").await.unwrap();
    holder.execute("ROLLBACK").await.unwrap();
    sleeper.abort();
    cut.abort();
    waiter.abort();
}

#[tokio::test]
async fn dead_tuples_appear_after_deletes() {
    let pg = PgCluster::start();
    app_database(&pg);
    pg.psql("app", "DELETE FROM orders WHERE id <= 2500");
    let pool = pool(&pg.url("app")).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = sample(&pool).await;
        let orders = s.tables.iter().find(|t| t.name == "orders").unwrap();
        if orders.dead_tuples == 2500 {
            assert!(!orders.autovacuum_enabled);
            let interval = Window::default().advance(&s, Instant::now());
            let snap = build(&pool, &s, interval).await;
            assert_eq!(snap.labels["pg.worst_bloat_table"], "public.orders");
            assert!((snap.extended_metrics["pg.worst_bloat_ratio"] - 1.0).abs() < 0.01);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dead tuples never reached 2500: {orders:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn latency_and_top_statements_come_from_a_known_statement_mix() {
    let pg = PgCluster::start();
    app_database(&pg);
    let pool = pool(&pg.url("app")).await;
    let mut window = Window::default();
    window.advance(&sample(&pool).await, Instant::now());
    let mut script = "SELECT pg_sleep(0.02);".repeat(20);
    script.push_str(&"SELECT id FROM orders WHERE id = 7;".repeat(380));
    pg.psql("app", &script);

    let interval = interval_until(&pool, &mut window, "400 calls", |i| {
        i.top_statements.iter().map(|s| s.calls).sum::<i64>() >= 400
    })
    .await;
    let sleep = &interval.top_statements[0];
    assert!(
        sleep.query.contains("pg_sleep"),
        "the slowest statement first: {}",
        sleep.query
    );
    assert_eq!(sleep.calls, 20);
    assert!(sleep.mean_time_ms >= 19.0, "{}", sleep.mean_time_ms);
    let lookup = interval
        .top_statements
        .iter()
        .find(|s| s.query.contains("FROM orders"))
        .unwrap();
    assert_eq!(lookup.calls, 380);
    assert!(
        lookup.query.contains("$1"),
        "normalised text: {}",
        lookup.query
    );
    assert!(
        !interval
            .top_statements
            .iter()
            .any(|s| s.query.contains("startupmonkey")),
        "our own statements are left out"
    );

    let latency = collector::window::latency(&interval.top_statements);
    assert_eq!(latency.calls, 400);
    // 5 % of the calls are the 20 ms sleeps: p95 falls on the lookups, p99 on the sleeps.
    assert!(latency.p50_ms < 5.0, "{latency:?}");
    assert!(latency.p99_ms >= 19.0, "{latency:?}");
    assert!(latency.avg_ms > 0.9 && latency.avg_ms < 5.0, "{latency:?}");
}

#[tokio::test]
async fn without_pg_stat_statements_it_degrades_and_says_why() {
    let pg = PgCluster::start_with(&[("shared_preload_libraries", "''")]);
    pg.create_database("plain");
    pg.psql("plain", "CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    let pool = pool(&pg.url("plain")).await;
    let s = sample(&pool).await;
    assert!(s.statements.is_none());
    assert!(
        s.errors.is_empty(),
        "nothing failed, it is simply unavailable: {:?}",
        s.errors
    );
    let missing = s
        .capabilities
        .unavailable
        .iter()
        .find(|u| u.name == "pg_stat_statements")
        .unwrap();
    assert!(
        missing.remedy.contains("shared_preload_libraries"),
        "{missing:?}"
    );
    assert!(
        s.tables.iter().any(|t| t.qualified_name() == "public.t"),
        "the rest is collected"
    );
    assert!(s.settings.max_connections > 0);
    let snap = build(&pool, &s, Window::default().advance(&s, Instant::now())).await;
    assert!(snap.labels["pg.unavailable"].contains("pg_stat_statements"));
    assert!(snap.measurements.unwrap().p95_query_latency_ms.is_none());
}

// ------------------------------------------------------------------ orchestration

/// Knowledge as the collector uses it: a list of databases it can change, and the health
/// reports it received. Every other RPC answers UNIMPLEMENTED.
#[derive(Clone, Default)]
struct Registry {
    databases: Arc<Mutex<Vec<RegisteredDatabase>>>,
    reports: Arc<Mutex<Vec<UpdateDatabaseHealthRequest>>>,
}

impl Registry {
    fn set(&self, id: &str, connection_string: &str) {
        let mut databases = self.databases.lock().unwrap();
        databases.retain(|d| d.database_id != id);
        databases.push(RegisteredDatabase {
            database_id: id.into(),
            connection_string: connection_string.into(),
            enabled: true,
            ..Default::default()
        });
    }

    fn last_report(&self, id: &str) -> Option<UpdateDatabaseHealthRequest> {
        self.reports
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| r.database_id == id)
            .cloned()
    }
}

/// The methods `#[tonic::async_trait]` would generate, answering UNIMPLEMENTED (a macro inside
/// the impl is expanded after async_trait has run, so it writes the desugared form itself).
macro_rules! unimplemented_rpcs {
    ($($name:ident($req:ty) -> $resp:ty;)*) => {
        $(fn $name<'life0, 'async_trait>(
            &'life0 self,
            _: Request<$req>,
        ) -> std::pin::Pin<Box<
            dyn std::future::Future<Output = Result<GrpcResponse<$resp>, Status>> + Send + 'async_trait,
        >>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async { Err(Status::unimplemented(stringify!($name))) })
        })*
    };
}

#[tonic::async_trait]
impl KnowledgeService for Registry {
    async fn list_databases(
        &self,
        _: Request<ListDatabasesRequest>,
    ) -> Result<GrpcResponse<DatabaseListResponse>, Status> {
        let databases = self.databases.lock().unwrap().clone();
        Ok(GrpcResponse::new(DatabaseListResponse { databases }))
    }
    async fn update_database_health(
        &self,
        request: Request<UpdateDatabaseHealthRequest>,
    ) -> Result<GrpcResponse<Response>, Status> {
        self.reports.lock().unwrap().push(request.into_inner());
        Ok(GrpcResponse::new(Response {
            success: true,
            message: String::new(),
        }))
    }
    unimplemented_rpcs! {
        register_detection(RegisterDetectionRequest) -> DetectionResponse;
        is_detection_active(DetectionKeyRequest) -> DetectionStatusResponse;
        get_active_detections(DatabaseFilterRequest) -> DetectionListResponse;
        mark_detection_resolved(ResolveDetectionRequest) -> Response;
        register_action(RegisterActionRequest) -> ActionResponse;
        update_action_status(UpdateActionRequest) -> Response;
        get_pending_actions(DatabaseFilterRequest) -> ActionListResponse;
        register_database(RegisterDatabaseRequest) -> DatabaseResponse;
        get_database(GetDatabaseRequest) -> GetDatabaseResponse;
        unregister_database(UnregisterDatabaseRequest) -> Response;
        update_database(UpdateDatabaseRequest) -> Response;
        get_system_config(GetSystemConfigRequest) -> SystemConfig;
        save_system_config(SaveSystemConfigRequest) -> Response;
        get_system_status(GetSystemStatusRequest) -> SystemStatus;
        flush_all_data(FlushAllDataRequest) -> FlushAllDataResponse;
        get_system_stats(GetSystemStatsRequest) -> GetSystemStatsResponse;
        get_detection(GetDetectionRequest) -> GetDetectionResponse;
        get_action(GetActionRequest) -> GetActionResponse;
        list_actions(ListActionsRequest) -> ActionListResponse;
        save_ledger_entry(LedgerEntry) -> Response;
        get_ledger_entry(GetLedgerEntryRequest) -> GetLedgerEntryResponse;
        list_ledger(ListLedgerRequest) -> ListLedgerResponse;
        acquire_lease(LeaseRequest) -> LeaseResponse;
        release_lease(LeaseRequest) -> Response;
    }
}

/// The analyser's end of the stream: records every snapshot with when it arrived, and can fail
/// the open stream as a restarting analyser would.
#[derive(Clone, Default)]
struct Recorder {
    received: Arc<Mutex<Vec<(Instant, MetricSnapshot)>>>,
    fail_open_stream: Arc<std::sync::atomic::AtomicBool>,
    failed_at: Arc<Mutex<Option<Instant>>>,
}

impl Recorder {
    fn of(&self, id: &str) -> Vec<(Instant, MetricSnapshot)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.database_id == id)
            .cloned()
            .collect()
    }
}

#[tonic::async_trait]
impl MetricsService for Recorder {
    async fn register_database(
        &self,
        _: Request<DatabaseInfo>,
    ) -> Result<GrpcResponse<RegistrationAck>, Status> {
        Err(Status::unimplemented("register_database"))
    }
    async fn stream_metrics(
        &self,
        request: Request<Streaming<MetricSnapshot>>,
    ) -> Result<GrpcResponse<MetricsAck>, Status> {
        let mut stream = request.into_inner();
        let mut count = 0;
        while let Some(snapshot) = stream.message().await? {
            if self
                .fail_open_stream
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                *self.failed_at.lock().unwrap() = Some(Instant::now());
                return Err(Status::unavailable("analyser restarting"));
            }
            count += 1;
            self.received
                .lock()
                .unwrap()
                .push((Instant::now(), snapshot));
        }
        Ok(GrpcResponse::new(MetricsAck {
            total_metrics: count,
            status: "healthy".into(),
        }))
    }
}

async fn serve(router: tonic::transport::server::Router) -> (String, Shutdown) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = Shutdown::new();
    tokio::spawn(lifecycle::net::serve_grpc(
        "test",
        router,
        listener,
        shutdown.clone(),
    ));
    (addr, shutdown)
}

/// A server that accepts connections and never answers: the worst kind of unreachable.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("postgres://postgres@{addr}/app")
}

#[tokio::test]
async fn an_unreachable_database_does_not_delay_another_and_a_changed_connection_string_is_picked_up()
 {
    let pg = PgCluster::start();
    app_database(&pg);
    pg.create_database("other");
    pg.psql("other", "CREATE TABLE only_in_other (id int)");

    let plain = PgCluster::start_with(&[("shared_preload_libraries", "''")]);
    let registry = Registry::default();
    registry.set("good", &pg.url("app"));
    registry.set("dead", &black_hole().await);
    registry.set("plain", &plain.url("postgres"));
    let recorder = Recorder::default();
    let nats = testkit::NatsServer::start();
    let subscriber = async_nats::connect(nats.url()).await.unwrap();
    let mut metrics = subscriber
        .subscribe(proto::subjects::METRICS)
        .await
        .unwrap();
    subscriber.flush().await.unwrap();
    let (knowledge_addr, stop_knowledge) = serve(
        tonic::transport::Server::builder()
            .add_service(KnowledgeServiceServer::new(registry.clone())),
    )
    .await;
    let (analyser_addr, stop_analyser) = serve(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(recorder.clone())),
    )
    .await;

    let env = Env::from_map(HashMap::from([
        ("HEALTH_PORT", "0".to_owned()),
        ("KNOWLEDGE_ADDRESS", knowledge_addr),
        ("ANALYSER_ADDRESS", analyser_addr),
        ("NATS_URL", nats.url()),
        ("COLLECTION_INTERVAL", "1s".to_owned()),
        ("SYNC_INTERVAL", "5s".to_owned()),
    ]));
    let shutdown = Shutdown::new();
    let app = App::build(Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let health_url = format!("http://{}/health", app.health_addr());
    let task = tokio::spawn(app.run());

    // At a 1 s interval the good database keeps its pace while the dead one hangs.
    let deadline = Instant::now() + Duration::from_secs(20);
    while recorder.of("good").len() < 5 {
        assert!(
            Instant::now() < deadline,
            "good database not collected every second"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let arrivals: Vec<Instant> = recorder.of("good").iter().map(|(t, _)| *t).collect();
    let span = arrivals[4].duration_since(arrivals[1]);
    assert!(
        span < Duration::from_secs(6),
        "three intervals took {span:?}"
    );
    let received = recorder.of("good");
    let windowed = received[2].1.clone();
    assert!(windowed.time_delta_seconds.is_some());
    assert_eq!(windowed.postgres.as_ref().unwrap().database_name, "app");
    // The first snapshot on the stream carries the whole table list; the next ones what changed
    // since the one before (docs/decisions/0009).
    let first = received[0].1.postgres.clone().unwrap();
    let first_list = first.table_list.unwrap();
    assert!(!first_list.partial);
    assert!(
        first
            .tables
            .iter()
            .any(|t| t.qualified_name == "public.orders")
    );
    let second = received[1].1.postgres.clone().unwrap().table_list.unwrap();
    let third = windowed.postgres.unwrap().table_list.unwrap();
    assert!(third.partial, "{third:?}");
    assert_eq!(
        (second.version, third.base_version),
        (first_list.version + 1, second.version)
    );
    assert!(
        !windowed
            .extended_metrics
            .keys()
            .any(|k| k.starts_with("pg.table.")),
        "per-table figures go to NATS only"
    );

    // The same snapshots reach NATS `metrics` as the original's JSON.
    let deadline = Instant::now() + Duration::from_secs(10);
    let event: serde_json::Value = loop {
        let message = tokio::time::timeout(
            Duration::from_secs(10),
            futures::StreamExt::next(&mut metrics),
        )
        .await
        .expect("a metrics message within 10 s")
        .unwrap();
        let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        if event["database_id"] == "good" && event["time_delta_seconds"].is_number() {
            break event;
        }
        assert!(
            Instant::now() < deadline,
            "no windowed metrics for good on NATS"
        );
    };
    assert_eq!(event["database_type"], "postgresql");
    assert!(
        event["measurements"]["max_connections"].as_i64().unwrap() > 0,
        "{event}"
    );
    assert!(
        event["extended_metrics"]["pg.database_size_mb"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        event["extended_metrics"]["pg.table.public.orders.live_tuples"].is_number(),
        "NATS keeps the per-table figures: {event}"
    );
    assert!(
        event.get("postgres").is_none(),
        "the typed detail stays on the gRPC stream"
    );

    let good = registry.last_report("good").unwrap();
    assert_eq!(good.status, "healthy");
    assert!(good.version.starts_with("15"), "{}", good.version);
    assert!(good.features.unwrap().pg_stat_statements);
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        if let Some(report) = registry.last_report("dead") {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "the dead database was never reported"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dead.status, "unreachable");
    assert!(!dead.last_error.is_empty());

    let sessions = pg.psql(
        "app",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'startupmonkey-collector'",
    );
    assert_ne!(sessions, "0", "our sessions carry our name");
    let health: serde_json::Value = http()
        .get(&health_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["databases"]["good"]["status"], "healthy", "{health}");
    assert_eq!(
        health["databases"]["dead"]["status"], "unreachable",
        "{health}"
    );
    // The same, for Prometheus: each database's cycles timed and its last snapshot's size; the
    // dead one's failed cycles counted.
    let metrics = http()
        .get(health_url.replace("/health", "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in {metrics}"))
    };
    assert!(value(r#"startupmonkey_cycle_duration_seconds_count{database_id="good"}"#) >= 5.0);
    assert!(value(r#"startupmonkey_snapshot_bytes{database_id="good"}"#) > 100.0);
    assert!(value(r#"startupmonkey_cycles_unreachable_total{database_id="dead"}"#) >= 1.0);
    // A server without pg_stat_statements: collected, and what is missing is said everywhere.
    let degraded = &health["databases"]["plain"];
    assert_eq!(degraded["status"], "healthy", "{health}");
    assert!(
        degraded["unavailable"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == "pg_stat_statements"
                && u["remedy"]
                    .as_str()
                    .unwrap()
                    .contains("shared_preload_libraries")),
        "{health}"
    );
    let plain_report = registry.last_report("plain").unwrap();
    let features = plain_report.features.unwrap();
    assert!(!features.pg_stat_statements);
    assert!(
        features
            .unavailable
            .iter()
            .any(|u| u.name == "pg_stat_statements")
    );
    assert!(
        !recorder.of("plain").is_empty(),
        "still streamed to the analyser"
    );

    // Point "good" at another database: the next sync restarts its collection there.
    registry.set("good", &pg.url("other"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The restarted collection's first snapshot carries its whole table list.
        if recorder.of("good").iter().any(|(_, snap)| {
            snap.postgres
                .as_ref()
                .unwrap()
                .tables
                .iter()
                .any(|t| t.qualified_name == "public.only_in_other")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the changed connection string was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The analyser fails the open stream (as when it restarts): the collector reopens it.
    recorder
        .fail_open_stream
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let failed_at = *recorder.failed_at.lock().unwrap();
        if let Some(failed_at) = failed_at
            && recorder.of("good").iter().any(|(t, _)| *t > failed_at)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the collector never reopened the analyser stream (failed at {:?}, {} received)",
            recorder.failed_at.lock().unwrap(),
            recorder.of("good").len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("stops within the drain deadline")
        .unwrap()
        .unwrap();
    stop_knowledge.trigger();
    stop_analyser.trigger();
}

/// HTTP with a deadline, so a server that stops answering fails the test instead of hanging it.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn started_alone_it_is_healthy_not_ready_and_stops_on_shutdown() {
    // Knowledge, the analyser and NATS all absent: nothing to collect, nothing to wait for.
    let closed = || format!("127.0.0.1:{}", testkit::free_port());
    let env = Env::from_map([
        ("HEALTH_PORT", "0".to_owned()),
        ("KNOWLEDGE_ADDRESS", closed()),
        ("ANALYSER_ADDRESS", closed()),
        ("NATS_URL", format!("nats://{}", closed())),
    ]);
    let shutdown = Shutdown::new();
    let app = App::build(Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", app.health_addr());
    let task = tokio::spawn(app.run());

    let health = http().get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["service"].as_str()),
        (Some("healthy"), Some("collector"))
    );
    let ready = http().get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["knowledge"], "unreachable", "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("stops within the drain deadline")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_binary_refuses_a_bad_setting_naming_the_variable_and_value() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_collector"))
        .env("COLLECTION_INTERVAL", "fast")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("COLLECTION_INTERVAL=\"fast\""), "{stderr}");
}

// ------------------------------------------------------------------ sizes, indexes, table lists

/// Calls of our own statements whose text contains `what`, since the last reset.
async fn our_calls(pool: &PgPool, what: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements \
         WHERE query LIKE '/* startupmonkey-collector */%' AND query LIKE '%' || $1 || '%'",
    )
    .bind(what)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn sizes_and_definitions_are_read_again_only_when_they_can_have_changed() {
    let pg = PgCluster::start();
    app_database(&pg);
    let pool = pool(&pg.url("app")).await;
    let mut database = collector::cycle::Database::default();
    let collect = async |database: &mut collector::cycle::Database| {
        let (sample, snap) = database
            .collect("db1", &pool, true, 0, Instant::now())
            .await
            .unwrap();
        assert!(sample.errors.is_empty(), "{:?}", sample.errors);
        snap.postgres.unwrap()
    };
    let first = collect(&mut database).await;
    let (_, whole) = database
        .collect("db1", &pool, true, 0, Instant::now())
        .await
        .unwrap();
    assert!(
        whole.measurements.unwrap().used_storage_bytes.unwrap() > 0,
        "the database's size is known from the first cycle"
    );
    let orders = first.tables.iter().find(|t| t.name == "orders").unwrap();
    assert!(
        orders.table_bytes > 0 && orders.indexes_bytes > 0,
        "{orders:?}"
    );
    let before = orders.table_bytes;
    let orders = orders.clone();

    // Once the setup's statistics have settled, a cycle reads no size and no definition.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&pool)
            .await
            .unwrap();
        collect(&mut database).await;
        collect(&mut database).await;
        let sizes = our_calls(&pool, "pg_table_size").await;
        let definitions = our_calls(&pool, "pg_get_indexdef").await;
        let database_size = our_calls(&pool, "pg_database_size").await;
        if sizes == 0 && definitions == 0 && database_size == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an idle database still has its sizes ({sizes} calls), definitions \
             ({definitions} calls) or the database's size ({database_size} calls) read every cycle"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Index scans are windowed for the tables carried, as every other counter.
    let mut script = "SET enable_seqscan = off;".to_owned();
    script.push_str(&"SELECT note FROM orders WHERE id = 7;".repeat(10));
    pg.psql("app", &script);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut scanned = 0;
    while scanned < 10 {
        let detail = collect(&mut database).await;
        let orders = detail.tables.iter().find(|t| t.name == "orders").unwrap();
        scanned += orders.idx_scan.expect("orders has an index");
        assert!(
            Instant::now() < deadline,
            "10 index scans of orders, {scanned} seen"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(scanned, 10);

    // A new index is in the very next snapshot: the catalog changed.
    pg.psql("app", "CREATE INDEX orders_note ON orders (note)");
    let next = collect(&mut database).await;
    let note = next
        .indexes
        .iter()
        .find(|i| i.name == "orders_note")
        .expect("the new index in the next snapshot");
    assert_eq!(note.columns, vec!["note".to_owned()]);
    assert_eq!(note.qualified_table, "public.orders");
    let orders_now = next.tables.iter().find(|t| t.name == "orders").unwrap();
    assert!(
        orders_now.indexes_bytes >= orders.indexes_bytes + note.size_bytes,
        "the table's index size counts the new index: {orders_now:?}"
    );

    // A table that grows gets its new size as soon as its counters show the writes.
    pg.psql(
        "app",
        "INSERT INTO orders SELECT g, g % 7, 'n' FROM generate_series(100000, 150000) g",
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let detail = collect(&mut database).await;
        let orders = detail.tables.iter().find(|t| t.name == "orders").unwrap();
        if orders.table_bytes > before {
            assert!(
                detail
                    .indexes
                    .iter()
                    .any(|i| i.name == "orders_note" && i.size_bytes > 8192),
                "its indexes' sizes too: {:?}",
                detail.indexes
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "orders grew by 50,000 rows but is still reported at {} bytes",
            orders.table_bytes
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A dropped table leaves the list; a renamed index is read again under its new name.
    pg.psql(
        "app",
        "DROP TABLE billing.customers; ALTER INDEX orders_note RENAME TO orders_by_note",
    );
    let after = collect(&mut database).await;
    assert!(
        !after
            .tables
            .iter()
            .any(|t| t.qualified_name == "billing.customers")
    );
    assert!(after.indexes.iter().any(|i| i.name == "orders_by_note"));
    assert!(!after.indexes.iter().any(|i| i.name == "orders_note"));
}

#[tokio::test]
async fn an_idle_database_sends_the_analyser_a_snapshot_of_a_few_kilobytes() {
    use prost::Message;

    let pg = PgCluster::start();
    pg.create_database("many");
    // 300 tables, each with dead rows: the 100 with the most are reported whatever happens.
    pg.psql(
        "many",
        "CREATE EXTENSION pg_stat_statements; \
         DO $$ BEGIN FOR i IN 1..300 LOOP \
           EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text) \
                           WITH (autovacuum_enabled = false)', i); \
           EXECUTE format('INSERT INTO t%s SELECT g, ''v'' FROM generate_series(1, 20) g', i); \
           EXECUTE format('DELETE FROM t%s WHERE id <= %s', i, 1 + i % 7); \
         END LOOP; END $$",
    );
    let pool = pool(&pg.url("many")).await;
    let mut database = collector::cycle::Database::default();
    let mut cycle = async || {
        let started = Instant::now();
        let (_, mut snap) = database
            .collect("db1", &pool, true, 0, started)
            .await
            .unwrap();
        let whole = snap.encoded_len();
        database.sent.encode(&mut snap, 1, started);
        (whole, snap)
    };
    let (whole, first) = cycle().await;
    assert_eq!(first.postgres.as_ref().unwrap().tables.len(), 100);
    assert!(whole > 20_000, "the whole list is large: {whole} bytes");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (whole, sent) = cycle().await;
        let detail = sent.postgres.as_ref().unwrap();
        let list = detail.table_list.as_ref().unwrap();
        if list.partial && detail.tables.is_empty() {
            let bytes = sent.encoded_len();
            assert!(
                bytes <= 4096,
                "idle snapshot of {bytes} bytes (whole: {whole})"
            );
            assert!(list.removed.is_empty());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tables still sent on an idle database: {:?}",
            detail
                .tables
                .iter()
                .map(|t| &t.qualified_name)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn the_databases_of_one_server_share_one_read_of_its_sessions_and_statements() {
    let pg = PgCluster::start();
    app_database(&pg);
    pg.create_database("shop");
    pg.psql(
        "shop",
        "CREATE EXTENSION pg_stat_statements; \
         CREATE TABLE items (id int PRIMARY KEY, price int); \
         INSERT INTO items SELECT g, g FROM generate_series(1, 100) g;",
    );
    let idle = PgPoolOptions::new()
        .max_connections(3)
        .min_connections(3)
        .connect(&pg.url("shop"))
        .await
        .unwrap();
    let (app, shop) = (pool(&pg.url("app")).await, pool(&pg.url("shop")).await);
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&app)
        .await
        .unwrap();
    pg.psql("app", "SELECT count(*) FROM orders WHERE note = 'a';");
    pg.psql("shop", "SELECT count(*) FROM items WHERE price > 7;");

    let wide = pg_stats::ServerWide::sharing(Duration::from_secs(600));
    let mut databases = [
        collector::cycle::Database::sharing(wide.clone()),
        collector::cycle::Database::sharing(wide.clone()),
    ];
    let mut samples = Vec::new();
    for (database, pool) in databases.iter_mut().zip([&app, &shop]) {
        let (sample, _) = database
            .collect("db", pool, true, 0, Instant::now())
            .await
            .unwrap();
        assert!(sample.errors.is_empty(), "{:?}", sample.errors);
        samples.push(sample);
    }
    assert_eq!(our_calls(&app, "FROM pg_stat_activity a").await, 1);
    assert_eq!(our_calls(&app, "FROM pg_stat_statements s").await, 1);

    // Each database gets its own share of what was read once.
    let texts = |sample: &Sample| -> Vec<String> {
        let statements = sample.statements.as_ref().unwrap();
        statements.iter().map(|s| s.query.clone()).collect()
    };
    let (app_texts, shop_texts) = (texts(&samples[0]), texts(&samples[1]));
    assert!(
        app_texts.iter().any(|q| q.contains("orders")),
        "{app_texts:?}"
    );
    assert!(
        !app_texts.iter().any(|q| q.contains("items")),
        "{app_texts:?}"
    );
    assert!(
        shop_texts.iter().any(|q| q.contains("items")),
        "{shop_texts:?}"
    );
    assert!(
        !shop_texts.iter().any(|q| q.contains("orders")),
        "{shop_texts:?}"
    );
    let (app_conn, shop_conn) = (
        samples[0].connections.clone().unwrap(),
        samples[1].connections.clone().unwrap(),
    );
    assert_eq!(
        (
            app_conn.database_name.as_str(),
            shop_conn.database_name.as_str()
        ),
        ("app", "shop")
    );
    // The three idle sessions, and the collector's own on shop when its pool had one open.
    assert!(
        (3..=5).contains(&shop_conn.database),
        "the three idle sessions: {shop_conn:?}"
    );
    assert!(
        app_conn.database >= 1,
        "the reading session counts: {app_conn:?}"
    );
    assert_eq!(app_conn.total, shop_conn.total, "every database's clients");
    assert_eq!(shop_conn.busiest_database, "shop");

    // Without sharing, each database reads for itself.
    let alone = pg_stats::ServerWide::default();
    for pool in [&app, &shop] {
        pg_stats::collect(pool, true, &alone).await.unwrap();
    }
    assert_eq!(our_calls(&app, "FROM pg_stat_activity a").await, 3);
    drop(idle);
}

#[tokio::test]
async fn databases_of_two_servers_never_share_a_read_even_under_the_same_name() {
    // Two clusters, each with a database "app" reached as the same role: only what the server
    // says of itself (address, port, start time) tells them apart.
    let (one, two) = (PgCluster::start(), PgCluster::start());
    for (pg, table) in [(&one, "apples"), (&two, "pears")] {
        pg.create_database("app");
        pg.psql(
            "app",
            &format!(
                "CREATE EXTENSION pg_stat_statements; CREATE TABLE {table} (id int); \
                 SELECT pg_stat_statements_reset(); SELECT count(*) FROM {table};"
            ),
        );
    }
    let wide = pg_stats::ServerWide::sharing(Duration::from_secs(600));
    let mut texts = Vec::new();
    for pg in [&one, &two] {
        let pool = pool(&pg.url("app")).await;
        let (sample, _) = collector::cycle::Database::sharing(wide.clone())
            .collect("db", &pool, true, 0, Instant::now())
            .await
            .unwrap();
        assert!(sample.errors.is_empty(), "{:?}", sample.errors);
        let statements = sample.statements.unwrap();
        texts.push(
            statements
                .iter()
                .map(|s| s.query.clone())
                .collect::<Vec<_>>(),
        );
        assert_eq!(our_calls(&pool, "FROM pg_stat_activity a").await, 1);
    }
    assert!(
        texts[0].iter().any(|q| q.contains("apples")),
        "{:?}",
        texts[0]
    );
    assert!(
        !texts[0].iter().any(|q| q.contains("pears")),
        "{:?}",
        texts[0]
    );
    assert!(
        texts[1].iter().any(|q| q.contains("pears")),
        "{:?}",
        texts[1]
    );
    assert!(
        !texts[1].iter().any(|q| q.contains("apples")),
        "{:?}",
        texts[1]
    );
}
