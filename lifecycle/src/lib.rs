//! The parts every StartupMonkey service shares and nothing else: typed settings from the
//! environment, tracing, the `/health` + `/ready` endpoints, and shutdown with a drain deadline.

pub mod env;
pub mod health;
pub mod http;
pub mod net;
pub mod readiness;
pub mod shutdown;
pub mod telemetry;

pub use env::{Env, EnvError};
pub use health::{Health, Report};
pub use shutdown::Shutdown;
