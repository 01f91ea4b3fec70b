//! Tracing setup: human-readable lines by default, JSON lines with `LOG_FORMAT=json`; the level
//! from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once per process; later calls are ignored (tests).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _already_installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
