//! Serving an axum router until shutdown, with a drain deadline.

use std::io;

use axum::Router;
use tokio::net::TcpListener;

use crate::shutdown::{DRAIN_DEADLINE, Shutdown};

/// Serves `router` on `listener` until shutdown starts, then drains for at most
/// [`DRAIN_DEADLINE`].
pub async fn serve(
    what: &'static str,
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> io::Result<()> {
    let server = axum::serve(listener, router).with_graceful_shutdown(shutdown.signal());
    shutdown
        .drain(what, DRAIN_DEADLINE, server.into_future())
        .await
        .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::health::{Health, Report};

    async fn start(health: Health) -> (String, Shutdown, tokio::task::JoinHandle<io::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = Shutdown::new();
        let task = tokio::spawn(serve("health", listener, health.router(), shutdown.clone()));
        (base, shutdown, task)
    }

    #[tokio::test]
    async fn health_answers_the_original_fields_and_stops_on_shutdown() {
        let (base, shutdown, task) = start(Health::new("collector")).await;
        let response = reqwest::get(format!("{base}/health")).await.unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["service"], "collector");
        assert!(body["uptime_seconds"].is_u64());
        assert!(body["timestamp"].as_u64().unwrap() > 1_700_000_000);

        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("server stops after shutdown")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn metrics_registered_by_the_service_are_served_as_openmetrics_text() {
        use crate::metrics::{Counter, Family};
        let mut registry = crate::metrics::registry();
        let done: Family<Vec<(&'static str, String)>, Counter> = Family::default();
        registry.register("things_done", "Things the service did", done.clone());
        let (base, shutdown, _task) = start(Health::new("executor").with_metrics(registry)).await;
        // Counted after registration: the endpoint reads the values now.
        done.get_or_create(&vec![("kind", "index".to_owned())])
            .inc_by(3);
        let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        let body = response.text().await.unwrap();
        assert!(
            body.contains("startupmonkey_things_done_total{kind=\"index\"} 3"),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
        // A service that registers nothing has no /metrics.
        let (base, shutdown_bare, _task) = start(Health::new("knowledge")).await;
        let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(response.status(), 404);
        shutdown.trigger();
        shutdown_bare.trigger();
    }

    #[tokio::test]
    async fn failing_checks_answer_503_with_their_fields() {
        let health = Health::new("knowledge")
            .with_health_check(|| {
                Box::pin(async { Report::failing().with("redis", "disconnected") })
            })
            .with_readiness_check(|| Box::pin(async { Report::failing().with("reason", "x") }));
        let (base, shutdown, _task) = start(health).await;
        let response = reqwest::get(format!("{base}/health")).await.unwrap();
        assert_eq!(response.status(), 503);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["redis"], "disconnected");
        let response = reqwest::get(format!("{base}/ready")).await.unwrap();
        assert_eq!(response.status(), 503);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["ready"], false);
        shutdown.trigger();
    }
}
