//! Knowledge, analyser and collector in this process against real Redis and NATS servers,
//! watching one database: shared by the system tests and the benchmarks.

use lifecycle::{Env, Shutdown};
use proto::knowledge::knowledge_service_client::KnowledgeServiceClient;
use proto::knowledge::{RegisterDatabaseRequest, SaveSystemConfigRequest, SystemConfig};
use testkit::{Certificates, NatsServer, RedisServer};
use tonic::transport::Channel;

/// Knowledge, analyser and collector running in this process against real servers.
pub struct Stack {
    pub knowledge: KnowledgeServiceClient<Channel>,
    pub knowledge_addr: String,
    analyser_port: u16,
    /// The analyser's `/health` port, fixed like its gRPC port so a restarted one keeps it.
    analyser_health_port: u16,
    analyser_shutdown: Shutdown,
    collection_interval: String,
    collector_shutdown: Shutdown,
    /// The first collector's health URL.
    pub collector_health: String,
    pub nats: NatsServer,
    pub shutdown: Shutdown,
    /// Append-only, so a restart (S12) keeps knowledge's state, as `make up` runs it.
    pub redis: RedisServer,
    /// What every service of this stack is given besides its own settings: NATS credentials and
    /// TLS, gRPC TLS (empty for a plain stack).
    pub shared_env: Vec<(&'static str, String)>,
    /// The CA and certificates of a secured stack.
    pub certificates: Option<Certificates>,
    _key_dir: tempfile::TempDir,
}

/// The NATS user and password of a secured stack.
pub const NATS_USER: &str = "startupmonkey";
pub const NATS_PASSWORD: &str = "n@ts: pass/word";
/// The Redis password of a secured stack.
pub const REDIS_PASSWORD: &str = "r3dis pass";

impl Stack {
    /// Collecting every second.
    pub async fn start(settings: SystemConfig, database: (&str, String)) -> Self {
        Self::start_with(settings, database, "1s").await
    }

    pub async fn start_with(
        settings: SystemConfig,
        database: (&str, String),
        collection_interval: &str,
    ) -> Self {
        let redis = RedisServer::start_persistent();
        let nats = NatsServer::start();
        Self::start_on(settings, database, collection_interval, redis, nats, None).await
    }

    /// Every connection authenticated and encrypted: NATS with a user, a password and TLS with
    /// client certificates; Redis with a password over TLS; gRPC between the services with
    /// mutual TLS. Collecting every second.
    pub async fn start_secured(settings: SystemConfig, database: (&str, String)) -> Self {
        let certificates = Certificates::generate();
        let redis = RedisServer::start_secured(REDIS_PASSWORD, Some(&certificates));
        let nats = NatsServer::start_secured(NATS_USER, NATS_PASSWORD, Some(&certificates), true);
        Self::start_on(settings, database, "1s", redis, nats, Some(certificates)).await
    }

    async fn start_on(
        settings: SystemConfig,
        database: (&str, String),
        collection_interval: &str,
        redis: RedisServer,
        nats: NatsServer,
        certificates: Option<Certificates>,
    ) -> Self {
        let key_dir = tempfile::tempdir().unwrap();
        let shutdown = Shutdown::new();
        let path = |p: std::path::PathBuf| p.display().to_string();
        let shared_env = certificates.as_ref().map(secured_env).unwrap_or_default();
        let mut knowledge_env = vec![
            ("GRPC_PORT", "0".to_owned()),
            ("HEALTH_PORT", "0".to_owned()),
            ("REDIS_ADDR", redis.addr()),
            (
                "KNOWLEDGE_KEY_FILE",
                key_dir.path().join("k.key").display().to_string(),
            ),
        ];
        if let Some(c) = &certificates {
            knowledge_env.push(("REDIS_PASSWORD", REDIS_PASSWORD.to_owned()));
            knowledge_env.push(("REDIS_TLS_CA", path(c.ca())));
        }
        let knowledge_env = Env::from_map(knowledge_env.into_iter().chain(shared_env.clone()));
        let knowledge_app = knowledge::App::build(
            knowledge::Config::from_env(&knowledge_env).unwrap(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let knowledge_addr = knowledge_app.grpc_addr().to_string();
        tokio::spawn(knowledge_app.run());
        let mut client = KnowledgeServiceClient::new(grpc_channel(&shared_env, &knowledge_addr));
        client
            .save_system_config(SaveSystemConfigRequest {
                config: Some(settings),
            })
            .await
            .unwrap();
        // An empty id: nothing registered (a first run, for onboarding).
        if !database.0.is_empty() {
            client
                .register_database(RegisterDatabaseRequest {
                    database_id: database.0.into(),
                    connection_string: database.1,
                    enabled: true,
                    ..Default::default()
                })
                .await
                .unwrap();
        }

        let analyser_port = testkit::free_port();
        let analyser_health_port = testkit::free_port();
        let analyser_shutdown = Shutdown::new();
        start_analyser(
            &knowledge_addr,
            &nats.url(),
            &shared_env,
            (analyser_port, analyser_health_port),
            &analyser_shutdown,
        )
        .await;
        let analyser_addr = format!("127.0.0.1:{analyser_port}");

        let collector_shutdown = Shutdown::new();
        let (collector_health, _) = start_collector(
            &knowledge_addr,
            &analyser_addr,
            &nats.url(),
            &shared_env,
            collection_interval,
            "collector-a",
            &collector_shutdown,
        )
        .await;

        Self {
            knowledge: client,
            knowledge_addr,
            analyser_port,
            analyser_health_port,
            analyser_shutdown,
            collection_interval: collection_interval.to_owned(),
            collector_shutdown,
            collector_health,
            nats,
            shutdown,
            redis,
            shared_env,
            certificates,
            _key_dir: key_dir,
        }
    }

    /// A NATS client with this stack's credentials and TLS, as the services connect.
    pub async fn nats_client(&self) -> async_nats::Client {
        let env = Env::from_map(
            [("NATS_URL", self.nats.url())]
                .into_iter()
                .chain(self.shared_env.clone()),
        );
        lifecycle::nats::NatsSettings::from_env(&env)
            .unwrap()
            .connect("test")
            .await
            .unwrap()
    }
}

/// What every service of a secured stack is given: the NATS user, password and client
/// certificate, and its gRPC certificate with the CA (mutual TLS).
pub fn secured_env(c: &Certificates) -> Vec<(&'static str, String)> {
    let path = |p: std::path::PathBuf| p.display().to_string();
    vec![
        ("NATS_USER", NATS_USER.to_owned()),
        ("NATS_PASSWORD", NATS_PASSWORD.to_owned()),
        ("NATS_TLS_CA", path(c.ca())),
        ("NATS_TLS_CERT", path(c.client_cert())),
        ("NATS_TLS_KEY", path(c.client_key())),
        ("GRPC_TLS_CERT", path(c.server_cert())),
        ("GRPC_TLS_KEY", path(c.server_key())),
        ("GRPC_TLS_CA", path(c.ca())),
        ("GRPC_TLS_CLIENT_AUTH", "true".to_owned()),
    ]
}

/// A gRPC channel configured as the services' (mutual TLS on a secured stack).
pub fn grpc_channel(shared_env: &[(&'static str, String)], address: &str) -> Channel {
    lifecycle::grpc::GrpcTls::from_env(&Env::from_map(shared_env.iter().cloned()))
        .unwrap()
        .channel(address)
        .unwrap()
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.analyser_shutdown.trigger();
        self.collector_shutdown.trigger();
        self.shutdown.trigger();
    }
}

/// A collector named `id`; returns its health URL and its task.
async fn start_collector(
    knowledge: &str,
    analyser: &str,
    nats: &str,
    shared_env: &[(&'static str, String)],
    interval: &str,
    id: &str,
    shutdown: &Shutdown,
) -> (
    String,
    tokio::task::JoinHandle<Result<(), collector::app::AppError>>,
) {
    let env = Env::from_map(
        [
            ("HEALTH_PORT", "0".to_owned()),
            ("KNOWLEDGE_ADDRESS", knowledge.to_owned()),
            ("ANALYSER_ADDRESS", analyser.to_owned()),
            ("NATS_URL", nats.to_owned()),
            ("COLLECTION_INTERVAL", interval.to_owned()),
            ("SYNC_INTERVAL", "5s".to_owned()),
            ("COLLECTOR_ID", id.to_owned()),
        ]
        .into_iter()
        .chain(shared_env.iter().cloned()),
    );
    let app = collector::App::build(collector::Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let health = format!("http://{}/health", app.health_addr());
    (health, tokio::spawn(app.run()))
}

impl Stack {
    /// Another collector on the same knowledge, analyser and NATS.
    pub async fn start_collector(&self, id: &str, shutdown: &Shutdown) -> String {
        start_collector(
            &self.knowledge_addr,
            &format!("127.0.0.1:{}", self.analyser_port),
            &self.nats.url(),
            &self.shared_env,
            &self.collection_interval,
            id,
            shutdown,
        )
        .await
        .0
    }

    /// Stops the first collector (as a crash would, from the others' point of view, once its
    /// leases run out; it releases them on the way out).
    pub fn stop_collector(&self) {
        self.collector_shutdown.trigger();
    }
}

/// An analyser on `ports` (gRPC, health; fixed, so the collector finds a restarted one at the
/// same address, and a test reads the same `/health`).
async fn start_analyser(
    knowledge: &str,
    nats: &str,
    shared_env: &[(&'static str, String)],
    (port, health_port): (u16, u16),
    shutdown: &Shutdown,
) {
    let env = Env::from_map(
        [
            ("GRPC_PORT", port.to_string()),
            ("HEALTH_PORT", health_port.to_string()),
            ("KNOWLEDGE_ADDRESS", knowledge.to_owned()),
            ("NATS_URL", nats.to_owned()),
        ]
        .into_iter()
        .chain(shared_env.iter().cloned()),
    );
    let app = analyser::App::build(analyser::Config::from_env(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    tokio::spawn(app.run());
}

/// A binary of this workspace, built beside the test binary by `cargo nextest run --workspace`.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join(name);
    assert!(
        binary.exists(),
        "{} is missing: run the workspace's tests (make test) so the {name} binary is built",
        binary.display()
    );
    binary
}

/// A service running as its own process, killed (SIGKILL) when dropped.
pub struct Process(pub std::process::Child);

impl Process {
    /// SIGKILL, as a crash or the OOM killer would: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Stack {
    /// Replaces the in-process analyser with the `analyser` binary on the same address.
    pub async fn analyser_as_process(&mut self) -> Process {
        self.stop_analyser().await;
        let env = [
            ("GRPC_PORT", self.analyser_port.to_string()),
            ("HEALTH_PORT", self.analyser_health_port.to_string()),
            ("KNOWLEDGE_ADDRESS", self.knowledge_addr.clone()),
            ("NATS_URL", self.nats.url()),
        ];
        let child = std::process::Command::new(workspace_binary("analyser"))
            .envs(env.into_iter().chain(self.shared_env.iter().cloned()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let process = Process(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.analyser_port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the analyser process never listened"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        process
    }

    /// Stops the in-process analyser and waits until its port is free.
    async fn stop_analyser(&mut self) {
        self.analyser_shutdown.trigger();
        // Wait until the old one has let go of its port.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpListener::bind(("127.0.0.1", self.analyser_port)).is_err()
            || std::net::TcpListener::bind(("127.0.0.1", self.analyser_health_port)).is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the analyser did not stop"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Stops the analyser and starts a new one (nothing kept in memory) at the same address.
    pub async fn restart_analyser(&mut self) {
        self.stop_analyser().await;
        self.analyser_shutdown = Shutdown::new();
        start_analyser(
            &self.knowledge_addr,
            &self.nats.url(),
            &self.shared_env,
            (self.analyser_port, self.analyser_health_port),
            &self.analyser_shutdown,
        )
        .await;
    }

    /// Returns once the first collector has collected `cycles` more of `database_id` than when
    /// called (its `/health`), whether or not an analyser receives them.
    pub async fn collected_cycles(&self, database_id: &str, cycles: u64) {
        let collected = || async {
            let body: serde_json::Value = reqwest::get(&self.collector_health)
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<u64, String>(
                body["databases"][database_id]["cycles"]
                    .as_u64()
                    .unwrap_or(0),
            )
        };
        let from = collected().await.unwrap_or(0);
        eventually(
            format!("{cycles} more cycles of {database_id} collected (from {from})"),
            std::time::Duration::from_secs(20 + 5 * cycles),
            || async {
                match collected().await {
                    Ok(now) if now >= from + cycles => Ok(now),
                    Ok(now) => Err(format!("{now} collected")),
                    Err(error) => Err(error),
                }
            },
        )
        .await;
    }

    /// How many snapshots of `database_id` this stack's analyser has run its detectors on.
    pub async fn analysed(&self, database_id: &str) -> u64 {
        snapshots_analysed(self.analyser_health_port, database_id)
            .await
            .unwrap_or(0)
    }

    /// Returns once the analyser has run its detectors on `cycles` more snapshots of
    /// `database_id` than when called: the proof the pipeline ran through a window in which a
    /// test then asserts that nothing was found or done. Never a bare sleep.
    pub async fn analysed_cycles(&self, database_id: &str, cycles: u64) {
        let interval = self
            .collection_interval
            .strip_suffix('s')
            .and_then(|n| n.parse().ok())
            .map_or(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs,
            );
        analysed_cycles(self.analyser_health_port, database_id, cycles, interval).await
    }
}

/// `snapshots_analysed` of `database_id` on the analyser's `/health` at `port`; why not, when it
/// does not answer.
pub async fn snapshots_analysed(port: u16, database_id: &str) -> Result<u64, String> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let body: serde_json::Value = http
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body["snapshots_analysed"][database_id]
        .as_u64()
        .unwrap_or(0))
}

/// See [`Stack::analysed_cycles`]: `cycles` more snapshots of `database_id` through the analyser
/// whose `/health` is at `port`, collected every `interval`, within a generous deadline (slack
/// for a slow advisor on a busy machine).
pub async fn analysed_cycles(
    port: u16,
    database_id: &str,
    cycles: u64,
    interval: std::time::Duration,
) {
    let from = snapshots_analysed(port, database_id).await.unwrap_or(0);
    let within = std::time::Duration::from_secs(20)
        + (interval + std::time::Duration::from_secs(4)) * cycles as u32;
    eventually(
        format!("{cycles} more snapshots of {database_id} analysed (from {from})"),
        within,
        || async {
            match snapshots_analysed(port, database_id).await {
                Ok(now) if now >= from + cycles => Ok(now),
                Ok(now) => Err(format!("{now} analysed")),
                Err(error) => Err(error),
            }
        },
    )
    .await;
}

/// An executor of this stack, stopped and started on its own (to test restarts).
pub struct Executor {
    pub grpc: proto::executor::executor_service_client::ExecutorServiceClient<Channel>,
    pub grpc_addr: String,
    pub api: String,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<Result<(), executor::app::AppError>>>,
}

impl Stack {
    /// Starts an executor against this stack's knowledge and NATS.
    pub async fn start_executor(&self, state_dir: &std::path::Path) -> Executor {
        self.start_executor_as(state_dir, "executor-1").await
    }

    /// The environment an executor of this stack runs with (for one started as a process too).
    pub fn executor_env(
        &self,
        state_dir: &std::path::Path,
        id: &str,
    ) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("GRPC_PORT", "0".to_owned()),
            ("HEALTH_PORT", "0".to_owned()),
            ("HTTP_PORT", "0".to_owned()),
            ("KNOWLEDGE_ADDRESS", self.knowledge_addr.clone()),
            ("NATS_URL", self.nats.url()),
            ("ACTION_TIMEOUT_SECONDS", "60".to_owned()),
            ("STATE_DIR", state_dir.display().to_string()),
            ("EXECUTOR_ID", id.to_owned()),
            // A running action gets this long at shutdown before it is cancelled (and the
            // cancellation up to 30 s more): see `Executor::stop`.
            ("SHUTDOWN_DRAIN_SECONDS", "5".to_owned()),
        ];
        env.extend(self.shared_env.iter().cloned());
        env
    }

    pub async fn start_executor_as(&self, state_dir: &std::path::Path, id: &str) -> Executor {
        self.start_executor_at(state_dir, id, 0).await
    }

    /// An executor whose gRPC API is on `grpc_port` (0: any free port), so one started again on
    /// the same port is found by a gateway that knew the first.
    pub async fn start_executor_at(
        &self,
        state_dir: &std::path::Path,
        id: &str,
        grpc_port: u16,
    ) -> Executor {
        let mut env = self.executor_env(state_dir, id);
        for (name, value) in &mut env {
            if *name == "GRPC_PORT" {
                *value = grpc_port.to_string();
            }
        }
        let env = Env::from_map(env);
        let shutdown = Shutdown::new();
        let app = executor::App::build(executor::Config::from_env(&env).unwrap(), shutdown.clone())
            .await
            .unwrap();
        let grpc_addr = app.grpc_addr().to_string();
        let grpc = proto::executor::executor_service_client::ExecutorServiceClient::new(
            grpc_channel(&self.shared_env, &grpc_addr),
        );
        let api = format!("http://{}", app.http_addr());
        let task = tokio::spawn(app.run());
        Executor {
            grpc,
            grpc_addr,
            api,
            shutdown,
            task: Some(task),
        }
    }
}

impl Executor {
    /// Stops it and waits until it has.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        let task = self.task.take().expect("running");
        // The 5 s drain, then at most 30 s to cancel a running statement and record it.
        tokio::time::timeout(std::time::Duration::from_secs(40), task)
            .await
            .expect("the executor stops within its drain and cancel deadlines")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// A gateway of this stack: its base URL and token.
pub struct Gateway {
    pub base: String,
    pub token: String,
    shutdown: Shutdown,
}

impl Stack {
    pub async fn start_gateway(&self, executor_addr: &str, state_dir: &std::path::Path) -> Gateway {
        let token = "test-token-0123456789abcdef".to_owned();
        let env = Env::from_map(
            [
                ("PORT", "0".to_owned()),
                ("KNOWLEDGE_ADDRESS", self.knowledge_addr.clone()),
                ("EXECUTOR_ADDRESS", executor_addr.to_owned()),
                ("NATS_URL", self.nats.url()),
                ("GATEWAY_TOKEN", token.clone()),
                ("STATE_DIR", state_dir.display().to_string()),
                ("WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
            ]
            .into_iter()
            .chain(self.shared_env.iter().cloned()),
        );
        let shutdown = Shutdown::new();
        let app = gateway::App::build(gateway::Config::from_env(&env).unwrap(), shutdown.clone())
            .await
            .unwrap();
        let base = format!("http://{}", app.http_addr());
        tokio::spawn(app.run());
        Gateway {
            base,
            token,
            shutdown,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// What a probe of [`eventually`] returns: done with a value, or not yet (with what it saw, for
/// the panic message).
pub trait Probe<T> {
    fn done(self) -> Result<T, String>;
}

impl<T> Probe<T> for Option<T> {
    fn done(self) -> Result<T, String> {
        self.ok_or_else(|| "nothing yet".to_owned())
    }
}

impl<T> Probe<T> for Result<T, String> {
    fn done(self) -> Result<T, String> {
        self
    }
}

/// Polls `probe` (every 200 ms, at least once) until it returns `Some` (or `Ok`); panics after
/// `within`, naming `what` and what the last attempt saw (an `Err`'s text).
pub async fn eventually<T, P, F>(
    what: impl std::fmt::Display,
    within: std::time::Duration,
    mut probe: impl FnMut() -> F,
) -> T
where
    P: Probe<T>,
    F: std::future::Future<Output = P>,
{
    let started = std::time::Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match probe().await.done() {
            Ok(value) => return value,
            Err(last) => {
                if started.elapsed() >= within {
                    panic!(
                        "{what}: not within {within:?} ({attempts} attempts); last seen: {last}"
                    );
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The five services as processes of their own (release or debug binaries of this workspace),
/// on fixed ports so a killed one comes back at the same address; logs kept per service.
pub struct Services {
    dir: tempfile::TempDir,
    env: std::collections::HashMap<&'static str, Vec<(&'static str, String)>>,
    running: std::collections::HashMap<&'static str, Process>,
    /// The gateway's base URL and token.
    pub gateway: String,
    pub token: String,
    /// The analyser's `/health` port (fixed, so a restarted one keeps it).
    analyser_health_port: u16,
}

pub const SERVICES: [&str; 5] = ["knowledge", "analyser", "collector", "executor", "gateway"];

impl Services {
    /// Starts all five: `shared` goes to every service, `knowledge_env` to knowledge only.
    pub fn start(
        nats_url: &str,
        redis_addr: &str,
        shared: &[(&'static str, String)],
        knowledge_env: &[(&'static str, String)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = || testkit::free_port().to_string();
        let (knowledge, analyser, executor, gateway) = (port(), port(), port(), port());
        let analyser_health_port = testkit::free_port();
        let local = |p: &str| format!("127.0.0.1:{p}");
        let token = "services-token-0123456789".to_owned();
        let mut env = std::collections::HashMap::new();
        for name in SERVICES {
            let mut vars: Vec<(&'static str, String)> = shared.to_vec();
            vars.extend([
                ("RUST_LOG", "debug".to_owned()),
                ("HEALTH_PORT", "0".to_owned()),
                ("NATS_URL", nats_url.to_owned()),
                ("KNOWLEDGE_ADDRESS", local(&knowledge)),
                ("STATE_DIR", dir.path().join(name).display().to_string()),
            ]);
            vars.extend(match name {
                "knowledge" => {
                    let mut own = vec![
                        ("GRPC_PORT", knowledge.clone()),
                        ("REDIS_ADDR", redis_addr.to_owned()),
                        (
                            "KNOWLEDGE_KEY_FILE",
                            dir.path().join("knowledge.key").display().to_string(),
                        ),
                    ];
                    own.extend(knowledge_env.iter().cloned());
                    own
                }
                // Later than the shared HEALTH_PORT=0 above, so it wins.
                "analyser" => vec![
                    ("GRPC_PORT", analyser.clone()),
                    ("HEALTH_PORT", analyser_health_port.to_string()),
                ],
                "collector" => vec![
                    ("ANALYSER_ADDRESS", local(&analyser)),
                    ("COLLECTION_INTERVAL", "1s".to_owned()),
                    ("SYNC_INTERVAL", "5s".to_owned()),
                    ("COLLECTOR_ID", "collector-1".to_owned()),
                ],
                "executor" => vec![
                    ("GRPC_PORT", executor.clone()),
                    ("HTTP_PORT", "0".to_owned()),
                    ("EXECUTOR_ID", "executor-1".to_owned()),
                    ("SHUTDOWN_DRAIN_SECONDS", "5".to_owned()),
                ],
                _ => vec![
                    ("PORT", gateway.clone()),
                    ("EXECUTOR_ADDRESS", local(&executor)),
                    ("GATEWAY_TOKEN", token.clone()),
                ],
            });
            env.insert(name, vars);
        }
        let mut services = Self {
            dir,
            env,
            running: Default::default(),
            gateway: format!("http://{}", local(&gateway)),
            token,
            analyser_health_port,
        };
        for name in SERVICES {
            services.start_one(name);
        }
        services
    }

    /// Starts `name` (again), its output appended to its log.
    pub fn start_one(&mut self, name: &'static str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(name))
            .unwrap();
        let child = std::process::Command::new(workspace_binary(name))
            .envs(self.env[name].iter().cloned())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.running.insert(name, Process(child));
    }

    /// SIGKILL: no shutdown code runs, nothing is released.
    pub fn kill(&mut self, name: &'static str) {
        if let Some(mut process) = self.running.remove(name) {
            process.kill();
        }
    }

    fn log_path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// The gateway's API, as the dashboard uses it.
    pub fn api(&self) -> Api {
        Api::new(&self.gateway, &self.token)
    }

    /// See [`Stack::analysed_cycles`].
    pub async fn analysed_cycles(&self, database_id: &str, cycles: u64) {
        // The collector of `Services` collects every second.
        let interval = std::time::Duration::from_secs(1);
        analysed_cycles(self.analyser_health_port, database_id, cycles, interval).await
    }

    /// Waits until the gateway answers a read that needs knowledge.
    pub async fn wait_until_ready(&self) {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap();
        let url = format!("{}/databases", self.gateway);
        eventually(
            format!(
                "the gateway and knowledge answer; logs:\n{}",
                self.log("knowledge")
            ),
            std::time::Duration::from_secs(30),
            || {
                let http = http.clone();
                let url = url.clone();
                async move {
                    match http.get(url).send().await {
                        Ok(r) if r.status() == 200 => Some(()),
                        _ => None,
                    }
                }
            },
        )
        .await
    }
}

impl Stack {
    /// A gateway for a test without an executor: its executor address is one where nothing
    /// listens (the reads — `/detections`, `/actions`, `/ledger`, `/databases`, `/config` — need
    /// only knowledge; a decision would get a 503 naming the executor).
    pub async fn start_gateway_alone(&self, state_dir: &std::path::Path) -> Gateway {
        let nowhere = format!("127.0.0.1:{}", testkit::free_port());
        self.start_gateway(&nowhere, state_dir).await
    }
}

impl Gateway {
    /// Its HTTP API, with its token.
    pub fn api(&self) -> Api {
        Api::new(&self.base, &self.token)
    }
}

/// The gateway's HTTP API as the dashboard uses it (every request with the token), for tests
/// that assert an outcome the way a user sees it: `/detections`, `/actions`, `/ledger`, and the
/// decisions. Every read panics on anything but a 200, naming the path and the body.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

/// A JSON value's array (empty for anything else).
pub fn list(value: &serde_json::Value) -> Vec<serde_json::Value> {
    value.as_array().cloned().unwrap_or_default()
}

impl Api {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// `Authorization: Bearer …`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// A GET: the JSON of a 200, else what came back instead.
    pub async fn try_get(&self, path: &str) -> Result<serde_json::Value, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("authorization", self.bearer())
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("GET {path}: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}: {text}"))
    }

    /// A GET that must answer 200.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        self.try_get(path).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A POST with a JSON body (none when `Null`): the status and the JSON that came back.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("authorization", self.bearer());
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// The active detections of every database, newest first.
    pub async fn detections(&self) -> Vec<serde_json::Value> {
        list(&self.get("/detections").await)
    }

    /// Detection `id` whatever its state (`state`, `resolution`); panics when there is none.
    pub async fn detection(&self, id: &str) -> serde_json::Value {
        let found = self.get(&format!("/detections?detection_id={id}")).await;
        list(&found)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no detection {id}: {found}"))
    }

    /// Every action of every database, newest first.
    pub async fn actions(&self) -> Vec<serde_json::Value> {
        list(&self.get("/actions").await)
    }

    /// Action `id`, if it exists.
    pub async fn action(&self, id: &str) -> Option<serde_json::Value> {
        self.actions()
            .await
            .into_iter()
            .find(|a| a["action_id"] == id)
    }

    /// Every ledger entry, newest first.
    pub async fn ledger(&self) -> Vec<serde_json::Value> {
        list(&self.get("/ledger").await)
    }

    /// Action `id`'s ledger entry, if there is one.
    pub async fn ledger_entry(&self, id: &str) -> Option<serde_json::Value> {
        self.ledger()
            .await
            .into_iter()
            .find(|e| e["action_id"] == id)
    }

    /// Saves the configuration as the dashboard's settings page does (`POST /config`).
    pub async fn save_config(&self, config: &proto::knowledge::SystemConfig) {
        let (status, body) = self
            .post("/config", serde_json::to_value(config).unwrap())
            .await;
        assert_eq!(status, 200, "POST /config: {body}");
    }

    /// `POST /actions/{id}/{decision}` (approve, reject, rollback) with a reason: the status and
    /// the executor's answer.
    pub async fn decide(&self, id: &str, decision: &str, reason: &str) -> (u16, serde_json::Value) {
        self.post(
            &format!("/actions/{id}/{decision}"),
            serde_json::json!({ "reason": reason }),
        )
        .await
    }

    /// Waits until an active detection satisfies `accept`; returns it.
    pub async fn wait_for_detection(
        &self,
        what: impl std::fmt::Display,
        within: std::time::Duration,
        accept: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        eventually(what, within, || async {
            let active = self.detections().await;
            active
                .iter()
                .find(|d| accept(d))
                .cloned()
                .ok_or_else(|| serde_json::Value::from(active).to_string())
        })
        .await
    }

    /// Waits until action `id` has `status`; returns it.
    pub async fn wait_for_action(
        &self,
        id: &str,
        status: &str,
        within: std::time::Duration,
    ) -> serde_json::Value {
        eventually(format!("action {id} {status}"), within, || async {
            match self.action(id).await {
                Some(a) if a["status"] == status => Ok(a),
                Some(a) => Err(a.to_string()),
                None => Err("not in /actions".to_owned()),
            }
        })
        .await
    }

    /// Waits until the list of actions satisfies `accept`; returns it.
    pub async fn wait_for_actions(
        &self,
        what: impl std::fmt::Display,
        within: std::time::Duration,
        accept: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        eventually(what, within, || async {
            let actions = self.actions().await;
            if accept(&actions) {
                Ok(actions)
            } else {
                Err(serde_json::Value::from(actions).to_string())
            }
        })
        .await
    }

    /// Waits until action `id`'s ledger entry has left `verifying`; returns it.
    pub async fn decided(&self, id: &str, within: std::time::Duration) -> serde_json::Value {
        eventually(format!("a decision for {id}"), within, || async {
            match self.ledger_entry(id).await {
                Some(e) if e["state"] != "verifying" => Ok(e),
                Some(e) => Err(e.to_string()),
                None => Err("not in /ledger".to_owned()),
            }
        })
        .await
    }
}

/// One event of the gateway's live stream, and when this test received it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub data: serde_json::Value,
    pub at: std::time::Instant,
}

/// The gateway's `/events` stream, opened before a scenario starts and read in the background:
/// every detection and action status the gateway pushed, in order (metrics left out).
pub struct Live {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Event>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Live {
    pub async fn open(api: &Api) -> Self {
        let mut response = reqwest::get(format!("{}/events", api.base)).await.unwrap();
        assert_eq!(response.status(), 200);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = seen.clone();
        let task = tokio::spawn(async move {
            let mut text = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                let at = std::time::Instant::now();
                text.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = text.find("\n\n") {
                    let frame: String = text.drain(..end + 2).collect();
                    let field = |name: &str| {
                        frame
                            .lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(str::to_owned)
                    };
                    let (Some(kind), Some(data)) = (field("event: "), field("data: ")) else {
                        continue; // a keep-alive
                    };
                    if kind != "metrics" {
                        let data = serde_json::from_str(&data).unwrap();
                        into.lock().unwrap().push(Event { kind, data, at });
                    }
                }
            }
        });
        Self { seen, task }
    }

    pub fn events(&self, kind: &str) -> Vec<Event> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.kind == kind)
            .cloned()
            .collect()
    }

    /// Every detection pushed so far, in order.
    pub fn detections(&self) -> Vec<serde_json::Value> {
        self.events("detection")
            .into_iter()
            .map(|e| e.data)
            .collect()
    }

    /// Waits (10 s at most) for an action status that `accept` takes: the gateway pushes it
    /// right after knowledge records it.
    pub async fn wait_for(&self, what: &str, accept: impl Fn(&serde_json::Value) -> bool) -> Event {
        eventually(what, std::time::Duration::from_secs(10), || async {
            self.find("action", &accept)
        })
        .await
    }

    /// Waits (`within` at most) for a pushed detection that `accept` takes.
    pub async fn wait_for_detection(
        &self,
        what: impl std::fmt::Display,
        within: std::time::Duration,
        accept: impl Fn(&serde_json::Value) -> bool,
    ) -> Event {
        eventually(what, within, || async {
            self.find("detection", &accept)
                .ok_or_else(|| format!("{:?}", self.detections()))
        })
        .await
    }

    /// The first event of `kind` that `accept` takes, with its arrival time.
    pub fn find(&self, kind: &str, accept: impl Fn(&serde_json::Value) -> bool) -> Option<Event> {
        self.events(kind).into_iter().find(|e| accept(&e.data))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.task.abort();
    }
}
