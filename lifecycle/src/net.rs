//! Binding listeners and serving gRPC until shutdown, the same way in every service.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::shutdown::{DRAIN_DEADLINE, Shutdown};

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds `addr`; port 0 picks a free port (tests), `local_addr` tells which.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// The address a bound listener listens on.
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound TCP listener has a local address")
}

/// Serves a tonic router on `listener` until shutdown, then drains within the deadline.
/// Accepted connections have Nagle's algorithm off: a streamed snapshot must not wait 40 ms for a
/// delayed ACK (tonic applies its own no-delay setting only to listeners it binds itself).
pub async fn serve_grpc(
    what: &'static str,
    router: tonic::transport::server::Router,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), tonic::transport::Error> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = router.serve_with_incoming_shutdown(incoming, shutdown.signal());
    shutdown
        .drain(what, DRAIN_DEADLINE, server)
        .await
        .unwrap_or(Ok(()))
}
