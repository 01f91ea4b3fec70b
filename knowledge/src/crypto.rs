//! Connection strings at rest: XChaCha20-Poly1305 with a random nonce per value and the database
//! id as associated data, so a ciphertext cannot be moved to another database's record.
//!
//! The key comes from `KNOWLEDGE_SECRET_KEY` (32 bytes as base64 or 64 hex characters) or from a
//! key file generated on first start with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use tracing::warn;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid KNOWLEDGE_SECRET_KEY: expected 32 bytes as base64 or 64 hex characters")]
    BadKey,
    #[error("invalid key file {path}: expected 32 bytes as base64")]
    BadKeyFile { path: String },
    #[error("key file {path} is readable by other users (mode {mode:o}); run chmod 600 {path}")]
    ExposedKeyFile { path: String, mode: u32 },
    #[error("cannot use key file {path}: {source}")]
    KeyFileIo {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "cannot decrypt the connection string of database {database_id}: it was stored with \
         another key (check KNOWLEDGE_SECRET_KEY / KNOWLEDGE_KEY_FILE)"
    )]
    Decrypt { database_id: String },
    #[error("encryption failed")]
    Encrypt,
}

/// Encrypts and decrypts connection strings.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key redacted>)")
    }
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// The key from `secret_key` if given, else from `key_file`, generating it on first start.
    pub fn load(secret_key: Option<&str>, key_file: &Path) -> Result<Self, CryptoError> {
        if let Some(encoded) = secret_key {
            return decode_key(encoded)
                .map(Self::from_key)
                .ok_or(CryptoError::BadKey);
        }
        let path = key_file.display().to_string();
        let io = |source| CryptoError::KeyFileIo {
            path: path.clone(),
            source,
        };
        match fs::metadata(key_file) {
            Ok(metadata) => {
                let mode = metadata.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(CryptoError::ExposedKeyFile { path, mode });
                }
                let text = fs::read_to_string(key_file).map_err(io)?;
                decode_key(&text)
                    .map(Self::from_key)
                    .ok_or(CryptoError::BadKeyFile { path })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(dir).map_err(io)?;
                }
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(key_file)
                    .map_err(io)?;
                writeln!(file, "{}", BASE64.encode(key)).map_err(io)?;
                warn!(
                    key_file = %path,
                    "generated a new encryption key for connection strings; back it up: \
                     without it registered connection strings cannot be read"
                );
                Ok(Self {
                    cipher: XChaCha20Poly1305::new(&key),
                })
            }
            Err(error) => Err(io(error)),
        }
    }

    /// `v1:` + base64(nonce ‖ ciphertext).
    pub fn seal(&self, database_id: &str, plaintext: &str) -> Result<String, CryptoError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &associated_data(database_id),
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{PREFIX}{}", BASE64.encode(sealed)))
    }

    pub fn open(&self, database_id: &str, sealed: &str) -> Result<String, CryptoError> {
        let failed = || CryptoError::Decrypt {
            database_id: database_id.to_owned(),
        };
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| BASE64.decode(b).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(failed)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &associated_data(database_id),
                },
            )
            .map_err(|_| failed())?;
        String::from_utf8(plaintext).map_err(|_| failed())
    }
}

fn associated_data(database_id: &str) -> Vec<u8> {
    format!("startupmonkey:database:{database_id}").into_bytes()
}

fn decode_key(encoded: &str) -> Option<[u8; 32]> {
    let encoded = encoded.trim();
    let bytes = if encoded.len() == 64 && encoded.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&encoded[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        BASE64.decode(encoded).ok()?
    };
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_box() -> SecretBox {
        SecretBox::from_key([7; 32])
    }

    #[test]
    fn sealed_value_opens_only_for_its_database() {
        let sealed = secret_box().seal("db1", "postgres://u:secret@h/d").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("secret"));
        assert_eq!(
            secret_box().open("db1", &sealed).unwrap(),
            "postgres://u:secret@h/d"
        );
        assert!(matches!(
            secret_box().open("db2", &sealed),
            Err(CryptoError::Decrypt { .. })
        ));
        assert!(SecretBox::from_key([8; 32]).open("db1", &sealed).is_err());
    }

    #[test]
    fn the_same_value_seals_differently_each_time() {
        let a = secret_box().seal("db1", "x").unwrap();
        let b = secret_box().seal("db1", "x").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn keys_are_accepted_as_base64_or_hex_and_nothing_else() {
        assert!(
            SecretBox::load(Some(&BASE64.encode([1_u8; 32])), Path::new("/nonexistent")).is_ok()
        );
        assert!(SecretBox::load(Some(&"ab".repeat(32)), Path::new("/nonexistent")).is_ok());
        assert!(matches!(
            SecretBox::load(Some("short"), Path::new("/nonexistent")),
            Err(CryptoError::BadKey)
        ));
    }

    #[test]
    fn a_generated_key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/knowledge.key");
        let first = SecretBox::load(None, &path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = first.seal("db", "value").unwrap();
        let second = SecretBox::load(None, &path).unwrap();
        assert_eq!(second.open("db", &sealed).unwrap(), "value");
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knowledge.key");
        fs::write(&path, BASE64.encode([1_u8; 32])).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = SecretBox::load(None, &path).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
    }
}
