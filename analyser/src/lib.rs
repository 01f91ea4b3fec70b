//! The analyser (Analyse): receives snapshots from the collector, runs the detectors and verifies
//! actions. Each snapshot goes through `pipeline`: the thresholds in force from `thresholds`, the
//! seven `detectors` (`missing_index` fed by the index `advisor`, which asks the database's
//! planner), registration in knowledge, publication on JetStream — and `verification`, which
//! measures each completed action's effect and keeps it, rolls it back or finds no effect.

pub mod advisor;
pub mod app;
pub mod config;
pub mod detectors;
pub mod grpc;
pub mod interned;
pub mod pipeline;
pub mod tables_view;
pub mod thresholds;
pub mod verification;

pub use app::App;
pub use config::Config;
