//! What the databases of one server share, read once for all of them: its sessions
//! (`pg_stat_activity`) and its statements (`pg_stat_statements`). Both views are server-wide;
//! read by each database's cycle they cost O(databases²) (at 400 databases, 806 sessions and
//! 6,000 statements, 40–60 ms of server time per cycle each, more than two cores' worth at a
//! 10 s interval). A read is shared by every database whose cycle starts while it is at most
//! `max_age` old (a database's cycle waits for a read in flight instead of starting its own),
//! so its figures are at most `max_age` older than its cycle's start: 2 % of the interval, within
//! the jitter between a cycle's start and its later queries.
//!
//! A server is known by what it says of itself (role, address, port, start time), not by the
//! connection string: two databases behind one pooler can live on different servers, and one
//! server can be reached under several names. The statement texts of a sessions read carry
//! literal values; they are kept only as long as the read is shared, then dropped.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::activity::{self, ServerSessions};
use super::statements::{self, ServerStatements};

/// A read is shared for this share of the collection interval.
pub const SHARE_OF_INTERVAL: u32 = 50;
/// A server no database has asked about for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(120);

/// Each server by identity, with when a database last asked about it.
type Servers = HashMap<String, (Instant, Arc<Server>)>;

/// The servers of every watched database. `Default` shares nothing: each cycle reads for itself.
#[derive(Debug, Clone, Default)]
pub struct ServerWide {
    max_age: Duration,
    servers: Arc<Mutex<Servers>>,
}

/// One server's latest reads.
#[derive(Debug, Default)]
pub struct Server {
    sessions: tokio::sync::Mutex<Option<(Instant, Arc<ServerSessions>)>>,
    statements: tokio::sync::Mutex<Option<(Instant, Arc<ServerStatements>)>>,
}

impl ServerWide {
    /// Reads shared for `interval / SHARE_OF_INTERVAL`.
    pub fn sharing(interval: Duration) -> Self {
        Self {
            max_age: interval / SHARE_OF_INTERVAL,
            servers: Arc::default(),
        }
    }

    /// The server that calls itself `identity` (`settings::Version::server_identity`).
    pub fn server(&self, identity: &str) -> Arc<Server> {
        let now = Instant::now();
        let Ok(mut servers) = self.servers.lock() else {
            return Arc::default();
        };
        servers.retain(|_, (used, _)| now.duration_since(*used) < FORGET_AFTER);
        let (used, server) = servers
            .entry(identity.to_owned())
            .or_insert_with(|| (now, Arc::default()));
        *used = now;
        server.clone()
    }

    pub async fn sessions(
        &self,
        server: &Server,
        pool: &PgPool,
        server_version_num: i32,
    ) -> Result<Arc<ServerSessions>, sqlx::Error> {
        shared(&server.sessions, self.max_age, || {
            activity::read(pool, server_version_num)
        })
        .await
    }

    pub async fn statements(
        &self,
        server: &Server,
        pool: &PgPool,
        server_version_num: i32,
    ) -> Result<Arc<ServerStatements>, sqlx::Error> {
        shared(&server.statements, self.max_age, || {
            statements::read(pool, server_version_num)
        })
        .await
    }
}

/// The latest read while it is younger than `max_age`, else a new one (timed from its start).
/// The lock is held across the read, so cycles that start meanwhile wait for it and share it.
async fn shared<T, F, R>(
    slot: &tokio::sync::Mutex<Option<(Instant, Arc<T>)>>,
    max_age: Duration,
    read: F,
) -> Result<Arc<T>, sqlx::Error>
where
    F: FnOnce() -> R,
    R: Future<Output = Result<T, sqlx::Error>>,
{
    let mut latest = slot.lock().await;
    if let Some((at, value)) = latest.as_ref()
        && at.elapsed() < max_age
    {
        return Ok(value.clone());
    }
    let started = Instant::now();
    // A failed read is not shared: the next cycle tries again.
    *latest = None;
    let value = Arc::new(read().await?);
    *latest = Some((started, value.clone()));
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_read_is_shared_while_young_and_not_at_all_by_default() {
        let reads = AtomicUsize::new(0);
        let read = || async { Ok::<_, sqlx::Error>(reads.fetch_add(1, Ordering::SeqCst)) };
        let slot = tokio::sync::Mutex::new(None);
        let long = Duration::from_secs(60);
        assert_eq!(*shared(&slot, long, read).await.unwrap(), 0);
        assert_eq!(*shared(&slot, long, read).await.unwrap(), 0, "shared");
        assert_eq!(*shared(&slot, Duration::ZERO, read).await.unwrap(), 1);
        assert_eq!(*shared(&slot, Duration::ZERO, read).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_failed_read_is_not_shared() {
        let slot = tokio::sync::Mutex::new(Some((Instant::now(), Arc::new(7))));
        let failing = || async { Err::<i32, _>(sqlx::Error::PoolTimedOut) };
        assert!(shared(&slot, Duration::ZERO, failing).await.is_err());
        let ok = || async { Ok::<_, sqlx::Error>(8) };
        assert_eq!(
            *shared(&slot, Duration::from_secs(60), ok).await.unwrap(),
            8
        );
    }

    #[tokio::test]
    async fn cycles_that_start_during_a_read_wait_for_it_and_share_it() {
        let reads = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(tokio::sync::Mutex::new(None));
        let cycles: Vec<_> = (0..10)
            .map(|_| {
                let (reads, slot) = (reads.clone(), slot.clone());
                tokio::spawn(async move {
                    let read = || async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, sqlx::Error>(reads.fetch_add(1, Ordering::SeqCst))
                    };
                    *shared(&slot, Duration::from_secs(1), read).await.unwrap()
                })
            })
            .collect();
        for cycle in cycles {
            assert_eq!(cycle.await.unwrap(), 0);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_server_is_known_by_its_identity() {
        let wide = ServerWide::sharing(Duration::from_secs(10));
        let a = wide.server("app@10.0.0.1:5432 started 1");
        assert!(Arc::ptr_eq(&a, &wide.server("app@10.0.0.1:5432 started 1")));
        assert!(!Arc::ptr_eq(
            &a,
            &wide.server("app@10.0.0.2:5432 started 1")
        ));
        assert_eq!(wide.max_age, Duration::from_millis(200));
    }
}
