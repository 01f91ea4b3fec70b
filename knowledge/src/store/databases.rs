//! The database registry. `database:<id>` holds what the user registered (the connection string
//! encrypted); `database:<id>:health` holds what the collector reports, so the two writers never
//! overwrite each other's fields.

use std::collections::HashMap;

use proto::knowledge::DatabaseFeatures;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{Store, keys, now};
use crate::error::KnowledgeError;
use crate::records;

/// What the user registered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseRecord {
    pub id: String,
    pub database_type: String,
    pub database_name: String,
    pub host: String,
    pub port: i32,
    pub version: String,
    pub registered_at: i64,
    pub metadata: HashMap<String, String>,
    pub enabled: bool,
    /// `v1:` + base64(nonce ‖ ciphertext); see `crypto`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub connection_string_enc: String,
    /// Plaintext as the original wrote it: read, and encrypted on the next write.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub connection_string: String,
}

/// What the collector last reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthRecord {
    pub last_seen: i64,
    /// `unknown` until the collector reports, then `healthy` | `degraded` | `unreachable`
    /// (`offline` is accepted as the original's word for unreachable).
    pub status: String,
    pub health_score: f64,
    pub version: String,
    pub features: Option<DatabaseFeatures>,
    pub last_error: String,
}

impl HealthRecord {
    fn unknown() -> Self {
        Self {
            status: proto::status::DatabaseStatus::Unknown.to_string(),
            ..Default::default()
        }
    }
}

/// A field change for `update_database`; `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct DatabaseChange {
    pub connection_string: Option<String>,
    pub database_name: Option<String>,
    pub enabled: Option<bool>,
}

impl Store {
    /// Registers (or re-registers) a database. The connection string is validated and stored
    /// encrypted; host and port are taken from it when not given. Returns true when it was new.
    pub async fn register_database(
        &self,
        mut record: DatabaseRecord,
        connection_string: &str,
    ) -> Result<bool, KnowledgeError> {
        records::database_id(&record.id)?;
        record.database_type = records::database_type(&record.database_type)?;
        let target = records::connection_string(connection_string)?;
        if record.host.is_empty() {
            record.host = target.host;
        }
        if record.port == 0 {
            record.port = target.port;
        }
        if record.database_name.is_empty() {
            record.database_name = target.database;
        }
        let existing: Option<DatabaseRecord> = self.get_json(&keys::database(&record.id)).await?;
        if record.registered_at == 0 {
            record.registered_at = existing
                .as_ref()
                .map(|e| e.registered_at)
                .filter(|t| *t > 0)
                .unwrap_or_else(now);
        }
        record.connection_string_enc = self.secrets.seal(&record.id, connection_string)?;
        record.connection_string.clear();

        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(keys::database(&record.id), super::encode(&record)?)
            .sadd(keys::DATABASES_ALL, &record.id);
        if existing.is_none() {
            pipe.set(
                keys::database_health(&record.id),
                super::encode(&HealthRecord::unknown())?,
            );
        }
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(existing.is_none())
    }

    pub async fn get_database(
        &self,
        id: &str,
    ) -> Result<Option<(DatabaseRecord, HealthRecord)>, KnowledgeError> {
        let Some(record) = self.get_json::<DatabaseRecord>(&keys::database(id)).await? else {
            return Ok(None);
        };
        let health = self
            .get_json(&keys::database_health(id))
            .await?
            .unwrap_or_else(HealthRecord::unknown);
        Ok(Some((record, health)))
    }

    /// Every registered database with its health, ordered by id.
    pub async fn list_databases(
        &self,
    ) -> Result<Vec<(DatabaseRecord, HealthRecord)>, KnowledgeError> {
        let mut ids: Vec<String> = self.conn().smembers(keys::DATABASES_ALL).await?;
        ids.sort();
        let record_keys: Vec<String> = ids.iter().map(|id| keys::database(id)).collect();
        let health_keys: Vec<String> = ids.iter().map(|id| keys::database_health(id)).collect();
        let mut conn = self.conn();
        let (records, healths): (Vec<Option<String>>, Vec<Option<String>>) = if ids.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            redis::pipe()
                .cmd("MGET")
                .arg(&record_keys)
                .cmd("MGET")
                .arg(&health_keys)
                .query_async(&mut conn)
                .await?
        };
        let mut databases = Vec::with_capacity(ids.len());
        for (i, raw) in records.into_iter().enumerate() {
            let Some(raw) = raw else { continue };
            let record: DatabaseRecord = super::decode(&record_keys[i], &raw)?;
            let health = match healths.get(i).cloned().flatten() {
                Some(raw) => super::decode(&health_keys[i], &raw)?,
                None => HealthRecord::unknown(),
            };
            databases.push((record, health));
        }
        Ok(databases)
    }

    /// The plaintext connection string, for services that connect.
    pub fn connection_string(&self, record: &DatabaseRecord) -> Result<String, KnowledgeError> {
        if !record.connection_string_enc.is_empty() {
            return Ok(self
                .secrets
                .open(&record.id, &record.connection_string_enc)?);
        }
        Ok(record.connection_string.clone())
    }

    /// The connection string with its password hidden.
    pub fn redacted_connection_string(&self, record: &DatabaseRecord) -> String {
        match self.connection_string(record) {
            Ok(plain) => records::redact(&plain),
            Err(_) => "<cannot be decrypted with the current key>".into(),
        }
    }

    /// Applies the collector's report. Unset optional parts (version, features) are kept.
    /// `Ok(false)` when the database is not registered.
    pub async fn update_health(
        &self,
        id: &str,
        report: HealthRecord,
    ) -> Result<bool, KnowledgeError> {
        let exists: bool = self.conn().exists(keys::database(id)).await?;
        if !exists {
            return Ok(false);
        }
        let previous: HealthRecord = self
            .get_json(&keys::database_health(id))
            .await?
            .unwrap_or_else(HealthRecord::unknown);
        let merged = HealthRecord {
            last_seen: if report.last_seen > 0 {
                report.last_seen
            } else {
                now()
            },
            version: if report.version.is_empty() {
                previous.version
            } else {
                report.version
            },
            features: report.features.or(previous.features),
            ..report
        };
        self.set_json(&keys::database_health(id), &merged).await?;
        Ok(true)
    }

    /// Changes what the user may change. `Ok(false)` when the database is not registered.
    pub async fn update_database(
        &self,
        id: &str,
        change: DatabaseChange,
    ) -> Result<bool, KnowledgeError> {
        let Some(mut record) = self.get_json::<DatabaseRecord>(&keys::database(id)).await? else {
            return Ok(false);
        };
        let connection_string = match change.connection_string {
            Some(new) => {
                let target = records::connection_string(&new)?;
                record.host = target.host;
                record.port = target.port;
                new
            }
            None => self.connection_string(&record)?,
        };
        if let Some(name) = change.database_name {
            record.database_name = name;
        }
        if let Some(enabled) = change.enabled {
            record.enabled = enabled;
        }
        self.register_database(record, &connection_string).await?;
        Ok(true)
    }

    /// Removes a database from the registry (its history stays). `Ok(false)` when unknown.
    pub async fn unregister_database(&self, id: &str) -> Result<bool, KnowledgeError> {
        let (removed, _, _): (i64, i64, i64) = redis::pipe()
            .atomic()
            .srem(keys::DATABASES_ALL, id)
            .del(keys::database(id))
            .del(keys::database_health(id))
            .query_async(&mut self.conn())
            .await?;
        Ok(removed == 1)
    }
}
