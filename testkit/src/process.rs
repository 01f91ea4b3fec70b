//! A child server process that is killed and reaped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};

#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
}

impl Server {
    pub fn spawn(command: &mut Command, what: &str) -> Self {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Self { child: Some(child) }
    }

    /// `Some(status)` when the process has already exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Asks the process to stop (SIGTERM), waits up to `grace` for it, then kills it; reaps it.
    pub fn terminate(&mut self, grace: std::time::Duration) {
        if let Some(child) = self.child.as_mut() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + grace;
            while std::time::Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        self.kill();
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a server and waits until `ready` holds (and the process is still running), or panics
/// with the tail of its log.
pub fn start_and_wait(
    command: &mut Command,
    what: &str,
    port: u16,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) -> Server {
    let mut server = Server::spawn(command, what);
    let up = crate::net::wait_until(std::time::Duration::from_secs(10), || {
        server.exited().is_none() && ready()
    });
    assert!(
        up,
        "{what} did not answer on port {port} within 10 s; log:\n{}",
        log_tail(log)
    );
    server
}

/// The tail of a log file, for failure messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Whether this process runs as root (servers that refuse root are then run as another user, or
/// told to accept it).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
