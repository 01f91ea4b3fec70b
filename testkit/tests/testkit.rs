//! The harness starts real servers that answer, and restarts them on the same port.

use std::io::{Read, Write};
use std::net::TcpStream;

use testkit::{MariaDbServer, NatsServer, PgCluster, RedisServer};

fn redis_get(port: u16, command: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(command.as_bytes()).unwrap();
    let mut buffer = [0_u8; 256];
    let n = stream.read(&mut buffer).unwrap();
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[test]
fn redis_restarts_on_the_same_port_and_persistent_mode_keeps_data() {
    let mut redis = RedisServer::start_persistent();
    assert_eq!(redis_get(redis.port(), "SET k v\r\n"), "+OK\r\n");
    redis.stop();
    assert!(TcpStream::connect(("127.0.0.1", redis.port())).is_err());
    redis.resume();
    assert_eq!(redis_get(redis.port(), "GET k\r\n"), "$1\r\nv\r\n");
}

#[test]
fn nats_answers_with_jetstream_enabled() {
    let nats = NatsServer::start();
    let mut stream = TcpStream::connect(("127.0.0.1", nats.port())).unwrap();
    let mut buffer = [0_u8; 2048];
    let n = stream.read(&mut buffer).unwrap();
    let info = String::from_utf8_lossy(&buffer[..n]);
    assert!(info.starts_with("INFO "), "{info}");
    assert!(info.contains("\"jetstream\":true"), "{info}");
}

#[test]
fn private_postgres_has_pg_stat_statements_preloaded_and_hypopg_available() {
    let pg = PgCluster::start_with(&[("max_connections", "30")]);
    assert_eq!(pg.psql("postgres", "SHOW max_connections"), "30");
    assert_eq!(
        pg.psql("postgres", "SHOW shared_preload_libraries"),
        "pg_stat_statements"
    );
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg",
    );
    let version = pg.psql(
        "app",
        "SELECT current_setting('server_version_num')::int / 10000",
    );
    assert_eq!(version, "15");
    assert!(pg.url("app").ends_with(&format!(":{}/app", pg.port())));
}

#[test]
fn private_mariadb_has_performance_schema_on_and_survives_a_restart() {
    let mut db = MariaDbServer::start();
    assert_eq!(db.sql("mysql", "SELECT @@performance_schema").trim(), "1");
    let version = db.sql("mysql", "SELECT VERSION()");
    assert!(version.contains("MariaDB"), "{version}");
    db.create_database("shop");
    db.sql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, price int); INSERT INTO items VALUES (1, 7)",
    );
    assert!(db.url("shop").ends_with(&format!(":{}/shop", db.port())));
    // Listening on TCP, as the services connect.
    assert!(std::net::TcpStream::connect(("127.0.0.1", db.port())).is_ok());
    assert_eq!(db.sql("shop", "SELECT price FROM items").trim(), "7");
    db.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", db.port())).is_err());
    db.resume();
    assert_eq!(
        db.sql("shop", "SELECT price FROM items WHERE id = 1")
            .trim(),
        "7",
        "{}",
        db.log_tail()
    );

    // As Debian ships it: performance_schema off.
    let plain = MariaDbServer::start_with(false);
    assert_eq!(
        plain.sql("mysql", "SELECT @@performance_schema").trim(),
        "0"
    );
}
