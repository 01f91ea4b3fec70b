//! Validation of what clients register: ids, keys, vocabularies, JSON fields and connection
//! strings (parsed for host and port, redacted for display).

use crate::error::KnowledgeError;

/// Largest JSON document accepted in one field (evidence, params, result).
pub const MAX_JSON_BYTES: usize = 64 * 1024;
const MAX_KEY_BYTES: usize = 512;

/// Database ids: 1-64 of `A-Z a-z 0-9 _ - .` (they appear in keys, index names and URLs).
pub fn database_id(id: &str) -> Result<(), KnowledgeError> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(KnowledgeError::invalid(format!(
            "invalid database_id {id:?}: use 1-64 letters, digits, '_', '-' or '.'"
        )))
    }
}

/// Record ids given by clients (detections, actions): printable, no whitespace, at most 128 bytes.
pub fn record_id(field: &str, id: &str) -> Result<(), KnowledgeError> {
    if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(KnowledgeError::invalid(format!(
            "invalid {field} {id:?}: expected 1-128 printable characters without spaces"
        )))
    }
}

pub fn detection_key(key: &str) -> Result<(), KnowledgeError> {
    if key.trim().is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KnowledgeError::invalid(format!(
            "invalid detection key {key:?}: expected 1-{MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

pub fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), KnowledgeError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(KnowledgeError::invalid(format!(
            "invalid {field} {value:?}: expected one of {}",
            allowed.join(", ")
        )))
    }
}

/// `field` as a word of one of `proto::status`'s vocabularies; the error names the field, the
/// value and the choices.
pub fn word<T>(field: &str, value: &str) -> Result<T, KnowledgeError>
where
    T: std::str::FromStr<Err = proto::status::UnknownWord>,
{
    value.parse().map_err(|e: proto::status::UnknownWord| {
        KnowledgeError::invalid(format!(
            "invalid {field} {value:?}: expected one of {}",
            e.expected.join(", ")
        ))
    })
}

pub fn severity(value: &str) -> Result<(), KnowledgeError> {
    word::<proto::status::Severity>("severity", value).map(drop)
}

pub fn category(value: &str) -> Result<(), KnowledgeError> {
    word::<proto::status::Category>("category", value).map(drop)
}

/// Empty, or a JSON object of at most [`MAX_JSON_BYTES`].
pub fn json_object(field: &str, value: &str) -> Result<(), KnowledgeError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_JSON_BYTES {
        return Err(KnowledgeError::invalid(format!(
            "{field} is {} bytes; at most {MAX_JSON_BYTES} are accepted",
            value.len()
        )));
    }
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(KnowledgeError::invalid(format!(
            "{field} must be a JSON object"
        ))),
        Err(error) => Err(KnowledgeError::invalid(format!(
            "{field} is not valid JSON: {error}"
        ))),
    }
}

/// `postgres` (default) or `postgresql`: StartupMonkey watches PostgreSQL only.
pub fn database_type(value: &str) -> Result<String, KnowledgeError> {
    match value {
        "" => Ok("postgres".into()),
        "postgres" | "postgresql" => Ok(value.into()),
        other => Err(KnowledgeError::invalid(format!(
            "database_type {other:?} is not supported: StartupMonkey watches PostgreSQL \
             (use \"postgres\")"
        ))),
    }
}

/// Where a connection string points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: i32,
    pub database: String,
}

/// Parses a libpq connection string: a `postgres://` / `postgresql://` URL or `key=value` pairs.
pub fn connection_string(raw: &str) -> Result<Target, KnowledgeError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(KnowledgeError::invalid("connection_string is required"));
    }
    if raw.contains("://") {
        let url = url::Url::parse(raw).map_err(|e| {
            KnowledgeError::invalid(format!("connection_string is not a valid URL: {e}"))
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(KnowledgeError::invalid(format!(
                "connection_string scheme {:?} is not supported: use postgres://",
                url.scheme()
            )));
        }
        return Ok(Target {
            host: url.host_str().unwrap_or("localhost").to_owned(),
            port: url.port().map(i32::from).unwrap_or(5432),
            database: url.path().trim_start_matches('/').to_owned(),
        });
    }
    let pairs = key_value_pairs(raw).ok_or_else(|| {
        KnowledgeError::invalid(
            "connection_string must be a postgres:// URL or key=value pairs (host=... dbname=...)",
        )
    })?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let port = match get("port") {
        Some(port) => port.parse::<u16>().map(i32::from).map_err(|_| {
            KnowledgeError::invalid(format!("connection_string has an invalid port {port:?}"))
        })?,
        None => 5432,
    };
    Ok(Target {
        host: get("host").unwrap_or_else(|| "localhost".into()),
        port,
        database: get("dbname").unwrap_or_default(),
    })
}

/// The connection string with its password replaced by `***`, safe to show and log.
pub fn redact(raw: &str) -> String {
    let raw = raw.trim();
    if raw.contains("://") {
        return match url::Url::parse(raw) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                let sensitive: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if is_secret_parameter(&k) {
                            "***".into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                if !sensitive.is_empty() {
                    url.query_pairs_mut().clear().extend_pairs(sensitive);
                }
                url.to_string()
            }
            Err(_) => "<unparseable connection string>".into(),
        };
    }
    match key_value_pairs(raw) {
        Some(pairs) => pairs
            .into_iter()
            .map(|(k, v)| {
                if is_secret_parameter(&k) {
                    format!("{k}=***")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => "<unparseable connection string>".into(),
    }
}

fn is_secret_parameter(name: &str) -> bool {
    matches!(name, "password" | "sslpassword" | "passfile")
}

/// `key=value key='quoted value'` pairs, or `None` if the text is not of that form.
fn key_value_pairs(raw: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        pairs.push((key, value));
    }
    (!pairs.is_empty()).then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_ids_are_restricted_to_safe_characters() {
        assert!(database_id("prod_db-1.eu").is_ok());
        for bad in ["", "a b", "x;drop", "é", &"a".repeat(65)] {
            assert!(database_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn url_connection_strings_give_host_port_and_database() {
        let target =
            connection_string("postgresql://app:pw@db.internal:6543/shop?sslmode=require").unwrap();
        assert_eq!(
            target,
            Target {
                host: "db.internal".into(),
                port: 6543,
                database: "shop".into()
            }
        );
        assert_eq!(connection_string("postgres://h/d").unwrap().port, 5432);
        assert!(connection_string("mysql://h/d").is_err());
        assert!(connection_string("").is_err());
    }

    #[test]
    fn key_value_connection_strings_parse_with_quotes() {
        let target =
            connection_string("host=10.0.0.5 port=5433 dbname='my db' password='a b'").unwrap();
        assert_eq!(target.host, "10.0.0.5");
        assert_eq!(target.port, 5433);
        assert_eq!(target.database, "my db");
        assert!(connection_string("just words").is_err());
        assert!(connection_string("port=abc").is_err());
    }

    #[test]
    fn redaction_hides_every_password() {
        assert_eq!(
            redact("postgres://app:s3cret@h:5432/d"),
            "postgres://app:***@h:5432/d"
        );
        let redacted = redact("postgres://h/d?user=app&password=s3cret");
        assert!(!redacted.contains("s3cret"), "{redacted}");
        assert_eq!(
            redact("host=h password='s3 cret' dbname=d"),
            "host=h password=*** dbname=d"
        );
        assert!(!redact("garbage with s3cret").contains("s3cret"));
    }

    #[test]
    fn json_fields_must_be_objects_of_bounded_size() {
        assert!(json_object("evidence_json", "").is_ok());
        assert!(json_object("evidence_json", r#"{"a":1}"#).is_ok());
        assert!(json_object("evidence_json", "[1]").is_err());
        assert!(json_object("evidence_json", "{").is_err());
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_JSON_BYTES));
        assert!(json_object("evidence_json", &big).is_err());
    }

    #[test]
    fn only_postgres_is_accepted() {
        assert_eq!(database_type("").unwrap(), "postgres");
        assert_eq!(database_type("postgresql").unwrap(), "postgresql");
        assert!(database_type("mongodb").is_err());
    }
}
