//! Leases: `lease:<resource>` holds the holder's id with an expiry, so one of several
//! collectors collects each database; a holder renews its lease before it runs out, and another
//! takes it over when it does (a collector that died).

use std::sync::LazyLock;

use super::Store;
use crate::error::KnowledgeError;

/// KEYS: lease:<resource>. ARGV: holder, ttl ms. Returns {granted, holder, pttl}.
static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local current = redis.call('GET', KEYS[1])
if not current or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, ARGV[1], tonumber(ARGV[2])}
end
return {0, current, redis.call('PTTL', KEYS[1])}
"#,
    )
});

/// KEYS: lease:<resource>. ARGV: holder. Deletes the lease only if `holder` has it.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// The outcome of an acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub granted: bool,
    pub holder: String,
    pub expires_in_ms: i64,
}

impl Store {
    pub async fn acquire_lease(
        &self,
        resource: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Lease, KnowledgeError> {
        let (granted, holder, expires_in_ms): (i64, String, i64) = ACQUIRE
            .key(format!("lease:{resource}"))
            .arg(holder)
            .arg(ttl_ms)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(Lease {
            granted: granted == 1,
            holder,
            expires_in_ms,
        })
    }

    pub async fn release_lease(
        &self,
        resource: &str,
        holder: &str,
    ) -> Result<bool, KnowledgeError> {
        let released: i64 = RELEASE
            .key(format!("lease:{resource}"))
            .arg(holder)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(released == 1)
    }
}
