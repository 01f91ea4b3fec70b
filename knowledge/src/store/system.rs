//! System configuration, status, statistics and the flush of history.

use proto::knowledge::{GetSystemStatsResponse, SystemConfig, SystemStatus};
use proto::status::{ActionStatus, DatabaseStatus};
use redis::AsyncCommands;

use super::{Store, keys};
use crate::error::KnowledgeError;
use crate::system_config;

impl Store {
    /// The saved configuration with defaults filled in, or the defaults when nothing is saved.
    pub async fn system_config(&self) -> Result<SystemConfig, KnowledgeError> {
        let saved: Option<SystemConfig> = match self.get_json(keys::CONFIG).await {
            Ok(saved) => saved,
            Err(KnowledgeError::Corrupt { key, reason }) => {
                tracing::warn!(%key, %reason, "saved configuration unreadable; using defaults");
                None
            }
            Err(error) => return Err(error),
        };
        Ok(saved
            .map(system_config::effective)
            .unwrap_or_else(|| system_config::default_config(self.initial_mode)))
    }

    /// Validates and replaces the whole configuration; zero values become defaults.
    pub async fn save_system_config(&self, config: SystemConfig) -> Result<(), KnowledgeError> {
        system_config::validate(&config)?;
        self.set_json(keys::CONFIG, &system_config::effective(config))
            .await
    }

    /// Setup is done once the wizard was finished or a database is registered and enabled
    /// (`make up DATABASE_URL=…` registers one through the gateway without the wizard): the
    /// wizard is for a first run with nothing to watch.
    pub async fn system_status(&self) -> Result<SystemStatus, KnowledgeError> {
        let databases = self.list_databases().await?;
        let config = self.system_config().await?;
        let configured = databases.iter().any(|(record, _)| record.enabled);
        Ok(SystemStatus {
            configured,
            onboarding_complete: config.onboarding_complete || configured,
            service_states: Default::default(),
        })
    }

    pub async fn system_stats(&self) -> Result<GetSystemStatsResponse, KnowledgeError> {
        let databases = self.list_databases().await?;
        let count_status = |status: DatabaseStatus| {
            databases
                .iter()
                .filter(|(_, h)| h.status == status.as_str())
                .count() as i32
        };
        let mut conn = self.conn();
        let (detections_total, detections_resolved, active, actions_total): (
            Option<i64>,
            Option<i64>,
            i64,
            Option<i64>,
        ) = redis::pipe()
            .get(keys::STATS_DETECTIONS_TOTAL)
            .get(keys::STATS_DETECTIONS_RESOLVED)
            .scard(keys::DETECTIONS_ACTIVE_ALL)
            .get(keys::STATS_ACTIONS_TOTAL)
            .query_async(&mut conn)
            .await?;
        let mut counts = redis::pipe();
        for status in ActionStatus::ALL {
            counts.scard(keys::actions_with_status(status.as_str()));
        }
        let counts: Vec<i64> = counts.query_async(&mut conn).await?;
        let by_status: std::collections::HashMap<ActionStatus, i32> = ActionStatus::ALL
            .iter()
            .copied()
            .zip(counts.into_iter().map(|n| n as i32))
            .collect();
        let of = |s: ActionStatus| by_status.get(&s).copied().unwrap_or_default();
        Ok(GetSystemStatsResponse {
            total_databases: databases.len() as i32,
            healthy_databases: count_status(DatabaseStatus::Healthy),
            degraded_databases: count_status(DatabaseStatus::Degraded),
            offline_databases: count_status(DatabaseStatus::Offline)
                + count_status(DatabaseStatus::Unreachable),
            total_detections: detections_total.unwrap_or_default() as i32,
            active_detections: active as i32,
            resolved_detections: detections_resolved.unwrap_or_default() as i32,
            total_actions: actions_total.unwrap_or_default() as i32,
            actions_queued: of(ActionStatus::Queued),
            actions_executing: of(ActionStatus::Executing),
            actions_completed: of(ActionStatus::Completed),
            actions_failed: of(ActionStatus::Failed),
            uptime_seconds: self.started.elapsed().as_secs() as i64,
            actions_pending_approval: of(ActionStatus::PendingApproval),
            actions_rolled_back: of(ActionStatus::RolledBack),
            actions_rejected: of(ActionStatus::Rejected),
        })
    }

    /// Deletes detections, actions, cool-downs and counters; with `include_registry` also the
    /// database registry and the configuration. Only StartupMonkey's keys are touched (never
    /// FLUSHDB: the Redis database may be shared). Returns how many keys were deleted.
    pub async fn flush(&self, include_registry: bool) -> Result<u64, KnowledgeError> {
        let mut patterns: Vec<&str> = keys::HISTORY_PATTERNS.to_vec();
        if include_registry {
            patterns.extend_from_slice(keys::REGISTRY_PATTERNS);
        }
        let mut conn = self.conn();
        let mut deleted = 0_u64;
        for pattern in patterns {
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await?;
                if !batch.is_empty() {
                    let n: u64 = conn.unlink(&batch).await?;
                    deleted += n;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }
}
