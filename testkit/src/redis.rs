//! A private `redis-server` on a free port, stoppable and restartable on the same port.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::binaries;
use crate::net::{answers, free_port, wait_until};
use crate::process::{Server, start_and_wait};

#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    server: Option<Server>,
    append_only: bool,
}

impl RedisServer {
    /// Starts a server that keeps nothing on disk.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts a server with the append-only file on, so a restart keeps the data.
    pub fn start_persistent() -> Self {
        Self::start_with(true)
    }

    fn start_with(append_only: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("testkit-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for redis-server: {e}"));
        let mut redis = Self {
            port: free_port(),
            dir,
            server: None,
            append_only,
        };
        redis.resume();
        redis
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would); `resume` starts it again on the same port.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill();
        }
        assert!(
            wait_until(Duration::from_secs(5), || !answers(
                self.port,
                b"PING\r\n",
                b"+PONG"
            )),
            "redis-server on port {} still answers after being killed",
            self.port
        );
    }

    /// Starts the server again on the same port and directory.
    pub fn resume(&mut self) {
        let log = self.log_path();
        let mut command = Command::new(binaries::find("redis-server", "redis-server"));
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", if self.append_only { "yes" } else { "no" }])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log);
        let port = self.port;
        let server = start_and_wait(&mut command, "redis-server", port, &log, || {
            answers(port, b"PING\r\n", b"+PONG")
        });
        self.server = Some(server);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }
}
