//! `GET /metrics` on every service's health port: the service's own Prometheus metrics, as
//! OpenMetrics text (`prometheus-client`). A service registers its metrics once at start in a
//! [`Registry`] and updates them where the work happens; the endpoint only encodes them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::{Registry, Unit};

/// Labels of a metric family: `(name, value)` pairs, e.g. `[("database_id", "shop")]`.
pub type Labels = Vec<(&'static str, String)>;

/// The exposition's content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry whose names start with `startupmonkey_`.
pub fn registry() -> Registry {
    Registry::with_prefix("startupmonkey")
}

/// Buckets for durations in seconds: 1 ms to about 33 s, doubling.
pub fn duration_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 16)
}

/// Buckets for sizes in bytes: 256 B to about 64 MB, quadrupling.
pub fn size_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(256.0, 4.0, 10)
}

/// A duration histogram with [`duration_buckets`].
pub fn duration_histogram() -> Histogram {
    Histogram::new(duration_buckets())
}

/// A size histogram with [`size_buckets`].
pub fn size_histogram() -> Histogram {
    Histogram::new(size_buckets())
}

/// `registry` as OpenMetrics text, as `/metrics` serves it.
pub fn text(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    encode(&mut out, registry)?;
    Ok(out)
}

pub(crate) async fn serve(State(registry): State<Arc<Registry>>) -> Response {
    match text(&registry) {
        Ok(out) => ([(header::CONTENT_TYPE, OPENMETRICS)], out).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics not encoded: {error}"),
        )
            .into_response(),
    }
}
