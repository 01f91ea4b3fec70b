//! One collection cycle of one database, and what it keeps from one cycle to the next: the window
//! of lifetime counters, the sizes and indexes already read, the constants learnt from samples and
//! the table list last sent to the analyser. The steps, in order: read the counters
//! (`pg_stats::collect`), window them (which chooses the tables the snapshot carries), complete
//! those tables' sizes and indexes (`pg_stats::Details`), build the snapshot. The database's size is
//! read only when it can have changed (`pg_stats::database::Size`).

use std::time::Instant;

use proto::metrics::MetricSnapshot;
use sqlx::PgPool;

use crate::constants::FixedConstants;
use crate::pg_stats::{self, CollectError, Details, Sample, ServerWide, database};
use crate::snapshot;
use crate::table_list::SentTables;
use crate::window::Window;

/// What one database's collection keeps between cycles.
#[derive(Debug, Default)]
pub struct Database {
    pub window: Window,
    pub details: Details,
    pub size: database::Size,
    pub constants: FixedConstants,
    /// Used by `Outputs::publish`: the table list the analyser was last sent.
    pub sent: SentTables,
    /// Reads of the whole server, shared with the other databases watched (`Default`: none).
    pub server_wide: ServerWide,
}

impl Database {
    /// A database whose server-wide reads are shared with the others' through `server_wide`.
    pub fn sharing(server_wide: ServerWide) -> Self {
        Self {
            server_wide,
            ..Self::default()
        }
    }

    /// Forgets everything kept between cycles but what is shared.
    pub fn restart(&mut self) {
        *self = Self::sharing(self.server_wide.clone());
    }

    /// Reads the database once and builds its snapshot, with the whole table list (the NATS
    /// payload is built from it; `SentTables` decides what the analyser gets).
    pub async fn collect(
        &mut self,
        database_id: &str,
        pool: &PgPool,
        local_host: bool,
        timestamp: i64,
        started: Instant,
    ) -> Result<(Sample, MetricSnapshot), CollectError> {
        let mut sample = pg_stats::collect(pool, local_host, &self.server_wide).await?;
        if let Some(counters) = sample.database.as_mut() {
            self.size
                .complete(pool, counters, &sample.tables, &mut sample.errors, started)
                .await;
        }
        let mut interval = self.window.advance(&sample, started);
        let indexes = self
            .details
            .complete(
                pool,
                &sample.tables,
                &mut interval.tables,
                &mut sample.errors,
                started,
            )
            .await;
        let mut snap = snapshot::build(database_id, timestamp, &sample, interval, indexes);
        if let Some(statements) = &sample.statements {
            self.constants.observe(&sample.query_samples, statements);
        }
        if let Some(detail) = snap.postgres.as_mut() {
            detail.statement_constants = self.constants.report();
        }
        Ok((sample, snap))
    }
}
