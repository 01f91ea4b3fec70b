//! The gateway: the dashboard's backend (REST at the original BFF's paths, live events, webhooks,
//! authentication) over knowledge and the executor. This crate holds its settings, its HTTP
//! server and its health; the API arrives with the gateway issue.

pub mod app;
pub mod config;

pub use app::App;
pub use config::Config;
