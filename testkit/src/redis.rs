//! A private `redis-server` on a free port, stoppable and restartable on the same port.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::binaries;
use crate::net::{answers, free_port, wait_until};
use crate::process::{Server, start_and_wait};
use crate::tls::Certificates;

#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    server: Option<Server>,
    append_only: bool,
    password: Option<String>,
    /// Server certificate, key and CA, when the port speaks TLS only.
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
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

    /// A server that requires `password`, speaking only TLS when `tls` is given (client
    /// certificates optional, verified against its CA when presented).
    pub fn start_secured(password: &str, tls: Option<&Certificates>) -> Self {
        Self::start_configured(
            false,
            Some(password.to_owned()),
            tls.map(|t| (t.server_cert(), t.server_key(), t.ca())),
        )
    }

    fn start_with(append_only: bool) -> Self {
        Self::start_configured(append_only, None, None)
    }

    fn start_configured(
        append_only: bool,
        password: Option<String>,
        tls: Option<(PathBuf, PathBuf, PathBuf)>,
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("testkit-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for redis-server: {e}"));
        let mut redis = Self {
            port: free_port(),
            dir,
            server: None,
            append_only,
            password,
            tls,
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
            wait_until(Duration::from_secs(5), || {
                TcpStream::connect(("127.0.0.1", self.port)).is_err()
            }),
            "redis-server on port {} still answers after being killed",
            self.port
        );
    }

    /// Starts the server again on the same port and directory.
    pub fn resume(&mut self) {
        let log = self.log_path();
        let mut command = Command::new(binaries::find("redis-server", "redis-server"));
        match &self.tls {
            Some((cert, key, ca)) => {
                command
                    .args(["--port", "0", "--tls-port"])
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(cert)
                    .arg("--tls-key-file")
                    .arg(key)
                    .arg("--tls-ca-cert-file")
                    .arg(ca)
                    .args(["--tls-auth-clients", "optional"]);
            }
            None => {
                command.arg("--port").arg(self.port.to_string());
            }
        }
        if let Some(password) = &self.password {
            command.arg("--requirepass").arg(password);
        }
        command
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", if self.append_only { "yes" } else { "no" }])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log);
        let port = self.port;
        let (tls, password) = (self.tls.is_some(), self.password.is_some());
        let server = start_and_wait(&mut command, "redis-server", port, &log, || {
            if tls {
                // Nothing to say in plain text: ready when its log says so.
                std::fs::read_to_string(&log)
                    .is_ok_and(|text| text.contains("Ready to accept connections"))
            } else if password {
                answers(port, b"PING\r\n", b"-NOAUTH")
            } else {
                answers(port, b"PING\r\n", b"+PONG")
            }
        });
        self.server = Some(server);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }
}
