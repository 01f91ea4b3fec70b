//! A minimal Docker Engine API client over the engine's Unix socket: HTTP/1.1 (hyper), one
//! connection per call, every call under a time limit, the API version the engine offers (read
//! from `GET /_ping` once, as the docker CLI negotiates it), and errors carrying the engine's own
//! message. Only the calls the `docker` backend makes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;
use tokio::sync::OnceCell;

/// Most calls answer in milliseconds; creating a container may unpack an image.
const CALL_LIMIT: Duration = Duration::from_secs(30);
/// Pulling an image over a slow network.
const PULL_LIMIT: Duration = Duration::from_secs(300);
/// The oldest API version whose fields we rely on (Docker 1.12).
const MIN_VERSION: (u32, u32) = (1, 24);

/// A call that failed: the HTTP status when the engine answered, and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} (HTTP {status})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    fn local(message: String) -> Self {
        Self {
            status: None,
            message,
        }
    }

    /// The image is not on the engine (a create may pull it and try again).
    pub fn is_missing_image(&self) -> bool {
        self.status == Some(404) && self.message.to_ascii_lowercase().contains("no such image")
    }
}

pub struct Api {
    socket: PathBuf,
    /// `1.41`: negotiated on the first call.
    version: OnceCell<String>,
}

impl Api {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
            version: OnceCell::new(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /_ping`: the engine answers and says which API version it speaks.
    pub async fn ping(&self) -> Result<String, ApiError> {
        let reply = self
            .send(Method::GET, "/_ping", None, CALL_LIMIT)
            .await?
            .ok("GET /_ping")?;
        let version = reply.api_version.ok_or_else(|| {
            ApiError::local("the engine's /_ping has no API-Version header".into())
        })?;
        let parsed = version
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
        match parsed {
            Some(v) if v >= MIN_VERSION => Ok(version),
            _ => Err(ApiError::local(format!(
                "the engine speaks Docker API {version}; {}.{} or later is needed",
                MIN_VERSION.0, MIN_VERSION.1
            ))),
        }
    }

    /// `path` under the negotiated version: `/v1.41/containers/...`.
    async fn versioned(&self, path: &str) -> Result<String, ApiError> {
        let version = self.version.get_or_try_init(|| self.ping()).await?;
        Ok(format!("/v{version}{path}"))
    }

    /// A container's inspect document, or `None` (404) when there is no such container.
    pub async fn inspect(&self, name_or_id: &str) -> Result<Option<Value>, ApiError> {
        let path = self
            .versioned(&format!("/containers/{}/json", encode(name_or_id)))
            .await?;
        let reply = self.send(Method::GET, &path, None, CALL_LIMIT).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        reply.ok("inspect")?.json().map(Some)
    }

    /// `POST /containers/create?name=`: the new container's id.
    pub async fn create(&self, name: &str, config: &Value) -> Result<String, ApiError> {
        let path = self
            .versioned(&format!("/containers/create?name={}", encode(name)))
            .await?;
        let body = Body::json(config);
        let reply = self
            .send(Method::POST, &path, Some(body), CALL_LIMIT)
            .await?
            .ok("create")?
            .json()?;
        reply["Id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::local(format!("create answered without an Id: {reply}")))
    }

    /// `POST /images/create?fromImage=&tag=`. The engine answers 200 at once and reports a
    /// failure inside the progress stream, which is read to its end.
    pub async fn pull(&self, image: &str) -> Result<(), ApiError> {
        let (name, tag) = split_reference(image);
        let mut query = format!("fromImage={}", encode(name));
        if let Some(tag) = tag {
            query.push_str(&format!("&tag={}", encode(tag)));
        }
        let path = self.versioned(&format!("/images/create?{query}")).await?;
        let reply = self
            .send(Method::POST, &path, None, PULL_LIMIT)
            .await?
            .ok("pull")?;
        let text = String::from_utf8_lossy(&reply.body);
        let error = serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .filter_map(Result::ok)
            .find_map(|event| event["error"].as_str().map(str::to_owned));
        match error {
            Some(error) => Err(ApiError::local(format!("pulling {image}: {error}"))),
            None => Ok(()),
        }
    }

    /// `PUT /containers/{id}/archive?path=/`: extracts a tar archive at the root.
    pub async fn upload(&self, id: &str, tar: Vec<u8>) -> Result<(), ApiError> {
        let path = self
            .versioned(&format!("/containers/{}/archive?path=%2F", encode(id)))
            .await?;
        let body = Body {
            content_type: "application/x-tar",
            bytes: tar.into(),
        };
        self.send(Method::PUT, &path, Some(body), CALL_LIMIT)
            .await?
            .ok("upload")?;
        Ok(())
    }

    /// `POST /containers/{id}/start` (304, already started, is fine).
    pub async fn start(&self, id: &str) -> Result<(), ApiError> {
        let path = self
            .versioned(&format!("/containers/{}/start", encode(id)))
            .await?;
        let reply = self.send(Method::POST, &path, None, CALL_LIMIT).await?;
        if reply.status == StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        reply.ok("start")?;
        Ok(())
    }

    /// `POST /containers/{id}/stop?t=` (304, already stopped, is fine).
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), ApiError> {
        let seconds = grace.as_secs();
        let path = self
            .versioned(&format!("/containers/{}/stop?t={seconds}", encode(id)))
            .await?;
        let limit = CALL_LIMIT + grace;
        let reply = self.send(Method::POST, &path, None, limit).await?;
        if reply.status == StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        reply.ok("stop")?;
        Ok(())
    }

    /// `DELETE /containers/{id}?force=true&v=true`; false when it was already gone.
    pub async fn remove(&self, id: &str) -> Result<bool, ApiError> {
        let path = self
            .versioned(&format!("/containers/{}?force=true&v=true", encode(id)))
            .await?;
        let reply = self.send(Method::DELETE, &path, None, CALL_LIMIT).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        reply.ok("remove")?;
        Ok(true)
    }

    /// The last `lines` lines of stdout and stderr, as text.
    pub async fn logs(&self, id: &str, lines: u32) -> Result<String, ApiError> {
        let path = self
            .versioned(&format!(
                "/containers/{}/logs?stdout=true&stderr=true&tail={lines}",
                encode(id)
            ))
            .await?;
        let reply = self
            .send(Method::GET, &path, None, CALL_LIMIT)
            .await?
            .ok("logs")?;
        Ok(demultiplex(&reply.body))
    }

    /// One request on a new connection, under `limit`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
        limit: Duration,
    ) -> Result<Reply, ApiError> {
        let call = format!("{method} {}", path.split('?').next().unwrap_or(path));
        tokio::time::timeout(limit, self.exchange(method, path, body))
            .await
            .map_err(|_| {
                ApiError::local(format!(
                    "the Docker engine at {} did not answer {call} within {} s",
                    self.socket.display(),
                    limit.as_secs()
                ))
            })?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<Reply, ApiError> {
        let failed = |what: &str, error: &dyn std::fmt::Display| {
            ApiError::local(format!(
                "Docker engine at {}: {what}: {error}",
                self.socket.display()
            ))
        };
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| failed("cannot connect", &e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed("handshake", &e))?;
        // Drives the connection; stopped when this call ends, however it ends.
        let _driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "docker");
        let bytes = match body {
            Some(body) => {
                request = request.header(hyper::header::CONTENT_TYPE, body.content_type);
                body.bytes
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .map_err(|e| failed("request", &e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed(path, &e))?;
        let status = response.status();
        let api_version = response
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(path, &e))?
            .to_bytes();
        Ok(Reply {
            status,
            api_version,
            body,
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Body {
    content_type: &'static str,
    bytes: Bytes,
}

impl Body {
    fn json(value: &Value) -> Self {
        Self {
            content_type: "application/json",
            bytes: value.to_string().into(),
        }
    }
}

struct Reply {
    status: StatusCode,
    api_version: Option<String>,
    body: Bytes,
}

impl Reply {
    /// The reply if it is a success, else the engine's message (`{"message": ...}`).
    fn ok(self, call: &str) -> Result<Self, ApiError> {
        if self.status.is_success() {
            return Ok(self);
        }
        let message = serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_owned());
        Err(ApiError {
            status: Some(self.status.as_u16()),
            message: format!("Docker API {call}: {message}"),
        })
    }

    fn json(self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::local(format!(
                "the Docker engine answered something that is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            ))
        })
    }
}

/// A path segment or query value, percent-encoded.
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `redis:7-alpine` → (`redis`, `7-alpine`); `host:5000/a/b` → (`host:5000/a/b`, none: the
/// engine's default, `latest`); a digest stays in the name.
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

/// A container's log stream as text. Without a TTY the engine multiplexes stdout and stderr
/// in frames: one byte for the stream (0, 1 or 2), three zero bytes, a big-endian length, then
/// that many bytes. Anything else is taken as plain text (a TTY container).
pub fn demultiplex(stream: &[u8]) -> String {
    let mut text = Vec::with_capacity(stream.len());
    let mut rest = stream;
    while !rest.is_empty() {
        let framed = rest.len() >= 8 && rest[0] <= 2 && rest[1..4] == [0, 0, 0];
        if !framed {
            return String::from_utf8_lossy(stream).into_owned();
        }
        let size = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + size).min(rest.len());
        text.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    String::from_utf8_lossy(&text).into_owned()
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
    fn multiplexed_logs_are_joined_and_plain_text_is_kept() {
        let mut stream = vec![1, 0, 0, 0, 0, 0, 0, 6];
        stream.extend_from_slice(b"hello\n");
        stream.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        stream.extend_from_slice(b"err\n");
        assert_eq!(demultiplex(&stream), "hello\nerr\n");
        assert_eq!(demultiplex(b"plain text\n"), "plain text\n");
        // A frame cut short keeps what arrived.
        assert_eq!(demultiplex(&[1, 0, 0, 0, 0, 0, 0, 9, b'a']), "a");
    }
}
