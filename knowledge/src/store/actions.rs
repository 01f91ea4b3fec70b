//! Actions: registration with the status the executor gives (idempotent per id), status updates
//! that keep the per-status sets in step, and resolution of the detection when a fix fails, is
//! rejected or is rolled back.

use std::sync::LazyLock;

use proto::knowledge::Action;
use proto::status::ActionStatus;
use redis::AsyncCommands;

use super::{Store, keys, now};
use crate::error::KnowledgeError;

/// Most actions `list_actions` returns.
pub const MAX_LIST: usize = 1000;

/// KEYS: action:<id>. ARGV: id, record JSON, database id, status, created_at, detection id.
static REGISTER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if not redis.call('SET', KEYS[1], ARGV[2], 'NX') then return 0 end
redis.call('SADD', 'actions:database:' .. ARGV[3], ARGV[1])
redis.call('SADD', 'action:status:' .. ARGV[4], ARGV[1])
redis.call('ZADD', 'actions:recent', ARGV[5], ARGV[1])
redis.call('INCR', 'stats:actions_total')
if ARGV[6] ~= '' then
  local key = 'detection:' .. ARGV[6]
  local raw = redis.call('GET', key)
  if raw then
    local d = cjson.decode(raw)
    d.action_id = ARGV[1]
    redis.call('SET', key, cjson.encode(d), 'KEEPTTL')
  end
end
return 1
"#,
    )
});

/// KEYS: action:<id>. ARGV: id, status, message, error, now, result JSON, stamp started (0/1),
/// stamp completed (0/1), expected statuses (comma-separated; empty = any). Returns
/// {0} when the action does not exist, {1, detection id} when updated, {2, current status} when
/// its status is not one of the expected.
static UPDATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local raw = redis.call('GET', KEYS[1])
if not raw then return {0} end
local a = cjson.decode(raw)
if ARGV[9] ~= '' then
  local allowed = false
  for expected in string.gmatch(ARGV[9], '[^,]+') do
    if a.status == expected then allowed = true end
  end
  if not allowed then return {2, a.status} end
end
if a.status ~= ARGV[2] then
  redis.call('SREM', 'action:status:' .. a.status, ARGV[1])
  redis.call('SADD', 'action:status:' .. ARGV[2], ARGV[1])
end
a.status = ARGV[2]
a.message = ARGV[3]
if ARGV[4] ~= '' then a.error = ARGV[4] end
if ARGV[6] ~= '' then a.result_json = ARGV[6] end
local now = tonumber(ARGV[5])
a.updated_at = now
if ARGV[7] == '1' and (tonumber(a.started_at) or 0) == 0 then a.started_at = now end
if ARGV[8] == '1' then a.completed_at = now end
redis.call('SET', KEYS[1], cjson.encode(a))
return {1, a.detection_id or ''}
"#,
    )
});

/// What a status update found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated,
    NotFound,
    /// The action's status was not one of the expected; here is what it is.
    Conflict(String),
}

/// A status change to record.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    pub status: ActionStatus,
    pub message: String,
    pub error: String,
    pub result_json: String,
    pub cooldown_seconds: i64,
    /// Only update from one of these statuses (empty: from any).
    pub expected: Vec<ActionStatus>,
}

impl Store {
    /// Stores a new action; an id that exists already is left as it is (redelivery is safe).
    /// Returns the id and whether it was new.
    pub async fn register_action(
        &self,
        mut action: Action,
    ) -> Result<(String, bool), KnowledgeError> {
        if action.id.is_empty() {
            action.id = uuid::Uuid::new_v4().to_string();
        }
        let now = now();
        if action.created_at == 0 {
            action.created_at = now;
        }
        action.updated_at = now;
        let created: i64 = REGISTER
            .key(keys::action(&action.id))
            .arg(&action.id)
            .arg(super::encode(&action)?)
            .arg(&action.database_id)
            .arg(&action.status)
            .arg(action.created_at)
            .arg(&action.detection_id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok((action.id, created == 1))
    }

    /// Records a status change, from one of `update.expected` when given. A failed, rejected or
    /// rolled-back action resolves its detection with a cool-down, so the problem is proposed
    /// again later.
    pub async fn update_action(
        &self,
        id: &str,
        update: StatusUpdate,
    ) -> Result<UpdateOutcome, KnowledgeError> {
        let stamp_started = update.status == ActionStatus::Executing;
        let stamp_completed = matches!(
            update.status,
            ActionStatus::Completed | ActionStatus::Failed | ActionStatus::Rejected
        );
        let expected: Vec<&str> = update.expected.iter().map(|s| s.as_str()).collect();
        let (code, value): (i64, Option<String>) = UPDATE
            .key(keys::action(id))
            .arg(id)
            .arg(update.status.as_str())
            .arg(&update.message)
            .arg(&update.error)
            .arg(now())
            .arg(&update.result_json)
            .arg(if stamp_started { "1" } else { "0" })
            .arg(if stamp_completed { "1" } else { "0" })
            .arg(expected.join(","))
            .invoke_async(&mut self.conn())
            .await?;
        let detection_id = match code {
            0 => return Ok(UpdateOutcome::NotFound),
            2 => return Ok(UpdateOutcome::Conflict(value.unwrap_or_default())),
            _ => value.unwrap_or_default(),
        };
        if let Some(resolution) = update.status.resolution()
            && !detection_id.is_empty()
        {
            let solution = format!("{}: {}", update.status, update.message);
            self.resolve_detection(
                &detection_id,
                resolution,
                &solution,
                update.cooldown_seconds,
            )
            .await?;
        }
        Ok(UpdateOutcome::Updated)
    }

    pub async fn get_action(&self, id: &str) -> Result<Option<Action>, KnowledgeError> {
        self.get_json(&keys::action(id)).await
    }

    /// Actions waiting to run or running (queued, pending approval, approved, executing), of one
    /// database or of all when `database_id` is empty; oldest first.
    pub async fn pending_actions(&self, database_id: &str) -> Result<Vec<Action>, KnowledgeError> {
        let sets: Vec<String> = ActionStatus::ALL
            .iter()
            .filter(|s| s.is_pending())
            .map(|s| keys::actions_with_status(s.as_str()))
            .collect();
        let ids: Vec<String> = self.conn().sunion(&sets).await?;
        let record_keys: Vec<String> = ids.iter().map(|id| keys::action(id)).collect();
        let mut actions: Vec<Action> = self.get_many(&record_keys).await?;
        actions.retain(|a| {
            (database_id.is_empty() || a.database_id == database_id)
                && a.status
                    .parse::<ActionStatus>()
                    .is_ok_and(ActionStatus::is_pending)
        });
        actions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(actions)
    }

    /// The newest actions, optionally of one database and/or one status.
    pub async fn list_actions(
        &self,
        database_id: &str,
        status: Option<ActionStatus>,
        limit: usize,
    ) -> Result<Vec<Action>, KnowledgeError> {
        let limit = limit.clamp(1, MAX_LIST);
        const PAGE: isize = 200;
        let mut conn = self.conn();
        let mut found = Vec::new();
        let mut start: isize = 0;
        loop {
            let ids: Vec<String> = conn
                .zrevrange(keys::ACTIONS_RECENT, start, start + PAGE - 1)
                .await?;
            if ids.is_empty() {
                return Ok(found);
            }
            let record_keys: Vec<String> = ids.iter().map(|id| keys::action(id)).collect();
            let page: Vec<Action> = self.get_many(&record_keys).await?;
            for action in page {
                let database_matches = database_id.is_empty() || action.database_id == database_id;
                let status_matches = status.is_none_or(|s| action.status == s.as_str());
                if database_matches && status_matches {
                    found.push(action);
                    if found.len() == limit {
                        return Ok(found);
                    }
                }
            }
            start += PAGE;
        }
    }
}
