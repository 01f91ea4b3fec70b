//! Detections: registration with deduplication by key, cool-downs, resolution.
//!
//! `detection_key:<key>` points at the active detection of that key and exists only while it is
//! active; `detection_cooldown:<key>` exists (with a TTL) while the key may not be proposed again.

use std::sync::LazyLock;

use proto::knowledge::Detection;
use proto::status::{DetectionState, Resolution};
use redis::AsyncCommands;

use super::{Store, keys, now};
use crate::error::KnowledgeError;

/// What registering a detection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    Created(String),
    /// An active detection has this key; its id.
    Duplicate(String),
    /// The key's last fix failed, was rejected or rolled back; nothing registered.
    CoolingDown {
        until: i64,
    },
}

/// What resolving a detection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveOutcome {
    Resolved,
    AlreadyResolved,
    NotFound,
}

/// KEYS: detection_key:<key>, detection_cooldown:<key>.
/// ARGV: new id, record JSON, database id, now, value.
static REGISTER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local existing = redis.call('GET', KEYS[1])
if existing then
  local raw = redis.call('GET', 'detection:' .. existing)
  if raw then
    local d = cjson.decode(raw)
    if d.state == 'active' then
      d.last_seen = tonumber(ARGV[4])
      d.value = tonumber(ARGV[5])
      d.occurrences = (tonumber(d.occurrences) or 1) + 1
      redis.call('SET', 'detection:' .. existing, cjson.encode(d))
      return {'duplicate', existing, 0}
    end
  end
  redis.call('DEL', KEYS[1])
end
local cooling = redis.call('GET', KEYS[2])
if cooling then
  return {'cooling_down', '', tonumber(cooling)}
end
if redis.call('EXISTS', 'detection:' .. ARGV[1]) == 1 then
  return {'id_taken', ARGV[1], 0}
end
redis.call('SET', 'detection:' .. ARGV[1], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', 'detections:active:' .. ARGV[3], ARGV[1])
redis.call('SADD', 'detections:active', ARGV[1])
redis.call('INCR', 'stats:detections_total')
return {'created', ARGV[1], 0}
"#,
    )
});

/// KEYS: detection:<id>. ARGV: id, resolution, solution, now, retention seconds,
/// cool-down seconds, cool-down until.
static RESOLVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local raw = redis.call('GET', KEYS[1])
if not raw then return -1 end
local d = cjson.decode(raw)
if d.state ~= 'active' then return 0 end
d.state = 'resolved'
d.resolution = ARGV[2]
d.resolved_by = ARGV[3]
d.resolved_at = tonumber(ARGV[4])
redis.call('SET', KEYS[1], cjson.encode(d), 'EX', ARGV[5])
local mapping = 'detection_key:' .. d.key
if redis.call('GET', mapping) == ARGV[1] then
  redis.call('DEL', mapping)
end
redis.call('SREM', 'detections:active:' .. d.database_id, ARGV[1])
redis.call('SREM', 'detections:active', ARGV[1])
redis.call('INCR', 'stats:detections_resolved')
if tonumber(ARGV[6]) > 0 then
  redis.call('SET', 'detection_cooldown:' .. d.key, ARGV[7], 'EX', ARGV[6])
end
return 1
"#,
    )
});

impl Store {
    /// Registers `detection` unless its key is active (returns that id) or cooling down.
    /// An empty id gets a fresh UUID; `state`, `last_seen` and `occurrences` are set here.
    pub async fn register_detection(
        &self,
        mut detection: Detection,
    ) -> Result<RegisterOutcome, KnowledgeError> {
        if detection.id.is_empty() {
            detection.id = uuid::Uuid::new_v4().to_string();
        }
        let now = now();
        if detection.created_at == 0 {
            detection.created_at = now;
        }
        detection.state = DetectionState::Active.to_string();
        detection.last_seen = now;
        detection.occurrences = 1;
        detection.action_id.clear();
        detection.resolved_by.clear();
        detection.resolution.clear();
        detection.resolved_at = 0;

        let (outcome, id, until): (String, String, i64) = REGISTER
            .key(keys::detection_key(&detection.key))
            .key(keys::detection_cooldown(&detection.key))
            .arg(&detection.id)
            .arg(super::encode(&detection)?)
            .arg(&detection.database_id)
            .arg(now)
            .arg(detection.value)
            .invoke_async(&mut self.conn())
            .await?;
        match outcome.as_str() {
            "created" => Ok(RegisterOutcome::Created(id)),
            "duplicate" => Ok(RegisterOutcome::Duplicate(id)),
            "cooling_down" => Ok(RegisterOutcome::CoolingDown { until }),
            _ => Err(KnowledgeError::invalid(format!(
                "detection id {id:?} already exists; leave id empty to get a fresh one"
            ))),
        }
    }

    /// The active detection id for `key`, and the end of its cool-down if it is cooling down.
    pub async fn detection_state_for_key(
        &self,
        key: &str,
    ) -> Result<(Option<String>, Option<i64>), KnowledgeError> {
        let mut conn = self.conn();
        let (id, cooldown): (Option<String>, Option<i64>) = redis::pipe()
            .get(keys::detection_key(key))
            .get(keys::detection_cooldown(key))
            .query_async(&mut conn)
            .await?;
        let active = match id {
            Some(id) => self
                .get_detection(&id)
                .await?
                .filter(|d| d.state == DetectionState::Active.as_str())
                .map(|d| d.id),
            None => None,
        };
        Ok((active, cooldown))
    }

    pub async fn get_detection(&self, id: &str) -> Result<Option<Detection>, KnowledgeError> {
        self.get_json(&keys::detection(id)).await
    }

    /// Active detections of one database, or of all when `database_id` is empty; oldest first.
    pub async fn active_detections(
        &self,
        database_id: &str,
    ) -> Result<Vec<Detection>, KnowledgeError> {
        let set = if database_id.is_empty() {
            keys::DETECTIONS_ACTIVE_ALL.to_owned()
        } else {
            keys::detections_active(database_id)
        };
        let ids: Vec<String> = self.conn().smembers(&set).await?;
        let record_keys: Vec<String> = ids.iter().map(|id| keys::detection(id)).collect();
        let mut detections: Vec<Detection> = self.get_many(&record_keys).await?;
        detections.retain(|d| d.state == DetectionState::Active.as_str());
        detections.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(detections)
    }

    /// Resolves a detection; failure-like resolutions start the key's cool-down
    /// (`cooldown_override` seconds, or the configured cool-down when 0).
    pub async fn resolve_detection(
        &self,
        id: &str,
        resolution: Resolution,
        solution: &str,
        cooldown_override: i64,
    ) -> Result<ResolveOutcome, KnowledgeError> {
        let cooldown = if !resolution.starts_cooldown() {
            0
        } else if cooldown_override > 0 {
            cooldown_override
        } else {
            self.system_config().await?.detection_cooldown_seconds
        };
        let now = now();
        let resolved: i64 = RESOLVE
            .key(keys::detection(id))
            .arg(id)
            .arg(resolution.as_str())
            .arg(solution)
            .arg(now)
            .arg(self.resolved_ttl.as_secs().max(1))
            .arg(cooldown)
            .arg(now + cooldown)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match resolved {
            1 => ResolveOutcome::Resolved,
            0 => ResolveOutcome::AlreadyResolved,
            _ => ResolveOutcome::NotFound,
        })
    }
}
