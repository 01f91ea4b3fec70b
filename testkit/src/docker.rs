//! A real Docker-compatible engine for tests: podman's Docker Engine API service
//! (`podman system service`) on a socket in a private directory, running containers with runc
//! (crun cannot run here: cgroups in hybrid mode, and it may not raise RLIMIT_NOFILE), and two
//! test images built from the host's own binaries — no registry is needed: a root file system
//! with `pgbouncer` (or `redis-server`) on PATH, every library `ldd` lists and an `/etc/passwd`
//! with nobody (65534), imported with `podman import`. The images are built once per machine
//! (their tag is a hash of the files that go in); the containers a test made are removed when
//! its engine is dropped.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::binaries;
use crate::net::wait_until;
use crate::process::log_tail;

/// Where podman finds the runtime and the limits it can set here.
const CONTAINERS_CONF: &str = r#"# testkit: runc, and limits the container may have without raising the host's
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1024:1024"]

[engine]
runtime = "runc"
"#;

#[derive(Debug)]
pub struct DockerEngine {
    dir: TempDir,
    service: Option<Child>,
    podman: PathBuf,
    /// In every database id from [`DockerEngine::unique`], so in the containers' names.
    token: String,
    pooler_image: String,
    redis_image: String,
    /// Networks made by [`DockerEngine::network`], removed when dropped.
    networks: std::sync::Mutex<Vec<String>>,
}

impl DockerEngine {
    /// Starts podman's API service on a private socket and makes sure the test images exist.
    /// Panics, naming the Debian package, when podman or runc is missing.
    pub fn start() -> Self {
        let podman = binaries::find("podman", "podman");
        binaries::find("runc", "runc");
        let dir = tempfile::Builder::new()
            .prefix("testkit-docker-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for podman: {e}"));
        std::fs::write(dir.path().join("containers.conf"), CONTAINERS_CONF)
            .unwrap_or_else(|e| panic!("cannot write containers.conf: {e}"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut engine = Self {
            token: format!("t{:x}{nanos:x}", std::process::id()),
            service: None,
            podman,
            pooler_image: String::new(),
            redis_image: String::new(),
            networks: Default::default(),
            dir,
        };
        engine.pooler_image = engine.image("pgbouncer", &[("/usr/sbin/pgbouncer", "pgbouncer")]);
        // redis-cli as well: a client on a container network resolves the cache by its name.
        engine.redis_image = engine.image(
            "redis",
            &[
                ("/usr/bin/redis-server", "redis-server"),
                ("/usr/bin/redis-cli", "redis-tools"),
            ],
        );
        let log = engine.dir.path().join("service.log");
        let log_file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let socket = engine.socket();
        let child = engine
            .cli()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(
                log_file
                    .try_clone()
                    .unwrap_or_else(|e| panic!("cannot open the podman log: {e}")),
            )
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start podman system service: {e}"));
        engine.service = Some(child);
        let up = wait_until(Duration::from_secs(30), || {
            http_get(&socket, "/_ping").is_some_and(|reply| reply.ends_with("OK"))
        });
        assert!(
            up,
            "podman's API service did not answer on {} within 30 s; log:\n{}",
            socket.display(),
            log_tail(&log)
        );
        engine
    }

    /// The API's Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// `unix://<socket>`, as `DOCKER_HOST` gives it.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// An image with `pgbouncer` on PATH (and nothing else but its libraries).
    pub fn pooler_image(&self) -> &str {
        &self.pooler_image
    }

    /// An image with `redis-server` on PATH.
    pub fn redis_image(&self) -> &str {
        &self.redis_image
    }

    /// `<name>-<this engine's token>`: a database id whose containers this engine removes when
    /// dropped (tests on one machine share podman's storage, so each removes only its own).
    pub fn unique(&self, name: &str) -> String {
        format!("{name}-{}", self.token)
    }

    /// A new bridge network of this engine's (`sm-test-<name>-<token>`), with DNS: its
    /// containers reach each other by name.
    pub fn network(&self, name: &str) -> String {
        let network = format!("sm-test-{}", self.unique(name));
        self.podman(&["network", "create", &network]);
        self.networks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(network.clone());
        network
    }

    /// `GET <path>` on the API (e.g. `/containers/<name>/json`): the status line's code and the
    /// body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let reply = http_get(&self.socket(), path)
            .unwrap_or_else(|| panic!("the engine did not answer GET {path}"));
        let code = reply
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in the reply to GET {path}: {reply}"));
        let body = reply
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (code, body)
    }

    /// Runs the podman CLI on the engine's storage and returns its output; panics with its
    /// message when it fails.
    pub fn podman(&self, args: &[&str]) -> String {
        let output = self
            .cli()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman: {e}"));
        assert!(
            output.status.success(),
            "podman {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The contents of `path` inside `container` (`podman cp`).
    pub fn read_file(&self, container: &str, path: &str) -> String {
        let copy = self.dir.path().join("copied");
        let _ = std::fs::remove_file(&copy);
        self.podman(&[
            "cp",
            &format!("{container}:{path}"),
            &copy.display().to_string(),
        ]);
        std::fs::read_to_string(&copy)
            .unwrap_or_else(|e| panic!("cannot read {path} copied from {container}: {e}"))
    }

    fn cli(&self) -> Command {
        let mut command = Command::new(&self.podman);
        command.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"));
        command
    }

    /// `localhost/sm-test-<name>:<hash of the files that go in>` with `programs` (their path in
    /// the image, their Debian package), imported unless it exists.
    fn image(&self, name: &str, programs: &[(&str, &str)]) -> String {
        let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
        for (path, package) in programs {
            let path = Path::new(path);
            let program = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let found = binaries::find(program, package);
            // Copied under its own name: redis-server is a link to redis-check-rdb and chooses
            // its mode by the name it is started under.
            let binary = std::fs::canonicalize(&found).unwrap_or(found);
            for library in libraries(&binary) {
                files.push((library.clone(), library));
            }
            files.push((binary, path.to_owned()));
        }
        files.sort();
        files.dedup();
        let mut identity = String::new();
        for (file, to) in &files {
            let meta = std::fs::metadata(file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            identity.push_str(&format!(
                "{} {} {} {modified}\n",
                file.display(),
                to.display(),
                meta.len()
            ));
        }
        let image = format!("localhost/sm-test-{name}:{:016x}", fnv1a(&identity));
        // One builder at a time on this machine; the others then find the image.
        let lock = std::fs::File::create(std::env::temp_dir().join("testkit-docker-images.lock"))
            .unwrap_or_else(|e| panic!("cannot create the image lock: {e}"));
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot take the image lock: {e}"));
        let exists = self
            .cli()
            .args(["image", "exists", &image])
            .status()
            .is_ok_and(|s| s.success());
        if !exists {
            self.build(&image, name, &files);
        }
        image
    }

    /// A root file system with `files` (from, to) and a nobody user, imported as `image`.
    fn build(&self, image: &str, name: &str, files: &[(PathBuf, PathBuf)]) {
        let root = self.dir.path().join(format!("rootfs-{name}"));
        for (from, to) in files {
            let target = root.join(to.strip_prefix("/").unwrap_or(to));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
            }
            std::fs::copy(from, &target).unwrap_or_else(|e| {
                panic!(
                    "cannot copy {} to {}: {e}",
                    from.display(),
                    target.display()
                )
            });
        }
        let etc = root.join("etc");
        std::fs::create_dir_all(&etc).unwrap_or_else(|e| panic!("cannot create etc: {e}"));
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        )
        .unwrap_or_else(|e| panic!("cannot write passwd: {e}"));
        std::fs::write(etc.join("group"), "root:x:0:\nnogroup:x:65534:\n")
            .unwrap_or_else(|e| panic!("cannot write group: {e}"));
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("cannot create tmp: {e}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
            .unwrap_or_else(|e| panic!("cannot chmod tmp: {e}"));

        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--numeric-owner", "--owner=0", "--group=0", "-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run tar: {e}"));
        let archive = tar.stdout.take().expect("tar's stdout");
        let output = self
            .cli()
            .args(["import", "--change"])
            .arg("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .args(["-", image])
            .stdin(archive)
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman import: {e}"));
        let tarred = tar.wait().is_ok_and(|s| s.success());
        assert!(
            tarred && output.status.success(),
            "building {image} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}

impl Drop for DockerEngine {
    fn drop(&mut self) {
        // The containers this engine's tests made, then the service.
        let listed = self
            .cli()
            .args(["ps", "-a", "-q", "--filter"])
            .arg(format!("name={}", self.token))
            .output();
        if let Ok(listed) = listed {
            let ids = String::from_utf8_lossy(&listed.stdout).to_string();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = self
                    .cli()
                    .args(["rm", "-f", "-v", "-t", "0"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let networks = std::mem::take(self.networks.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !networks.is_empty() {
            let _ = self
                .cli()
                .args(["network", "rm", "-f"])
                .args(&networks)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut service) = self.service.take() {
            let _ = service.kill();
            let _ = service.wait();
        }
    }
}

/// The shared libraries `ldd` lists for `binary`, the dynamic loader included.
fn libraries(binary: &Path) -> Vec<PathBuf> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ldd (libc-bin): {e}"));
    assert!(
        output.status.success(),
        "ldd {} failed: {}",
        binary.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut found: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// One HTTP/1.0 GET over the socket: the whole reply, or `None` if nothing answered.
fn http_get(socket: &Path, path: &str) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
        .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    Some(reply)
}

/// FNV-1a, 64 bits: the images' tag.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
