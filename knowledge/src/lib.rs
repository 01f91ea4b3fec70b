//! The knowledge service: the single source of truth of StartupMonkey, on Redis.
//!
//! `grpc` converts requests and delegates to `store`, which owns the Redis key layout
//! (docs/ARCHITECTURE.md). `crypto` keeps connection strings encrypted at rest; `system_config`
//! holds the defaults and validation of the system configuration; `records` the validation of
//! what clients register; `metrics` the time each RPC took, for Prometheus.

pub mod app;
pub mod config;
pub mod crypto;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod records;
pub mod store;
pub mod system_config;

pub use app::App;
pub use config::Config;
