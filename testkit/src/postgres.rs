//! A private PostgreSQL 15 cluster: `initdb` in a temporary directory (as the `postgres` user when
//! we run as root, since PostgreSQL refuses root), `pg_stat_statements` preloaded, HypoPG available
//! to `CREATE EXTENSION`, listening on 127.0.0.1 at a free port with its own socket directory.
//! Tests may change its settings, kill its sessions or stop it: it is theirs alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tempfile::TempDir;

use crate::binaries;
use crate::net::{free_port, wait_until};
use crate::process::{log_tail, running_as_root};

const PACKAGE: &str = "postgresql-15";

/// Settings every test cluster gets; `start_with` adds to or overrides them.
const BASE_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "'127.0.0.1'"),
    ("shared_preload_libraries", "'pg_stat_statements'"),
    ("compute_query_id", "on"),
    ("pg_stat_statements.track", "all"),
    ("track_io_timing", "on"),
    ("max_connections", "100"),
    // Throwaway data: durability only slows the tests down.
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
];

#[derive(Debug)]
pub struct PgCluster {
    port: u16,
    dir: TempDir,
    running: bool,
}

impl PgCluster {
    /// Starts a cluster with the base settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a cluster with extra `postgresql.conf` settings, e.g. `("max_connections", "30")`.
    /// Values are written as given, so quote strings: `("shared_buffers", "'128kB'")`.
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("testkit-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for PostgreSQL: {e}"));
        give_to_postgres(dir.path());
        let mut cluster = Self {
            port: 0,
            dir,
            running: false,
        };
        cluster.initdb(settings);
        cluster.resume();
        cluster
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>` (trust authentication).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// `url` for a given role.
    pub fn url_as(&self, role: &str, database: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL with psql as the superuser and returns its unaligned, tuples-only output.
    /// Panics with psql's message if a statement fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = self.try_psql(database, sql);
        assert!(
            output.status.success(),
            "psql failed on {database}: {}\nSQL: {sql}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// As `psql`, returning the raw output instead of panicking.
    pub fn try_psql(&self, database: &str, sql: &str) -> Output {
        Command::new(binaries::find("psql", PACKAGE))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", database, "-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"))
    }

    /// Creates a database.
    pub fn create_database(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")),
        );
    }

    /// Stops the cluster immediately (as a crash would); `resume` starts it again.
    pub fn stop(&mut self) {
        if self.running {
            let _ = as_postgres(&binaries::find("pg_ctl", PACKAGE))
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                .output();
            self.running = false;
        }
    }

    /// Starts the (stopped) cluster, on its old port when it had one.
    pub fn resume(&mut self) {
        let first_start = self.port == 0;
        for attempt in 0..3 {
            if first_start || attempt > 0 {
                self.port = free_port();
            }
            let output = as_postgres(&binaries::find("pg_ctl", PACKAGE))
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {} -k {}", self.port, self.dir.path().display()))
                .arg("start")
                .output()
                .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
            if output.status.success() && self.accepts_connections() {
                self.running = true;
                return;
            }
            if !first_start {
                break;
            }
        }
        panic!(
            "PostgreSQL did not start on port {}; log:\n{}",
            self.port,
            log_tail(&self.log_path())
        );
    }

    fn accepts_connections(&self) -> bool {
        let pg_isready = binaries::find("pg_isready", PACKAGE);
        wait_until(Duration::from_secs(30), || {
            Command::new(&pg_isready)
                .args(["-q", "-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
    }

    fn initdb(&self, settings: &[(&str, &str)]) {
        let output = as_postgres(&binaries::find("initdb", PACKAGE))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale", "C"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut conf = String::from("\n# testkit\n");
        for (name, value) in BASE_SETTINGS.iter().chain(settings) {
            conf.push_str(&format!("{name} = {value}\n"));
        }
        let path = self.data_dir().join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        existing.push_str(&conf);
        std::fs::write(&path, existing)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// From now on `role` must give its password over TCP (SCRAM); every other role keeps
    /// trust authentication. For tests where a wrong password must really be refused.
    pub fn require_password_for(&self, role: &str) {
        let path = self.data_dir().join("pg_hba.conf");
        let existing = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let line = format!(
            "host all \"{}\" 127.0.0.1/32 scram-sha-256\n",
            role.replace('"', "\"\"")
        );
        std::fs::write(&path, line + &existing)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        self.psql("postgres", "SELECT pg_reload_conf()");
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A command run as the `postgres` user when we are root, else as ourselves.
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn give_to_postgres(dir: &Path) {
    if !running_as_root() {
        return;
    }
    let status = Command::new("chown")
        .arg("postgres:postgres")
        .arg(dir)
        .status()
        .unwrap_or_else(|e| panic!("cannot run chown: {e}"));
    assert!(
        status.success(),
        "cannot give {} to the postgres user (does the user exist? install {PACKAGE})",
        dir.display()
    );
}
