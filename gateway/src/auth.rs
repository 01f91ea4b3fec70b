//! Who may change things: one token — `GATEWAY_TOKEN`, or one generated on first start, kept in
//! `<STATE_DIR>/gateway.token` (mode 0600) and printed once. Scripts send
//! `Authorization: Bearer <token>`; the dashboard signs in with the token (`POST /auth/login`)
//! and gets an HTTP-only, same-site cookie holding a value derived from it (never the token).
//! Every request that changes anything needs one of the two, and so does the doctor (it connects
//! to a monitored database with the stored credentials); reads too with `GATEWAY_AUTH_READS=true`.

use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, header};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const COOKIE: &str = "sm_session";

/// Why there is no token to guard with.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("GATEWAY_TOKEN must be at least 16 characters")]
    TooShort,
    #[error("cannot keep the gateway token in {path}: {source}")]
    Keep {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a gateway token: /dev/urandom: {0}")]
    Random(std::io::Error),
}

pub struct Auth {
    token: String,
    session: String,
    pub reads: bool,
}

impl Auth {
    /// The configured token, or the one kept in the state directory, or a new one (returned as
    /// `Some` so the caller can print it once).
    pub fn load(
        configured: Option<String>,
        state_dir: &Path,
        reads: bool,
    ) -> Result<(Self, Option<String>), AuthError> {
        let (token, generated) = match configured {
            Some(token) => (token, None),
            None => {
                let file = state_dir.join("gateway.token");
                match std::fs::read_to_string(&file) {
                    Ok(token) if !token.trim().is_empty() => (token.trim().to_owned(), None),
                    _ => {
                        let token = random_hex(24)?;
                        std::fs::create_dir_all(state_dir).map_err(|source| AuthError::Keep {
                            path: state_dir.to_owned(),
                            source,
                        })?;
                        write_private(&file, &token)?;
                        (token.clone(), Some(token))
                    }
                }
            }
        };
        if token.len() < 16 {
            return Err(AuthError::TooShort);
        }
        let session = derive(&token, "dashboard session");
        Ok((
            Self {
                token,
                session,
                reads,
            },
            generated,
        ))
    }

    /// The cookie value a signed-in browser carries.
    pub fn session_value(&self) -> &str {
        &self.session
    }

    pub fn token_matches(&self, candidate: &str) -> bool {
        constant_time_eq(candidate.as_bytes(), self.token.as_bytes())
    }

    pub fn is_authenticated(&self, headers: &HeaderMap) -> bool {
        if let Some(bearer) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            && self.token_matches(bearer.trim())
        {
            return true;
        }
        cookie(headers, COOKIE)
            .is_some_and(|v| constant_time_eq(v.as_bytes(), self.session.as_bytes()))
    }

    /// HMAC-SHA256 of `body` with the token as key, hex: the webhook signature.
    pub fn sign(&self, body: &[u8]) -> String {
        hex(&hmac(self.token.as_bytes(), body))
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn derive(token: &str, purpose: &str) -> String {
    hex(&hmac(token.as_bytes(), purpose.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex(bytes: usize) -> Result<String, AuthError> {
    use std::io::Read;
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .map_err(AuthError::Random)?;
    Ok(hex(&buffer))
}

fn write_private(path: &Path, contents: &str) -> Result<(), AuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|source| AuthError::Keep {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_kept_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("sm-auth-{}", std::process::id()));
        let (first, shown) = Auth::load(None, &dir, false).unwrap();
        let shown = shown.expect("printed once");
        assert!(first.token_matches(&shown));
        let (second, again) = Auth::load(None, &dir, false).unwrap();
        assert!(again.is_none(), "not printed twice");
        assert!(second.token_matches(&shown));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("gateway.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        assert_ne!(second.session_value(), shown, "the cookie is not the token");
        std::fs::remove_dir_all(dir).unwrap();
        assert!(matches!(
            Auth::load(Some("short".into()), Path::new("/nonexistent"), false),
            Err(AuthError::TooShort)
        ));
    }

    #[test]
    fn bearer_or_session_cookie_authenticates() {
        let (auth, _) = Auth::load(
            Some("0123456789abcdef-token".into()),
            Path::new("/x"),
            false,
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        assert!(!auth.is_authenticated(&headers));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdef-token".parse().unwrap(),
        );
        assert!(auth.is_authenticated(&headers));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("theme=dark; {COOKIE}={}", auth.session_value())
                .parse()
                .unwrap(),
        );
        assert!(auth.is_authenticated(&headers));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("{COOKIE}=0123456789abcdef-token").parse().unwrap(),
        );
        assert!(
            !auth.is_authenticated(&headers),
            "the raw token is not a session"
        );
    }
}
