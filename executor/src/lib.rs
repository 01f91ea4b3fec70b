//! The executor (Plan/Execute): turns detections into actions according to the execution mode,
//! runs them safely and rolls them back. `consumer` takes detections from JetStream and decisions
//! from NATS; `engine` moves each action through its states in knowledge; `actions` are the
//! plans themselves (their data in `proto::actions`); `databases` the connections to watched
//! databases; `error` the error types, turned into `proto::error::Error` at the doors; `grpc` and
//! `http` the APIs on 50052 and 8084; `metrics` its own Prometheus metrics.

pub mod actions;
pub mod app;
pub mod config;
pub mod consumer;
pub mod databases;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod http;
pub mod metrics;

pub use app::App;
pub use config::Config;
