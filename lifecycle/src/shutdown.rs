//! One cancellation token per process: SIGINT/SIGTERM cancel it, every loop and server ends
//! through it, and servers get a deadline to drain.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long servers may take to finish in-flight requests after shutdown starts.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// The process-wide shutdown signal. Cloning shares the same token.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown of its own that also starts when this one does (one per database, one per
    /// task): triggering the child leaves the parent running.
    pub fn child(&self) -> Self {
        Self {
            token: self.token.child_token(),
        }
    }

    /// Starts shutdown.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when shutdown has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// An owned future completing when shutdown has started (for servers' graceful shutdown).
    pub fn signal(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// Triggers shutdown on SIGINT or SIGTERM. Spawn once from `main`.
    pub async fn on_signals(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => info!("SIGINT received, shutting down"),
            _ = terminate => info!("SIGTERM received, shutting down"),
            _ = self.wait() => return,
        }
        self.trigger();
    }

    /// Runs a server future that stops on its own once shutdown starts, but abandons it if it has
    /// not finished draining within `drain` after that.
    pub async fn drain<F, T>(&self, what: &'static str, drain: Duration, server: F) -> Option<T>
    where
        F: Future<Output = T>,
    {
        let deadline = async {
            self.wait().await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            output = server => Some(output),
            _ = deadline => {
                warn!(server = what, ?drain, "drain deadline passed; closing remaining connections");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_that_never_drains_is_abandoned_after_the_deadline() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        let outcome = shutdown
            .drain(
                "stuck",
                Duration::from_millis(20),
                std::future::pending::<()>(),
            )
            .await;
        assert!(outcome.is_none());
    }

    #[test]
    fn a_child_stops_with_its_parent_but_not_the_other_way_round() {
        let parent = Shutdown::new();
        let child = parent.child();
        child.trigger();
        assert!(!parent.is_triggered());
        let other = parent.child();
        parent.trigger();
        assert!(other.is_triggered());
    }

    #[tokio::test]
    async fn a_server_that_finishes_returns_its_output() {
        let shutdown = Shutdown::new();
        let outcome = shutdown
            .drain("quick", Duration::from_secs(5), async { 7 })
            .await;
        assert_eq!(outcome, Some(7));
    }
}
