//! The analyser (Analyse): receives snapshots from the collector, runs the detectors and verifies
//! actions. This crate holds its settings, its gRPC server and its health; the detectors arrive
//! with the analyser issue.

pub mod app;
pub mod config;
pub mod grpc;

pub use app::App;
pub use config::Config;
