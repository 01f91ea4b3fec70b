//! Real servers for tests, started on free ports in private directories and removed afterwards:
//! `redis-server`, `nats-server -js`, private PostgreSQL 15 clusters (pg_stat_statements
//! preloaded, HypoPG installable), private MariaDB servers (`performance_schema` on) and a
//! Docker-compatible engine (podman's API service, with test
//! images made from the host's binaries). No mocks: the binaries come from Debian packages,
//! which `make test` installs.
//!
//! Everything here panics with a readable message on failure: a missing server is a loud test
//! failure, never a silent skip.

mod binaries;
pub use binaries::find as binary;
mod docker;
mod mariadb;
mod nats;
mod net;
pub mod pgbench;
mod postgres;
mod process;
mod redis;
mod tls;

pub use docker::DockerEngine;
pub use mariadb::MariaDbServer;
pub use nats::NatsServer;
pub use net::free_port;
pub use postgres::PgCluster;
pub use redis::RedisServer;
pub use tls::Certificates;
