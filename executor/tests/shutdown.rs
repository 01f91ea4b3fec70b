//! Shutdown while an action runs: the executor (in this process, or the `executor` binary sent a
//! real SIGTERM; knowledge, NATS and Redis real) is stopped in the middle of a
//! `CREATE INDEX CONCURRENTLY` on a two-million-row table.

use std::time::{Duration, Instant};

use executor::{App, Config};
use lifecycle::{Env, Shutdown};
use proto::actions::{CreateIndex, KeyColumn, Plan, StoredAction};
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use proto::knowledge::{GetActionRequest, RegisterActionRequest, RegisterDatabaseRequest};
use testkit::{NatsServer, PgCluster, RedisServer};

/// Knowledge on `redis`, in-process; its address.
async fn knowledge(redis: &RedisServer, key_dir: &std::path::Path, shutdown: &Shutdown) -> String {
    let env = Env::from_map([
        ("GRPC_PORT", "0".to_owned()),
        ("HEALTH_PORT", "0".to_owned()),
        ("REDIS_ADDR", redis.addr()),
        (
            "KNOWLEDGE_KEY_FILE",
            key_dir.join("knowledge.key").display().to_string(),
        ),
    ]);
    let app = knowledge::App::build(knowledge::Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let address = app.grpc_addr().to_string();
    tokio::spawn(app.run());
    address
}

/// An executor running a `CREATE INDEX CONCURRENTLY` it took from knowledge at start, with
/// `drain_seconds` to finish at shutdown; what the test needs to watch it.
struct Running {
    pg: PgCluster,
    client: KnowledgeServiceClient<tonic::transport::Channel>,
    shutdown: Shutdown,
    app: Executor,
    knowledge_shutdown: Shutdown,
    _servers: (
        RedisServer,
        NatsServer,
        tempfile::TempDir,
        tempfile::TempDir,
    ),
}

/// The executor under test: in this process, or the `executor` binary as a child process.
enum Executor {
    InProcess(tokio::task::JoinHandle<Result<(), executor::app::AppError>>),
    Process(std::process::Child),
}

impl Drop for Executor {
    /// A test that failed half-way leaves no executor process behind.
    fn drop(&mut self) {
        if let Executor::Process(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Running {
    async fn start(drain_seconds: u64) -> Self {
        Self::start_as(drain_seconds, false).await
    }

    async fn start_as(drain_seconds: u64, as_process: bool) -> Self {
        // A build slow enough to be caught running and to outlast a 1 s drain deadline: two
        // million wide rows sorted in 1 MB (about 8 s on a quiet machine).
        let pg = PgCluster::start_with(&[
            ("maintenance_work_mem", "'1MB'"),
            ("max_parallel_maintenance_workers", "0"),
        ]);
        pg.create_database("app");
        pg.psql(
            "app",
            "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS a, \
         md5((g * 13)::text) AS b FROM generate_series(1, 2000000) g; ANALYZE big;",
        );
        let redis = RedisServer::start();
        let nats = NatsServer::start();
        let key_dir = tempfile::tempdir().unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let knowledge_shutdown = Shutdown::new();
        let knowledge_addr = knowledge(&redis, key_dir.path(), &knowledge_shutdown).await;
        let mut client =
            KnowledgeServiceClient::new(proto::clients::channel(&knowledge_addr).unwrap());
        client
            .register_database(RegisterDatabaseRequest {
                database_id: "db".into(),
                connection_string: pg.url("app"),
                enabled: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let plan = Plan::CreateIndex(CreateIndex {
            schema: "public".into(),
            table: "big".into(),
            index_name: "idx_big_a_b".into(),
            columns: ["a", "b"]
                .map(|name| KeyColumn {
                    name: name.into(),
                    descending: false,
                    function: None,
                })
                .to_vec(),
            include: Vec::new(),
            predicate: None,
        });
        // Queued before the executor starts: its start-up recovery runs it.
        client
            .register_action(RegisterActionRequest {
                id: "act-build".into(),
                action_type: "create_index".into(),
                database_id: "db".into(),
                status: "queued".into(),
                message: "Queued".into(),
                params_json: StoredAction {
                    plan,
                    detection_key: "db:missing_index:public.big.a".into(),
                    description: "CREATE INDEX CONCURRENTLY idx_big_a_b".into(),
                }
                .to_params_json(),
                can_rollback: true,
                ..Default::default()
            })
            .await
            .unwrap();

        let env = [
            ("GRPC_PORT", "0".to_owned()),
            ("HEALTH_PORT", "0".to_owned()),
            ("HTTP_PORT", "0".to_owned()),
            ("KNOWLEDGE_ADDRESS", knowledge_addr.clone()),
            ("NATS_URL", nats.url()),
            ("STATE_DIR", state_dir.path().display().to_string()),
            ("EXECUTOR_ID", "executor-under-test".to_owned()),
            ("SHUTDOWN_DRAIN_SECONDS", drain_seconds.to_string()),
        ];
        let shutdown = Shutdown::new();
        let app = if as_process {
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_executor"))
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(env.iter().map(|(k, v)| (k.to_owned(), v.to_owned())))
                .spawn()
                .expect("the executor binary starts");
            Executor::Process(child)
        } else {
            let app = App::build(
                Config::from_env(&Env::from_map(env)).unwrap(),
                shutdown.clone(),
            )
            .await
            .unwrap();
            Executor::InProcess(tokio::spawn(app.run()))
        };
        Self {
            pg,
            client,
            shutdown,
            app,
            knowledge_shutdown,
            _servers: (redis, nats, key_dir, state_dir),
        }
    }

    /// Waits until the build is visibly running: its progress row is in a build phase.
    async fn building(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let phase = self.pg.psql(
                "app",
                "SELECT p.phase FROM pg_stat_progress_create_index p \
                 JOIN pg_stat_activity a ON a.pid = p.pid \
                 WHERE p.relid = 'big'::regclass \
                 AND a.application_name = 'startupmonkey-executor'",
            );
            if phase.starts_with("building index") {
                return phase;
            }
            assert!(
                Instant::now() < deadline,
                "the build never showed in pg_stat_progress_create_index (last: {phase:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the in-process executor the way SIGTERM does (its shutdown is triggered) and waits
    /// for `run` to return.
    async fn stop_in_process(&mut self, limit: Duration) {
        self.shutdown.trigger();
        let Executor::InProcess(app) = &mut self.app else {
            panic!("not in process")
        };
        tokio::time::timeout(limit, app)
            .await
            .expect("the executor stops within the drain deadline and its cleanup")
            .unwrap()
            .unwrap();
    }

    async fn action(&self) -> proto::knowledge::Action {
        self.client
            .clone()
            .get_action(GetActionRequest {
                action_id: "act-build".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .action
            .unwrap()
    }
}

#[tokio::test]
async fn shutdown_cancels_a_running_index_build_drops_its_leftover_and_records_why() {
    let mut running = Running::start(1).await;
    let phase = running.building().await;
    assert_eq!(running.action().await.status, "executing", "{phase}");

    // The path SIGTERM takes: the process's shutdown is triggered, `run` returns.
    let stopping = Instant::now();
    running.stop_in_process(Duration::from_secs(45)).await;
    assert!(
        stopping.elapsed() >= Duration::from_secs(1),
        "the running action was given the drain deadline"
    );

    assert_cancelled_cleanly(&running).await;
    running.knowledge_shutdown.trigger();
}

/// Nothing of the build is left — no INVALID index, no index at all, no session building — and
/// knowledge holds a definite state with the reason.
async fn assert_cancelled_cleanly(running: &Running) {
    let pg = &running.pg;
    let indexes = pg.psql(
        "app",
        "SELECT count(*) FILTER (WHERE NOT i.indisvalid), count(*) FROM pg_index i \
         WHERE i.indrelid = 'big'::regclass",
    );
    assert_eq!(indexes, "0|0", "INVALID and all indexes on the table");
    let building = pg.psql(
        "app",
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%CREATE INDEX%' \
         AND application_name = 'startupmonkey-executor'",
    );
    assert_eq!(building, "0");
    // And knowledge holds a definite state with the reason.
    let recorded = running.action().await;
    assert_eq!(recorded.status, "failed", "{recorded:?}");
    assert!(
        recorded.error.contains("cancelled by shutdown"),
        "{}",
        recorded.error
    );
    assert!(
        recorded.error.contains("INVALID index it left was dropped")
            || recorded.error.contains("left no index behind"),
        "{}",
        recorded.error
    );
}

#[tokio::test]
async fn sigterm_to_the_executor_process_mid_build_leaves_no_invalid_index_and_records_why() {
    let mut running = Running::start_as(1, true).await;
    let phase = running.building().await;
    assert_eq!(running.action().await.status, "executing", "{phase}");
    let Executor::Process(child) = &mut running.app else {
        unreachable!()
    };
    let pid = child.id().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(signalled.success(), "SIGTERM sent to {pid}");
    let deadline = Instant::now() + Duration::from_secs(45);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the executor did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "a clean exit after SIGTERM: {status}");
    assert_cancelled_cleanly(&running).await;
    running.knowledge_shutdown.trigger();
}

#[tokio::test]
async fn a_build_that_finishes_within_the_drain_deadline_completes_before_the_executor_stops() {
    let mut running = Running::start(60).await;
    running.building().await;
    running.stop_in_process(Duration::from_secs(90)).await;
    let recorded = running.action().await;
    assert_eq!(recorded.status, "completed", "{recorded:?}");
    let indexes = running.pg.psql(
        "app",
        "SELECT count(*) FILTER (WHERE i.indisvalid), count(*) FROM pg_index i \
         WHERE i.indrelid = 'big'::regclass",
    );
    assert_eq!(indexes, "1|1", "valid and all indexes on the table");
    running.knowledge_shutdown.trigger();
}
