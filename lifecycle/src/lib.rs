//! The parts every StartupMonkey service shares and nothing else: typed settings from the
//! environment, connections to NATS and gRPC peers (credentials, TLS), tracing, the `/health`, `/ready` and `/metrics` endpoints, and shutdown with a drain deadline.

pub mod consumer;
pub mod env;
pub mod grpc;
pub mod health;
pub mod http;
pub mod metrics;
pub mod nats;
pub mod net;
pub mod readiness;
pub mod shutdown;
pub mod telemetry;

pub use env::{Env, EnvError};
pub use health::{Health, Report};
pub use shutdown::Shutdown;
