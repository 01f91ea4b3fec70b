//! The collector (Monitor): polls every registered PostgreSQL database, turns lifetime counters
//! into per-interval values and streams snapshots to the analyser. This crate holds its settings,
//! its startup and its health; the collection loop arrives with the collector issue.

pub mod app;
pub mod config;

pub use app::App;
pub use config::Config;
