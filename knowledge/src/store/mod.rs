//! The Redis key layout and every read and write of it (docs/ARCHITECTURE.md lists the keys).
//!
//! Multi-key changes run as Lua scripts, so each is atomic: a detection cannot be resolved and
//! re-activated at the same time, an action's status sets never disagree with its record.
//! Records are JSON of the protobuf messages (as the original stored `config:system`).

pub mod actions;
mod databases;
mod detections;
mod leases;
pub mod ledger;
mod system;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::status::ExecutionMode;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use databases::{DatabaseChange, DatabaseRecord, HealthRecord};
pub use detections::{RegisterOutcome, ResolveOutcome};

use crate::crypto::SecretBox;
use crate::error::KnowledgeError;

/// Key names, in one place.
pub mod keys {
    pub fn database(id: &str) -> String {
        format!("database:{id}")
    }
    pub fn database_health(id: &str) -> String {
        format!("database:{id}:health")
    }
    pub const DATABASES_ALL: &str = "databases:all";

    pub fn detection(id: &str) -> String {
        format!("detection:{id}")
    }
    pub fn detection_key(key: &str) -> String {
        format!("detection_key:{key}")
    }
    pub fn detection_cooldown(key: &str) -> String {
        format!("detection_cooldown:{key}")
    }
    pub fn detections_active(database_id: &str) -> String {
        format!("detections:active:{database_id}")
    }
    pub const DETECTIONS_ACTIVE_ALL: &str = "detections:active";

    pub fn action(id: &str) -> String {
        format!("action:{id}")
    }
    pub fn actions_of_database(database_id: &str) -> String {
        format!("actions:database:{database_id}")
    }
    pub fn actions_with_status(status: &str) -> String {
        format!("action:status:{status}")
    }
    pub const ACTIONS_RECENT: &str = "actions:recent";

    pub const CONFIG: &str = "config:system";

    pub const STATS_DETECTIONS_TOTAL: &str = "stats:detections_total";
    pub const STATS_DETECTIONS_RESOLVED: &str = "stats:detections_resolved";
    pub const STATS_ACTIONS_TOTAL: &str = "stats:actions_total";

    /// History: everything but the registry and the configuration.
    pub const HISTORY_PATTERNS: &[&str] = &[
        "detection:*",
        "detection_key:*",
        "detection_cooldown:*",
        "detections:*",
        "action:*",
        "actions:*",
        "stats:*",
        "ledger:*",
    ];
    pub const REGISTRY_PATTERNS: &[&str] = &["database:*", "databases:*", "config:*"];
}

/// Redis connection settings: fail fast while Redis is down, reconnect on the next call.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
const RECONNECT_RETRIES: usize = 2;

#[derive(Clone)]
pub struct Store {
    redis: ConnectionManager,
    secrets: SecretBox,
    resolved_ttl: Duration,
    /// The execution mode in force until a configuration is saved.
    initial_mode: ExecutionMode,
    started: Instant,
}

impl Store {
    /// Connects lazily: the service starts while Redis is down and recovers when it comes back.
    pub fn new(
        redis_url: &str,
        tls: Option<redis::TlsCertificates>,
        secrets: SecretBox,
        resolved_ttl: Duration,
        initial_mode: ExecutionMode,
    ) -> Result<Self, KnowledgeError> {
        let client = match tls {
            Some(certificates) => redis::Client::build_with_tls(redis_url, certificates)?,
            None => redis::Client::open(redis_url)?,
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(Duration::from_millis(500));
        let redis = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            redis,
            secrets,
            resolved_ttl,
            initial_mode,
            started: Instant::now(),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.redis.clone()
    }

    /// PING, for health checks.
    pub async fn ping(&self) -> Result<(), KnowledgeError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KnowledgeError> {
        let raw: Option<String> = self.conn().get(key).await?;
        raw.map(|raw| decode(key, &raw)).transpose()
    }

    async fn set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), KnowledgeError> {
        let _: () = self.conn().set(key, encode(value)?).await?;
        Ok(())
    }

    /// Loads several JSON records at once; missing ones (expired, deleted) are skipped.
    async fn get_many<T: DeserializeOwned>(
        &self,
        keys: &[String],
    ) -> Result<Vec<T>, KnowledgeError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let raws: Vec<Option<String>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.conn())
            .await?;
        let mut records = Vec::with_capacity(raws.len());
        for (key, raw) in keys.iter().zip(raws) {
            if let Some(raw) = raw {
                records.push(decode(key, &raw)?);
            }
        }
        Ok(records)
    }
}

fn decode<T: DeserializeOwned>(key: &str, raw: &str) -> Result<T, KnowledgeError> {
    serde_json::from_str(raw).map_err(|e| KnowledgeError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Result<String, KnowledgeError> {
    serde_json::to_string(value).map_err(|e| KnowledgeError::Corrupt {
        key: "<new record>".into(),
        reason: e.to_string(),
    })
}

/// Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
