//! The `docker` backend against a real engine (podman's Docker Engine API service, started by
//! `testkit::DockerEngine`) and a real PostgreSQL: PgBouncer and Redis as containers, found again
//! by a restarted executor, removed on rollback — and never a container that is not ours.

use std::sync::Arc;
use std::time::Duration;

use executor::actions::deploy::Deploy;
use executor::actions::docker::api::Api;
use executor::actions::docker::{Docker, DockerSettings};
use executor::actions::terminate::Policy;
use executor::actions::{Context, Outcome, Plan, PlanExt};
use executor::databases::Database;

use crate::stored;
use proto::events::Detection;
use serde_json::{Value, json};
use testkit::{DockerEngine, PgCluster};

/// A new client of `engine`, as a (re)started executor makes one.
fn docker(engine: &DockerEngine, network: &str) -> Deploy {
    docker_with(engine, network, engine.pooler_image(), engine.redis_image())
}

fn docker_with(
    engine: &DockerEngine,
    network: &str,
    pooler_image: &str,
    redis_image: &str,
) -> Deploy {
    Deploy::Docker(Arc::new(Docker::new(DockerSettings {
        socket: engine.socket(),
        pooler_image: pooler_image.into(),
        redis_image: redis_image.into(),
        network: network.into(),
    })))
}

fn context(deploy: Deploy, database: Option<Database>) -> Context {
    Context {
        database,
        timeout: Duration::from_secs(30),
        // Unused by containers: nothing may be written there.
        state_dir: "/nonexistent/startupmonkey".into(),
        deploy,
        action_id: "test".into(),
        policy: Policy::default(),
        stop: Default::default(),
    }
}

fn plan(database_id: &str, action_type: &str, metadata: Value) -> Plan {
    Plan::from_detection(&Detection {
        id: "d1".into(),
        database_id: database_id.into(),
        action_type: action_type.into(),
        action_metadata: Some(metadata),
        ..Default::default()
    })
    .unwrap()
}

/// The container's inspect document, or `None` once it is gone (404).
fn inspect(engine: &DockerEngine, name: &str) -> Option<Value> {
    match engine.get(&format!("/v1.41/containers/{name}/json")) {
        (200, body) => Some(serde_json::from_str(&body).unwrap()),
        (404, _) => None,
        (code, body) => panic!("inspect {name}: HTTP {code}: {body}"),
    }
}

#[tokio::test]
async fn a_pooler_container_serves_prepared_statements_is_found_after_a_restart_and_rollback_removes_it()
 {
    let engine = DockerEngine::start();
    let pg = PgCluster::start();
    pg.create_database("app");
    let secret = format!("pw-{}", engine.unique("x"));
    pg.psql(
        "postgres",
        &format!("CREATE ROLE shop LOGIN PASSWORD '{secret}'"),
    );
    let registered = format!("postgres://shop:{secret}@127.0.0.1:{}/app", pg.port());
    let database_id = engine.unique("db");
    let database = || Some(Database::connect(&database_id, &registered).unwrap());
    let pooler = plan(
        &database_id,
        "deploy_connection_pooler",
        json!({"pool_size": 8}),
    );
    let ctx = context(docker(&engine, "host"), database());

    let outcome = pooler.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    let name = format!("startupmonkey-pooler-{database_id}");
    assert_eq!(result["backend"], "docker", "{result}");
    assert_eq!(result["container_name"], name.as_str());
    assert_eq!(result["image"], engine.pooler_image());
    let port = result["port"].as_u64().unwrap();
    assert_eq!(
        result["connection_string"],
        format!("postgres://shop:***@127.0.0.1:{port}/app")
    );

    // A client with prepared statements, through the container, with the same user and password.
    let through = sqlx::PgPool::connect(&format!("postgres://shop:{secret}@127.0.0.1:{port}/app"))
        .await
        .unwrap();
    let answer: i32 = sqlx::query_scalar("SELECT $1::int + 1")
        .bind(41)
        .fetch_one(&through)
        .await
        .unwrap();
    assert_eq!(answer, 42);
    through.close().await;
    let wrong = sqlx::PgPool::connect(&format!("postgres://shop:wrong@127.0.0.1:{port}/app")).await;
    assert!(wrong.is_err(), "PgBouncer checks the password");

    let container = inspect(&engine, &name).expect("the container exists");
    assert_eq!(container["Id"], result["container_id"]);
    assert!(
        !container.to_string().contains(&secret) && !result.to_string().contains(&secret),
        "the password is only in the auth file"
    );
    // The process itself: nobody, no capabilities, no new privileges.
    let pid = container["State"]["Pid"].as_u64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("Uid:"), "65534", "{status}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field("CapBnd:"), "0000000000000000", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(container["Config"]["User"], "65534:65534");
    assert_eq!(container["Config"]["Entrypoint"], json!(["pgbouncer"]));
    assert_eq!(
        container["Config"]["Cmd"],
        json!(["/etc/pgbouncer/pgbouncer.ini"])
    );
    assert_eq!(
        container["Config"]["Labels"]["io.startupmonkey.database"],
        database_id.as_str()
    );
    assert_eq!(
        container["HostConfig"]["RestartPolicy"]["Name"],
        "unless-stopped"
    );
    assert_eq!(
        container["HostConfig"]["SecurityOpt"],
        json!(["no-new-privileges"])
    );
    let ini = engine.read_file(&name, "/etc/pgbouncer/pgbouncer.ini");
    assert!(ini.contains(&format!("listen_port = {port}")), "{ini}");
    assert!(
        !ini.contains("pidfile"),
        "in a container it logs to stderr: {ini}"
    );

    // A second run reports the running one.
    let again = stored(&pooler.execute(&ctx).await.unwrap());
    assert!(again["note"].as_str().unwrap().contains("already running"));
    assert_eq!(
        (&again["container_id"], &again["port"]),
        (&result["container_id"], &result["port"])
    );

    // A restarted executor (a new client, nothing in memory) finds it, and its rollback
    // removes it.
    let restarted = context(docker(&engine, "host"), database());
    let found = stored(&pooler.execute(&restarted).await.unwrap());
    assert_eq!(found["container_id"], result["container_id"]);
    assert!(found["note"].as_str().unwrap().contains("already running"));
    let undone = stored(&pooler.rollback(&restarted, &outcome).await.unwrap());
    assert_eq!(undone["stopped"], true, "{undone}");
    assert_eq!(undone["removed"], name.as_str());
    assert!(inspect(&engine, &name).is_none(), "the container is gone");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port as u16))
            .await
            .is_err(),
        "nothing listens any more"
    );
    // Rolling back again finds nothing to remove.
    let again = stored(&pooler.rollback(&restarted, &outcome).await.unwrap());
    assert_eq!(again["stopped"], false, "{again}");
}

#[tokio::test]
async fn a_redis_container_answers_only_with_its_password_which_is_nowhere_but_in_its_files() {
    let engine = DockerEngine::start();
    let database_id = engine.unique("db");
    let cache = plan(&database_id, "deploy_redis", json!({"max_memory": "64mb"}));
    let ctx = context(docker(&engine, "host"), None);

    let outcome = cache.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    let name = format!("startupmonkey-redis-{database_id}");
    assert_eq!(result["container_name"], name.as_str(), "{result}");
    assert!(
        result["persistence"]
            .as_str()
            .unwrap()
            .contains("appendonly no"),
        "{result}"
    );
    let port = result["port"].as_u64().unwrap().to_string();
    let password = engine
        .read_file(&name, result["password_file"].as_str().unwrap())
        .trim()
        .to_owned();
    assert_eq!(password.len(), 32);
    assert!(
        engine
            .read_file(&name, "/etc/redis/redis.conf")
            .contains(&format!("requirepass {password}"))
    );

    let cli = testkit::binary("redis-cli", "redis-tools");
    let redis = |auth: Option<&str>, command: &[&str]| {
        let mut c = std::process::Command::new(&cli);
        c.args(["-h", "127.0.0.1", "-p", &port, "--no-auth-warning"]);
        if let Some(password) = auth {
            c.args(["-a", password]);
        }
        String::from_utf8_lossy(&c.args(command).output().unwrap().stdout)
            .trim()
            .to_owned()
    };
    assert_eq!(redis(Some(&password), &["PING"]), "PONG");
    let refused = redis(None, &["PING"]);
    assert!(refused.contains("NOAUTH"), "{refused}");
    assert!(
        redis(Some(&password), &["CONFIG", "GET", "maxmemory"])
            .contains(&(64 * 1024 * 1024).to_string())
    );
    assert!(redis(Some(&password), &["CONFIG", "GET", "appendonly"]).ends_with("no"));

    // Not in the command, the environment, the labels or anything else the engine shows, nor in
    // the action's record.
    let container = inspect(&engine, &name).unwrap();
    assert!(
        !container.to_string().contains(&password),
        "the password is in the inspect document"
    );
    assert!(!result.to_string().contains(&password));
    assert_eq!(
        container["HostConfig"]["Memory"],
        json!(128 * 1024 * 1024),
        "maxmemory and headroom"
    );

    let undone = stored(&cache.rollback(&ctx, &outcome).await.unwrap());
    assert_eq!(undone["stopped"], true, "{undone}");
    assert!(inspect(&engine, &name).is_none());
    assert_ne!(redis(Some(&password), &["PING"]), "PONG");
}

#[tokio::test]
async fn a_container_with_our_name_but_not_our_labels_is_never_touched() {
    let engine = DockerEngine::start();
    let database_id = engine.unique("db");
    let name = format!("startupmonkey-pooler-{database_id}");
    engine.podman(&[
        "create",
        "--name",
        &name,
        engine.pooler_image(),
        "pgbouncer",
        "--version",
    ]);
    let pooler = plan(&database_id, "deploy_connection_pooler", json!({}));
    let ctx = context(
        docker(&engine, "host"),
        Some(Database::connect(&database_id, "postgres://app@127.0.0.1:1/app").unwrap()),
    );

    let refused = pooler.execute(&ctx).await.unwrap_err().to_string();
    assert!(refused.contains("left alone"), "{refused}");
    let refused = pooler
        .rollback(&ctx, &Outcome::PoolerDeployed(Default::default()))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains(&name), "{refused}");
    assert!(inspect(&engine, &name).is_some(), "it still exists");
}

#[tokio::test]
async fn a_deployment_that_cannot_work_fails_saying_why_and_leaves_nothing() {
    let engine = DockerEngine::start();
    let database_id = engine.unique("db");
    let name = format!("startupmonkey-pooler-{database_id}");
    let pooler = plan(&database_id, "deploy_connection_pooler", json!({}));
    let database =
        || Some(Database::connect(&database_id, "postgres://app@localhost:5432/app").unwrap());

    // On a network of its own, a container cannot reach the executor's loopback.
    let ctx = context(docker(&engine, "startupmonkey-test"), database());
    let refused = pooler.execute(&ctx).await.unwrap_err().to_string();
    assert!(refused.contains("loopback"), "{refused}");
    assert!(refused.contains("startupmonkey-test"), "{refused}");

    // An image that is not there and cannot be pulled.
    let absent = "localhost/sm-test-absent:1";
    let ctx = context(
        docker_with(&engine, "host", absent, engine.redis_image()),
        database(),
    );
    let refused = pooler.execute(&ctx).await.unwrap_err().to_string();
    assert!(refused.contains(absent), "{refused}");
    assert!(inspect(&engine, &name).is_none());

    // An image without the program: the container is made, does not start, and is removed.
    let cache = plan(&database_id, "deploy_redis", json!({}));
    let ctx = context(
        docker_with(
            &engine,
            "host",
            engine.pooler_image(),
            engine.pooler_image(),
        ),
        None,
    );
    let refused = cache.execute(&ctx).await.unwrap_err().to_string();
    assert!(refused.contains("redis-server"), "{refused}");
    let cache_name = format!("startupmonkey-redis-{database_id}");
    assert!(inspect(&engine, &cache_name).is_none(), "{refused}");
}

#[tokio::test]
async fn on_a_network_of_its_own_the_cache_listens_on_the_standard_port_under_its_container_name() {
    let engine = DockerEngine::start();
    let network = engine.network("compose");
    let database_id = engine.unique("db");
    let cache = plan(&database_id, "deploy_redis", json!({}));
    let ctx = context(docker(&engine, &network), None);

    let outcome = cache.execute(&ctx).await.unwrap();
    let result = stored(&outcome);
    let name = format!("startupmonkey-redis-{database_id}");
    assert_eq!(
        (&result["host"], &result["port"], &result["network"]),
        (&json!(name), &json!(6379), &json!(network)),
        "{result}"
    );
    assert_eq!(
        result["connection_string"],
        format!("redis://:***@{name}:6379")
    );
    let password = engine.read_file(&name, "/etc/redis/password");
    // Another container on the network reaches it by its name, as an application in the
    // compose project would.
    let client = engine.unique("client");
    let answer = engine.podman(&[
        "run",
        "--rm",
        "--name",
        &client,
        "--network",
        &network,
        engine.redis_image(),
        "redis-cli",
        "-h",
        &name,
        "-p",
        "6379",
        "--no-auth-warning",
        "-a",
        password.trim(),
        "PING",
    ]);
    assert_eq!(answer, "PONG");

    let undone = stored(&cache.rollback(&ctx, &outcome).await.unwrap());
    assert_eq!(undone["stopped"], true, "{undone}");
    assert!(inspect(&engine, &name).is_none());
}

#[tokio::test]
async fn the_client_takes_the_engines_api_version_and_reads_a_containers_log() {
    let engine = DockerEngine::start();
    let api = Api::new(&engine.socket());
    // Podman's compatible service offers an older version than bollard's newest; the client
    // lowers its own to it.
    let spoken = api.ping().await.unwrap();
    let (_, offered) = engine.get("/version");
    let offered: Value = serde_json::from_str(&offered).unwrap();
    assert_eq!(spoken, offered["ApiVersion"].as_str().unwrap(), "{offered}");

    // What a helper writes to stdout and to stderr, as the executor quotes it when a helper
    // does not start (the image has no shell: redis-server itself writes and exits).
    let log_of = async |name: &str, args: &[&str]| {
        let mut run = vec![
            "run",
            "-d",
            "--name",
            name,
            engine.redis_image(),
            "redis-server",
        ];
        run.extend_from_slice(args);
        engine.podman(&run);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = api.logs(name, 20).await.unwrap();
            if !log.is_empty() || std::time::Instant::now() > deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let version = log_of(&engine.unique("stdout"), &["--version"]).await;
    assert!(version.starts_with("Redis server v="), "{version:?}");
    let name = engine.unique("stderr");
    let refused = log_of(&name, &["--no-such-directive", "x"]).await;
    assert!(refused.contains("no-such-directive"), "{refused:?}");

    assert!(api.remove(&name).await.unwrap(), "removed");
    assert!(!api.remove(&name).await.unwrap(), "already gone");
    assert!(api.inspect(&name).await.unwrap().is_none());
    let missing = api.start(&name).await.unwrap_err();
    assert!(missing.to_string().contains("HTTP 404"), "{missing}");
}
