//! The analyser (Analyse): receives snapshots from the collector, runs the detectors and verifies
//! actions. So far: each snapshot goes through `pipeline` (the thresholds in force from
//! `thresholds`, six of the seven `detectors`, registration in knowledge, publication on
//! JetStream); the index advisor and verification arrive with the analyser and closed-loop issues.

pub mod advisor;
pub mod app;
pub mod config;
pub mod detectors;
pub mod grpc;
pub mod pipeline;
pub mod thresholds;

pub use app::App;
pub use config::Config;
