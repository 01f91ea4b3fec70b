//! The analyser (Analyse): receives snapshots from the collector, runs the detectors and verifies
//! actions. So far: settings, gRPC server and health, the thresholds in force (`thresholds`) and
//! six of the seven detectors (`detectors`); the snapshot pipeline, the index advisor and
//! verification arrive with the analyser and closed-loop issues.

pub mod app;
pub mod config;
pub mod detectors;
pub mod grpc;
pub mod thresholds;

pub use app::App;
pub use config::Config;
