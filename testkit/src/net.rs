//! Free ports and waiting for a server to answer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A port that was free a moment ago (the OS picks it; a server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port on 127.0.0.1: {e}"))
}

/// Polls `probe` until it succeeds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if probe() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// Connects, optionally sends `request`, and checks the first bytes of the reply.
pub fn answers(port: u16, request: &[u8], expected_prefix: &[u8]) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if !request.is_empty() && stream.write_all(request).is_err() {
        return false;
    }
    let mut buffer = vec![0_u8; expected_prefix.len()];
    stream.read_exact(&mut buffer).is_ok() && buffer == expected_prefix
}
