//! The collector (Monitor): polls every registered PostgreSQL database, turns lifetime counters
//! into per-interval values and streams snapshots to the analyser, NATS and knowledge.
//!
//! `orchestrator` decides which databases are watched and runs one task per database;
//! `pg_stats` reads the statistics; `window` turns counters into per-interval values;
//! `constants` learns which literal values statements always use; `snapshot` and `normalise`
//! build what is sent; `outputs` sends it; `metrics` are its own Prometheus metrics.

pub mod app;
pub mod config;
pub mod constants;
pub mod cycle;
pub mod lease;
pub mod literals;
pub mod metrics;
pub mod normalise;
pub mod orchestrator;
pub mod outputs;
pub mod pg_stats;
pub mod snapshot;
pub mod table_list;
pub mod window;

pub use app::App;
pub use config::Config;
