//! Real servers for tests, started on free ports in private directories and removed afterwards:
//! `redis-server`, `nats-server -js` and private PostgreSQL 15 clusters (pg_stat_statements
//! preloaded, HypoPG installable). No mocks and no Docker: the binaries come from Debian packages,
//! which `make test` installs.
//!
//! Everything here panics with a readable message on failure: a missing server is a loud test
//! failure, never a silent skip.

mod binaries;
pub use binaries::find as binary;
mod nats;
mod net;
pub mod pgbench;
mod postgres;
mod process;
mod redis;
mod tls;

pub use nats::NatsServer;
pub use net::free_port;
pub use postgres::PgCluster;
pub use redis::RedisServer;
pub use tls::Certificates;
