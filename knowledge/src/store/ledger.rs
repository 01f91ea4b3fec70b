//! The ledger: one record per action with its measured before and after and verification's
//! decision. `ledger:<action id>` holds the record; `ledger:recent` orders ids by start time and
//! `ledger:state:<state>` keeps them per state (kept in step by one Lua script).

use std::sync::LazyLock;

use proto::knowledge::LedgerEntry;
use redis::AsyncCommands;

use super::{Store, now};
use crate::error::KnowledgeError;

pub const MAX_LIST: usize = 1000;

/// KEYS: ledger:<id>. ARGV: id, record JSON, state, started_at.
static SAVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local raw = redis.call('GET', KEYS[1])
if raw then
  local old = cjson.decode(raw)
  if old.state and old.state ~= ARGV[3] then
    redis.call('SREM', 'ledger:state:' .. old.state, ARGV[1])
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', 'ledger:state:' .. ARGV[3], ARGV[1])
redis.call('ZADD', 'ledger:recent', ARGV[4], ARGV[1])
return 1
"#,
    )
});

impl Store {
    /// Creates or replaces the entry of its action.
    pub async fn save_ledger_entry(&self, mut entry: LedgerEntry) -> Result<(), KnowledgeError> {
        entry.updated_at = now();
        if entry.started_at == 0 {
            entry.started_at = entry.updated_at;
        }
        SAVE.key(format!("ledger:{}", entry.action_id))
            .arg(&entry.action_id)
            .arg(super::encode(&entry)?)
            .arg(&entry.state)
            .arg(entry.started_at)
            .invoke_async::<i64>(&mut self.conn())
            .await?;
        Ok(())
    }

    pub async fn get_ledger_entry(&self, id: &str) -> Result<Option<LedgerEntry>, KnowledgeError> {
        self.get_json(&format!("ledger:{id}")).await
    }

    /// Newest first, optionally of one database and/or one state.
    pub async fn list_ledger(
        &self,
        database_id: &str,
        state: &str,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, KnowledgeError> {
        let limit = limit.clamp(1, MAX_LIST);
        let ids: Vec<String> = if state.is_empty() {
            self.conn().zrevrange("ledger:recent", 0, -1).await?
        } else {
            self.conn()
                .smembers(format!("ledger:state:{state}"))
                .await?
        };
        let keys: Vec<String> = ids.iter().map(|id| format!("ledger:{id}")).collect();
        let mut entries: Vec<LedgerEntry> = self.get_many(&keys).await?;
        entries.retain(|e| {
            (database_id.is_empty() || e.database_id == database_id)
                && (state.is_empty() || e.state == state)
        });
        entries.sort_by(|a, b| (b.started_at, &b.action_id).cmp(&(a.started_at, &a.action_id)));
        entries.truncate(limit);
        Ok(entries)
    }
}
