//! Which databases are watched: the enabled ones in knowledge, re-read every `SYNC_INTERVAL`.
//! Each database gets its own task, pool and window, so a slow or unreachable one never delays
//! another; a changed connection string restarts its task; a removed database stops it. What is
//! server-wide is read once per server for all its databases (`pg_stats::ServerWide`).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lifecycle::Shutdown;
use proto::clients::Knowledge;
use proto::knowledge::ListDatabasesRequest;
use proto::status::DatabaseStatus;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::lease::{Lease, Turn};
use crate::metrics::CollectorMetrics;
use crate::outputs::{HealthReport, Outputs};
use crate::pg_stats::ServerWide;
use crate::{cycle, pg_stats};

/// Our sessions on a monitored database carry this name; the executor never touches them.
pub const APPLICATION_NAME: &str = "startupmonkey-collector";
/// Connections per monitored database.
const POOL_SIZE: u32 = 2;
/// Longest a database's pool may take to close when its task stops.
const POOL_CLOSE_DEADLINE: Duration = Duration::from_secs(2);

/// What the health endpoint shows per database.
#[derive(Debug, Clone, Default)]
pub struct Status(Arc<RwLock<BTreeMap<String, Value>>>);

impl Status {
    fn set(&self, id: &str, value: Value) {
        if let Ok(mut map) = self.0.write() {
            map.insert(id.to_owned(), value);
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut map) = self.0.write() {
            map.remove(id);
        }
    }

    pub fn to_json(&self) -> Value {
        self.0.read().map(|map| json!(*map)).unwrap_or(Value::Null)
    }
}

struct Watched {
    connection_string: String,
    shutdown: Shutdown,
    task: JoinHandle<()>,
}

pub struct Orchestrator {
    pub knowledge: Knowledge,
    /// This collector's name in the databases' leases.
    pub collector_id: String,
    pub outputs: Outputs,
    pub status: Status,
    pub collection_interval: Duration,
    pub sync_interval: Duration,
    pub metrics: CollectorMetrics,
    pub shutdown: Shutdown,
}

impl Orchestrator {
    pub async fn run(self) {
        let mut watched: HashMap<String, Watched> = HashMap::new();
        let server_wide = ServerWide::sharing(self.collection_interval);
        let mut sync = tokio::time::interval(self.sync_interval);
        sync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sync.tick() => self.sync(&mut watched, &server_wide).await,
                _ = self.shutdown.wait() => break,
            }
        }
        for (_, w) in watched.drain() {
            w.shutdown.trigger();
            let _ = w.task.await;
        }
    }

    async fn sync(&self, watched: &mut HashMap<String, Watched>, server_wide: &ServerWide) {
        let request = ListDatabasesRequest {
            enabled_only: true,
            include_connection_strings: true,
        };
        let databases = match self
            .knowledge
            .call("ListDatabases", |mut k| async move {
                k.list_databases(request).await
            })
            .await
        {
            Ok(reply) => reply.databases,
            Err(error) => {
                warn!(%error, "cannot list databases; keeping the current set");
                return;
            }
        };
        let wanted: HashMap<String, String> = databases
            .into_iter()
            .filter(|d| !d.connection_string.is_empty())
            .map(|d| (d.database_id, d.connection_string))
            .collect();

        let gone: Vec<String> = watched
            .iter()
            .filter(|(id, w)| wanted.get(*id) != Some(&w.connection_string))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(w) = watched.remove(&id) {
                info!(database_id = %id, "stopped watching (removed, disabled or connection string changed)");
                w.shutdown.trigger();
                let _ = w.task.await;
                self.status.remove(&id);
                self.metrics.forget(&id);
            }
        }
        for (id, connection_string) in wanted {
            if watched.contains_key(&id) {
                continue;
            }
            info!(database_id = %id, "watching");
            let shutdown = self.shutdown.child();
            let lease = Lease::new(
                self.knowledge.clone(),
                &id,
                &self.collector_id,
                self.collection_interval,
            );
            let task = tokio::spawn(watch(
                id.clone(),
                connection_string.clone(),
                self.collection_interval,
                self.outputs.clone(),
                (
                    self.status.clone(),
                    self.metrics.clone(),
                    server_wide.clone(),
                ),
                lease,
                shutdown.clone(),
            ));
            watched.insert(
                id,
                Watched {
                    connection_string,
                    shutdown,
                    task,
                },
            );
        }
    }
}

/// The options every pool on a monitored database uses: our name, and timeouts on every statement.
pub fn connect_options(connection_string: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(connection_string)?
        .application_name(APPLICATION_NAME)
        .options([
            ("statement_timeout", "5000"),
            ("lock_timeout", "1000"),
            ("idle_in_transaction_session_timeout", "10000"),
        ]))
}

fn is_local(options: &PgConnectOptions) -> bool {
    let host = options.get_host();
    host.starts_with('/') || matches!(host, "localhost" | "127.0.0.1" | "::1")
}

async fn watch(
    id: String,
    connection_string: String,
    interval: Duration,
    outputs: Outputs,
    (status, metrics, server_wide): (Status, CollectorMetrics, ServerWide),
    lease: Lease,
    shutdown: Shutdown,
) {
    let options = match connect_options(&connection_string) {
        Ok(options) => options,
        Err(error) => {
            let message = format!("invalid connection string: {}", pg_stats::describe(&error));
            warn!(database_id = %id, error = %message, "cannot watch");
            status.set(
                &id,
                json!({"status": DatabaseStatus::Unreachable, "error": message}),
            );
            outputs.report_health(unreachable(&id, message)).await;
            shutdown.wait().await;
            return;
        }
    };
    let local = is_local(&options);
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Some(Duration::from_secs(60)))
        .connect_lazy_with(options);
    let mut database = cycle::Database::sharing(server_wide);
    // Cycles completed since watching started, shown in /health beside the last one's duration,
    // so a reader polling it can tell each cycle's duration apart (the load benchmark does).
    let mut cycles: u64 = 0;
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + phase(&id, interval), interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait() => break,
        }
        if let Turn::StandBy { holder } = lease.turn().await {
            // Another collector has it; the window restarts when this one takes over.
            database.restart();
            status.set(&id, json!({"status": "standby", "collected_by": holder}));
            continue;
        }
        // A cycle in progress is abandoned on shutdown: it may be waiting on a server that
        // never answers.
        tokio::select! {
            _ = collect_once(&id, &pool, local, &mut database, &mut cycles, &outputs, (&status, &metrics)) => {}
            _ = shutdown.wait() => break,
        }
    }
    lease.release().await;
    // Closing waits for connection attempts in flight, which a hung server never finishes.
    if tokio::time::timeout(POOL_CLOSE_DEADLINE, pool.close())
        .await
        .is_err()
    {
        warn!(database_id = %id, "connections still opening at shutdown were abandoned");
    }
}

async fn collect_once(
    id: &str,
    pool: &PgPool,
    local: bool,
    database: &mut cycle::Database,
    cycles: &mut u64,
    outputs: &Outputs,
    (status, metrics): (&Status, &CollectorMetrics),
) {
    let started = Instant::now();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    match database.collect(id, pool, local, now, started).await {
        Ok((sample, snap)) => {
            let errors: Vec<String> = sample
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.what, e.error))
                .collect();
            *cycles += 1;
            let state = if errors.is_empty() {
                DatabaseStatus::Healthy
            } else {
                DatabaseStatus::Degraded
            };
            status.set(
                id,
                json!({
                    "status": state,
                    "cycle_ms": started.elapsed().as_millis() as u64,
                    "cycles": *cycles,
                    "unavailable": sample.capabilities.unavailable.iter()
                        .map(|u| json!({"name": u.name, "reason": u.reason, "remedy": u.remedy}))
                        .collect::<Vec<_>>(),
                    "errors": errors,
                }),
            );
            let report = HealthReport {
                database_id: id.to_owned(),
                status: state,
                health_score: snap.health_score,
                version: sample.server_version.clone(),
                features: Some(sample.capabilities.clone()),
                last_error: errors.join("; "),
            };
            let bytes = outputs.publish(snap, &mut database.sent).await;
            metrics.collected(id, started.elapsed().as_secs_f64(), bytes);
            outputs.report_health(report).await;
        }
        Err(error) => {
            let message = error.to_string();
            warn!(database_id = %id, error = %message, "database unreachable");
            metrics.unreachable(id);
            status.set(
                id,
                json!({"status": DatabaseStatus::Unreachable, "error": message}),
            );
            outputs.report_health(unreachable(id, message)).await;
        }
    }
}

/// Where in the interval a database's cycles fall, from its id: spread evenly over the interval,
/// so a thousand databases registered at once do not all start their cycles (and connect) on
/// the same tick, and the same database keeps its place across restarts.
fn phase(id: &str, interval: Duration) -> Duration {
    let nanos = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_nanos(proto::sql::fnv1a(id) % nanos)
}

fn unreachable(id: &str, message: String) -> HealthReport {
    HealthReport {
        database_id: id.to_owned(),
        status: DatabaseStatus::Unreachable,
        health_score: 0.0,
        version: String::new(),
        features: None,
        last_error: message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_databases_start_their_cycles_spread_over_the_interval() {
        let interval = Duration::from_secs(10);
        let mut per_second = [0usize; 10];
        for k in 0..1000 {
            let phase = phase(&format!("db{k:03}"), interval);
            assert!(phase < interval);
            per_second[phase.as_secs() as usize] += 1;
        }
        // Evenly spread would be 100 in each second of the interval.
        assert!(
            per_second.iter().all(|n| (60..=140).contains(n)),
            "{per_second:?}"
        );
        // The same database keeps its place.
        assert_eq!(phase("shop", interval), phase("shop", interval));
    }
}
