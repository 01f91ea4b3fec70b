//! A private `nats-server` with JetStream on a free port, stoppable and restartable.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::binaries;
use crate::net::{answers, free_port, wait_until};
use crate::process::{Server, start_and_wait};

#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    dir: TempDir,
    server: Option<Server>,
}

impl NatsServer {
    /// Starts `nats-server -js` with its JetStream store in a private directory.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("testkit-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for nats-server: {e}"));
        let mut nats = Self {
            port: free_port(),
            dir,
            server: None,
        };
        nats.resume();
        nats
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server; JetStream data stays in the directory for `resume`.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill();
        }
        assert!(
            wait_until(Duration::from_secs(5), || !answers(self.port, b"", b"INFO")),
            "nats-server on port {} still answers after being killed",
            self.port
        );
    }

    /// Starts the server again on the same port with the same JetStream store.
    pub fn resume(&mut self) {
        let log = self.log_path();
        let mut command = Command::new(binaries::find("nats-server", "nats-server"));
        command
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(self.dir.path().join("jetstream"))
            .arg("-l")
            .arg(&log);
        let port = self.port;
        let server = start_and_wait(&mut command, "nats-server", port, &log, || {
            answers(port, b"", b"INFO")
        });
        self.server = Some(server);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }
}
