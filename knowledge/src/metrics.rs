//! Knowledge's own Prometheus metrics (served at `/metrics` on its health port): how long each
//! gRPC call took, by method, measured around the whole service so every RPC is counted the same
//! way.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use lifecycle::metrics::{self, Family, Histogram, Labels, Registry, Unit};
use tonic::codegen::{Service, http};
use tonic::server::NamedService;

/// The method label of a call to a path no RPC answers (`Unimplemented`): such paths are whatever
/// a client sends, and must not each become a series.
const UNKNOWN_METHOD: &str = "unknown";

/// Updated by [`Timed`] around knowledge's gRPC service.
#[derive(Clone)]
pub struct RpcMetrics {
    seconds: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        Self {
            seconds: Family::new_with_constructor(metrics::duration_histogram),
        }
    }
}

impl RpcMetrics {
    /// Registers `rpc_duration_seconds{method}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "rpc_duration",
            "How long each gRPC call to knowledge took, from its request to its answer, by method",
            Unit::Seconds,
            self.seconds.clone(),
        );
    }

    /// `service`, its calls timed.
    pub fn timed<S>(&self, service: S) -> Timed<S> {
        Timed {
            inner: service,
            metrics: self.clone(),
        }
    }
}

/// A gRPC service whose calls are timed into [`RpcMetrics`].
#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S: NamedService> NamedService for Timed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for Timed<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let started = Instant::now();
        let answer = self.inner.call(request);
        let seconds = self.metrics.seconds.clone();
        Box::pin(async move {
            let response = answer.await;
            // An unknown method is answered at once with grpc-status 12 in the headers.
            let unimplemented = response.as_ref().is_ok_and(|r| {
                r.headers()
                    .get("grpc-status")
                    .is_some_and(|status| status == "12")
            });
            let method = if unimplemented {
                UNKNOWN_METHOD.to_owned()
            } else {
                method
            };
            seconds
                .get_or_create(&vec![("method", method)])
                .observe(started.elapsed().as_secs_f64());
            response
        })
    }
}
