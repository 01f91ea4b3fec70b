//! The executor (Plan/Execute): turns detections into actions according to the execution mode,
//! runs and rolls them back. This crate holds its settings, its gRPC server and its health; the
//! actions arrive with the executor issue.

pub mod app;
pub mod config;
pub mod grpc;

pub use app::App;
pub use config::Config;
