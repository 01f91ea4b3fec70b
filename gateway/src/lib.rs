//! The gateway: the dashboard's backend over knowledge and the executor. `api` is the REST API
//! at the original BFF's paths (`api::router`, one module per resource, one error answer, the
//! OpenAPI document); `auth` the token and the sign-in cookie; `live` the NATS follower (metric
//! history, server-sent events); `statements` the statement history of the Queries page; `webhooks` the outgoing notifications; `dbtest` the real
//! connection test of onboarding; `doctor` what the monitoring role may and may not do, with the
//! grants for the rest; `tables` the Tables page: each table's statistics and indexes, and the
//! unused and duplicate indexes with the statements that would drop them.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod dbtest;
pub mod doctor;
pub mod live;
pub mod statements;
pub mod tables;
pub mod webhooks;

pub use api::router;
pub use app::App;
pub use config::Config;
