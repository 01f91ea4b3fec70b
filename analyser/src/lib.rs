//! The analyser (Analyse): receives snapshots from the collector, runs the detectors and verifies
//! actions. Each snapshot goes through `pipeline`: the thresholds in force from `thresholds`, the
//! seven `detectors` (`missing_index` fed by the index `advisor`, which asks the database's
//! planner), registration in knowledge, publication on JetStream. Verification arrives with the
//! closed-loop issue.

pub mod advisor;
pub mod app;
pub mod config;
pub mod detectors;
pub mod grpc;
pub mod pipeline;
pub mod thresholds;

pub use app::App;
pub use config::Config;
