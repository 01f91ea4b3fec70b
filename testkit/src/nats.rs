//! A private `nats-server` with JetStream on a free port, stoppable and restartable.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::binaries;
use crate::net::{answers, free_port, wait_until};
use crate::process::{Server, start_and_wait};
use crate::tls::Certificates;

#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    dir: TempDir,
    server: Option<Server>,
    /// A configuration file with credentials and TLS, when started secured.
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Starts `nats-server -js` with its JetStream store in a private directory.
    pub fn start() -> Self {
        Self::start_configured(None)
    }

    /// A server that accepts only `user`/`password`, and only over TLS when `tls` is given
    /// (clients verified against its CA when `verify_clients`).
    pub fn start_secured(
        user: &str,
        password: &str,
        tls: Option<&Certificates>,
        verify_clients: bool,
    ) -> Self {
        let quote = quoted;
        let mut config = format!(
            "authorization {{\n  user: {}\n  password: {}\n}}\n",
            quote(user),
            quote(password)
        );
        if let Some(tls) = tls {
            config.push_str(&format!(
                "tls {{\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n  verify: {verify_clients}\n}}\n",
                quote(&tls.server_cert().display().to_string()),
                quote(&tls.server_key().display().to_string()),
                quote(&tls.ca().display().to_string()),
            ));
        }
        Self::start_configured(Some(config))
    }

    fn start_configured(config: Option<String>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("testkit-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for nats-server: {e}"));
        let config = config.map(|text| {
            let path = dir.path().join("nats.conf");
            std::fs::write(&path, text).expect("write nats.conf");
            path
        });
        let mut nats = Self {
            port: free_port(),
            dir,
            server: None,
            config,
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
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
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

/// A double-quoted string for nats-server's configuration (its syntax accepts JSON strings).
fn quoted(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
