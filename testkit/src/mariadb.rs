//! A private MariaDB server (Debian 12's 10.11): `mariadb-install-db` into a temporary directory,
//! `mariadbd` on 127.0.0.1 at a free port with its own socket, `performance_schema` on (it is off
//! by default and needs a restart to change, so a test that wants it off asks for that), root
//! without a password over the socket and TCP. Tests may change its settings, kill its sessions
//! or stop it: it is theirs alone.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use tempfile::TempDir;

use crate::binaries;
use crate::net::{free_port, wait_until};
use crate::process::{Server, log_tail, running_as_root};

const PACKAGE: &str = "mariadb-server";
const CLIENT_PACKAGE: &str = "mariadb-client";

#[derive(Debug)]
pub struct MariaDbServer {
    port: u16,
    dir: TempDir,
    server: Option<Server>,
    performance_schema: bool,
}

impl MariaDbServer {
    /// Starts a server with `performance_schema` on.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// Starts a server with `performance_schema` as given (off: the server as Debian ships it).
    pub fn start_with(performance_schema: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("testkit-mariadb-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for MariaDB: {e}"));
        let server = Self {
            port: 0,
            dir,
            server: None,
            performance_schema,
        };
        server.install();
        let mut server = server;
        server.resume();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://root@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL as root with the `mariadb` client; panics with its error output on failure.
    /// Returns the output rows, tab-separated, without column names.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let output = self.try_sql(database, sql);
        assert!(
            output.status.success(),
            "mariadb failed on {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Like [`MariaDbServer::sql`], returning the output whatever happened.
    pub fn try_sql(&self, database: &str, sql: &str) -> Output {
        Command::new(binaries::find("mariadb", CLIENT_PACKAGE))
            .arg(format!("--socket={}", self.socket().display()))
            .args(["--user=root", "--batch", "--skip-column-names"])
            .arg(format!("--database={database}"))
            .arg("--execute")
            .arg(sql)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the mariadb client: {e}"))
    }

    /// The last lines of the server's error log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path())
    }

    /// Creates a database (utf8mb4).
    pub fn create_database(&self, name: &str) {
        self.sql(
            "mysql",
            &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
        );
    }

    /// Stops the server cleanly (SIGTERM; killed if it takes more than 30 s). A server killed
    /// outright lost a commit made just before it (MariaDB 10.11.19 here, with O_DIRECT log writes).
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.terminate(Duration::from_secs(30));
        }
    }

    /// Starts the server again (on the same port when it is still free, else a new one).
    pub fn resume(&mut self) {
        if self.server.is_some() {
            return;
        }
        for attempt in 0..3 {
            if self.port == 0 || attempt > 0 {
                self.port = free_port();
            }
            let mut command = Command::new(binaries::find("mariadbd", PACKAGE));
            command
                .arg("--no-defaults")
                .arg(format!("--datadir={}", self.data_dir().display()))
                .arg(format!("--socket={}", self.socket().display()))
                .arg(format!(
                    "--pid-file={}",
                    self.dir.path().join("mariadbd.pid").display()
                ))
                .arg(format!("--log-error={}", self.log_path().display()))
                .arg(format!("--port={}", self.port))
                .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
                .arg(format!(
                    "--performance-schema={}",
                    if self.performance_schema { "ON" } else { "OFF" }
                ))
                // Throwaway data: durability only slows the tests down.
                .args([
                    "--innodb-flush-log-at-trx-commit=0",
                    "--innodb-doublewrite=0",
                ])
                .args(["--innodb-buffer-pool-size=128M", "--max-connections=200"]);
            if running_as_root() {
                command.arg("--user=root");
            }
            let mut server = Server::spawn(&mut command, "mariadbd");
            let up = wait_until(Duration::from_secs(30), || {
                server.exited().is_none() && self.try_sql("mysql", "SELECT 1").status.success()
            });
            if up {
                self.server = Some(server);
                return;
            }
            server.kill();
        }
        panic!(
            "MariaDB did not start on port {}; log:\n{}",
            self.port,
            log_tail(&self.log_path())
        );
    }

    fn install(&self) {
        let output = Command::new(binaries::find("mariadb-install-db", PACKAGE))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(if running_as_root() {
                &["--user=root"][..]
            } else {
                &[][..]
            })
            .output()
            .unwrap_or_else(|e| panic!("cannot run mariadb-install-db: {e}"));
        assert!(
            output.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadbd.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mariadbd.log")
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.stop();
    }
}
