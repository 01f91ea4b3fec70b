//! The Docker Engine API calls the `docker` backend makes, through `bollard` on the engine's Unix
//! socket (no TCP, TLS or SSH compiled in): every call under a time limit, and errors that name
//! the call and carry the engine's own message.
//!
//! The engine's API version is read once, on the first call (`GET /version`), to refuse one older
//! than 1.24 and to lower bollard's version to it. bollard 0.20 sends its paths without a version
//! prefix, which an engine serves in its own current version (podman's compatible service: 1.41);
//! either way no call asks for a version newer than the engine offers.

use std::future::{Future, ready};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::errors::Error as ClientError;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions, UploadToContainerOptions,
};
use futures::TryStreamExt;
use tokio::sync::OnceCell;

/// Most calls answer in milliseconds; creating a container may unpack an image.
const CALL_LIMIT: Duration = Duration::from_secs(30);
/// Pulling an image over a slow network.
const PULL_LIMIT: Duration = Duration::from_secs(300);
/// The oldest API version whose fields we rely on (Docker 1.12).
const MIN_VERSION: (usize, usize) = (1, 24);

/// A call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The engine answered with an error status and this message.
    #[error("Docker API {call}: {message} (HTTP {status})")]
    Engine {
        call: String,
        status: u16,
        message: String,
    },
    /// No usable answer: no engine at the socket, a broken connection, a reply that is not what
    /// the API documents.
    #[error("Docker engine at {}: {call}: {source}", .socket.display())]
    Client {
        socket: PathBuf,
        call: String,
        #[source]
        source: ClientError,
    },
    #[error("the Docker engine at {} did not answer {call} within {} s", .socket.display(), .limit.as_secs())]
    TimedOut {
        socket: PathBuf,
        call: String,
        limit: Duration,
    },
    #[error("the engine speaks Docker API {version}; {}.{} or later is needed", MIN_VERSION.0, MIN_VERSION.1)]
    TooOld { version: String },
    /// The engine accepted a pull and reported its failure in the progress stream.
    #[error("pulling {image}: {message}")]
    Pull { image: String, message: String },
}

impl ApiError {
    /// The image is not on the engine (a create may pull it and try again).
    pub fn is_missing_image(&self) -> bool {
        matches!(self, Self::Engine { status: 404, message, .. }
            if message.to_ascii_lowercase().contains("no such image"))
    }

    fn is_not_found(&self) -> bool {
        matches!(self, Self::Engine { status: 404, .. })
    }
}

pub struct Api {
    socket: PathBuf,
    /// Connected, with the API version negotiated, by the first call that gets that far.
    client: OnceCell<bollard::Docker>,
}

impl Api {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
            client: OnceCell::new(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /_ping`: the engine answers; the API version spoken with it.
    pub async fn ping(&self) -> Result<String, ApiError> {
        let client = self.client().await?;
        self.within("GET /_ping", CALL_LIMIT, client.ping()).await?;
        Ok(client.client_version().to_string())
    }

    /// The client, made on the first call: bollard's newest API version, lowered to the engine's
    /// (`GET /version`) as the docker CLI negotiates it. A failure is not kept: the next call
    /// tries again (the engine may start after the executor).
    async fn client(&self) -> Result<&bollard::Docker, ApiError> {
        self.client
            .get_or_try_init(|| async {
                // Our own limits apply per call; bollard's only bounds the wait for a reply's head.
                let client = bollard::Docker::connect_with_unix(
                    &self.socket.to_string_lossy(),
                    PULL_LIMIT.as_secs(),
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(|error| self.failed("connect".into(), error))?;
                let client = self
                    .within("GET /version", CALL_LIMIT, client.negotiate_version())
                    .await?;
                let version = client.client_version();
                if (version.major_version, version.minor_version) < MIN_VERSION {
                    return Err(ApiError::TooOld {
                        version: version.to_string(),
                    });
                }
                Ok(client)
            })
            .await
    }

    /// A container's inspect document, or `None` when there is no such container.
    pub async fn inspect(
        &self,
        name_or_id: &str,
    ) -> Result<Option<ContainerInspectResponse>, ApiError> {
        let client = self.client().await?;
        let call = format!("inspect {name_or_id}");
        match self
            .within(call, CALL_LIMIT, client.inspect_container(name_or_id, None))
            .await
        {
            Err(error) if error.is_not_found() => Ok(None),
            other => other.map(Some),
        }
    }

    /// Creates container `name`: its id.
    pub async fn create(
        &self,
        name: &str,
        config: ContainerCreateBody,
    ) -> Result<String, ApiError> {
        let client = self.client().await?;
        let options = CreateContainerOptions {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        let created = self
            .within(
                format!("create {name}"),
                CALL_LIMIT,
                client.create_container(Some(options), config),
            )
            .await?;
        Ok(created.id)
    }

    /// Pulls `image`, reading the progress stream to its end: the engine answers 200 at once and
    /// reports a failure inside it.
    pub async fn pull(&self, image: &str) -> Result<(), ApiError> {
        let client = self.client().await?;
        let (name, tag) = split_reference(image);
        let options = CreateImageOptions {
            from_image: Some(name.to_owned()),
            tag: tag.map(str::to_owned),
            ..Default::default()
        };
        let progress = client
            .create_image(Some(options), None, None)
            .try_for_each(|_| ready(Ok(())));
        match self
            .within(format!("pull {image}"), PULL_LIMIT, progress)
            .await
        {
            Err(ApiError::Client {
                source: ClientError::DockerStreamError { error },
                ..
            }) => Err(ApiError::Pull {
                image: image.to_owned(),
                message: error,
            }),
            other => other,
        }
    }

    /// Extracts a tar archive at the container's root.
    pub async fn upload(&self, id: &str, tar: Vec<u8>) -> Result<(), ApiError> {
        let client = self.client().await?;
        let options = UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        };
        let upload = client.upload_to_container(id, Some(options), bollard::body_full(tar.into()));
        self.within(format!("upload to {id}"), CALL_LIMIT, upload)
            .await
    }

    /// Starts a container (one already started is fine).
    pub async fn start(&self, id: &str) -> Result<(), ApiError> {
        let client = self.client().await?;
        self.within(
            format!("start {id}"),
            CALL_LIMIT,
            client.start_container(id, None),
        )
        .await
    }

    /// Stops a container, killed after `grace` (one already stopped is fine).
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), ApiError> {
        let client = self.client().await?;
        let options = StopContainerOptions {
            t: Some(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)),
            signal: None,
        };
        self.within(
            format!("stop {id}"),
            CALL_LIMIT + grace,
            client.stop_container(id, Some(options)),
        )
        .await
    }

    /// Removes a container and its anonymous volumes, running or not; false when it was
    /// already gone.
    pub async fn remove(&self, id: &str) -> Result<bool, ApiError> {
        let client = self.client().await?;
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self
            .within(
                format!("remove {id}"),
                CALL_LIMIT,
                client.remove_container(id, Some(options)),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The last `lines` lines of stdout and stderr, as text.
    pub async fn logs(&self, id: &str, lines: u32) -> Result<String, ApiError> {
        let client = self.client().await?;
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let read = client
            .logs(id, Some(options))
            .try_fold(Vec::new(), |mut text, output| {
                text.extend_from_slice(output.as_ref());
                ready(Ok(text))
            });
        let text = self
            .within(format!("logs of {id}"), CALL_LIMIT, read)
            .await?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// `call` under `limit`, its failure named.
    async fn within<T>(
        &self,
        call: impl Into<String>,
        limit: Duration,
        call_future: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(limit, call_future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.failed(call.into(), error)),
            Err(_) => Err(ApiError::TimedOut {
                socket: self.socket.clone(),
                call: call.into(),
                limit,
            }),
        }
    }

    fn failed(&self, call: String, error: ClientError) -> ApiError {
        match error {
            ClientError::DockerResponseServerError {
                status_code,
                message,
            } => ApiError::Engine {
                call,
                status: status_code,
                message,
            },
            source => ApiError::Client {
                socket: self.socket.clone(),
                call,
                source,
            },
        }
    }
}

/// `redis:7-alpine` → (`redis`, `7-alpine`); `host:5000/a/b` → (`host:5000/a/b`, `latest`, the
/// tag the engine would take); a digest stays in the name.
fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => (
            &image[..last_slash + colon],
            Some(&image[last_slash + colon + 1..]),
        ),
        None => (image, Some("latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_name_and_tag() {
        assert_eq!(
            split_reference("redis:7-alpine"),
            ("redis", Some("7-alpine"))
        );
        assert_eq!(
            split_reference("edoburu/pgbouncer"),
            ("edoburu/pgbouncer", Some("latest"))
        );
        assert_eq!(
            split_reference("registry:5000/team/pgbouncer"),
            ("registry:5000/team/pgbouncer", Some("latest"))
        );
        assert_eq!(
            split_reference("registry:5000/pgbouncer:1.23"),
            ("registry:5000/pgbouncer", Some("1.23"))
        );
        assert_eq!(
            split_reference("redis@sha256:ab"),
            ("redis@sha256:ab", None)
        );
    }

    #[test]
    fn only_a_missing_image_is_pulled_and_only_a_missing_container_is_absent() {
        let engine = |status, message: &str| ApiError::Engine {
            call: "create x".into(),
            status,
            message: message.into(),
        };
        assert!(engine(404, "No such image: redis:7").is_missing_image());
        assert!(!engine(404, "No such container: x").is_missing_image());
        assert!(!engine(500, "no such image: redis:7").is_missing_image());
        assert!(engine(404, "No such container: x").is_not_found());
        assert_eq!(
            engine(409, "conflict").to_string(),
            "Docker API create x: conflict (HTTP 409)"
        );
    }

    /// An engine on a Unix socket that offers API `version`, answers every call with an empty
    /// JSON object (its `/version` with `version`), and reports each request line.
    fn fake_engine(
        version: &'static str,
    ) -> (
        tempfile::TempDir,
        Api,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let (requests, seen) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = vec![0; 4096];
                let read = stream.read(&mut head).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&head[..read])
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let body = if line.contains("/version ") {
                    format!(r#"{{"ApiVersion":"{version}","Version":"fake"}}"#)
                } else {
                    "{}".to_owned()
                };
                let _ = requests.send(line);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        let api = Api::new(&socket);
        (dir, api, seen)
    }

    #[tokio::test]
    async fn no_call_asks_for_an_api_version_newer_than_the_engine_offers() {
        let (_dir, api, mut seen) = fake_engine("1.41");
        assert_eq!(api.ping().await.unwrap(), "1.41");
        assert!(
            api.inspect("startupmonkey-redis-x")
                .await
                .unwrap()
                .is_some()
        );
        let mut lines = Vec::new();
        while let Ok(line) = seen.try_recv() {
            lines.push(line);
        }
        assert_eq!(lines.len(), 3, "{lines:?}");
        for line in &lines {
            // bollard 0.20 sends no version (the engine answers in its own); a version, if one
            // is ever sent, is the engine's.
            let path = line.split(' ').nth(1).unwrap_or_default();
            let versioned = path
                .strip_prefix("/v")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
            assert!(!versioned || path.starts_with("/v1.41/"), "{lines:?}");
        }
    }

    #[tokio::test]
    async fn an_engine_older_than_api_1_24_is_refused_naming_its_version() {
        let (_dir, api, _seen) = fake_engine("1.23");
        let refused = api.ping().await.unwrap_err().to_string();
        assert!(refused.contains("1.23"), "{refused}");
        assert!(refused.contains("1.24 or later"), "{refused}");
    }
}
