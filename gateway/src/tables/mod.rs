//! The Tables page (`GET /databases/{id}/tables`, the handler in `api::tables`): a registered
//! database's tables read live — sizes, rows, dead rows, sequential and index scans, the last
//! (auto)vacuum and analyze, each table's indexes — and the indexes that could be dropped
//! (unused or duplicate, `redundant`), each with its exact `DROP INDEX CONCURRENTLY` and the
//! definition that rebuilds it. Nothing is run: the statements are recommendations. One
//! read-only session (`startupmonkey-gateway`, 5 s to connect and per statement, 15 s in all);
//! the statements are in `catalog`.

pub mod catalog;
pub mod redundant;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use sqlx::{Connection, PgConnection};
use utoipa::ToSchema;

use crate::dbtest::{self, ConnectError, describe};
use redundant::{IndexFacts, Usage};

/// All the reading together.
const READ_LIMIT: Duration = Duration::from_secs(15);

const APPLICATION_NAME: &str = "startupmonkey-gateway";

/// Tables per page when the caller does not say, and at most.
pub const DEFAULT_TABLES: i64 = 50;
pub const MAX_TABLES: i64 = 500;

/// Most recommendations returned (the largest indexes first); the report gives the total.
pub const MAX_RECOMMENDATIONS: usize = 100;

/// Days of counting without a scan before an index is called unused: a weekly job's index is
/// scanned within a week.
pub const UNUSED_AFTER_DAYS: f64 = 7.0;

/// Which tables, and how long a period without scans makes an index unused.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub limit: i64,
    pub offset: i64,
    pub unused_after_days: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limit: DEFAULT_TABLES,
            offset: 0,
            unused_after_days: UNUSED_AFTER_DAYS,
        }
    }
}

/// Why there is no report.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("connected, but reading the statistics failed: {0}")]
    Read(String),
}

/// What the page shows of one database.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = TablesReport)]
pub struct Report {
    pub database: String,
    /// User tables in the database; `tables` holds `limit` of them from `offset`.
    pub total_tables: i64,
    pub offset: i64,
    pub limit: i64,
    /// Largest first, by the size the last VACUUM or ANALYZE recorded.
    pub tables: Vec<Table>,
    /// Unix seconds: index scans are counted from here (the statistics' last reset, or the
    /// server's start when they were never reset).
    pub scans_counted_since: i64,
    pub scans_counted_days: f64,
    /// True when `scans_counted_since` is a reset of the statistics, false when the server's start.
    pub counted_since_reset: bool,
    /// An index without scans is called unused only when scans have been counted this long.
    pub unused_after_days: f64,
    /// The counting period in words, with what it allows to say.
    pub scan_period: String,
    /// At most 100, the largest indexes first.
    pub recommendations: Vec<Recommendation>,
    pub total_recommendations: usize,
    /// What to keep in mind before acting on a recommendation.
    pub notes: Vec<String>,
    /// Unix seconds: when the database was read.
    pub read_at: i64,
}

/// One table's statistics since they were last reset.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = TableStats)]
pub struct Table {
    pub schema: String,
    pub name: String,
    /// Table, TOAST and indexes on disk; absent when the table went away while it was read.
    pub total_bytes: Option<i64>,
    /// The table's main data alone.
    pub table_bytes: Option<i64>,
    pub indexes_bytes: Option<i64>,
    /// Estimated live rows (`n_live_tup`).
    pub live_rows: i64,
    /// Dead rows VACUUM has not yet reclaimed (`n_dead_tup`).
    pub dead_rows: i64,
    /// Dead rows per live row, the collector's bloat ratio; absent without live rows.
    pub bloat_ratio: Option<f64>,
    pub sequential_scans: i64,
    pub rows_read_sequentially: i64,
    /// Absent for a table without indexes.
    pub index_scans: Option<i64>,
    /// Unix seconds; absent when never.
    pub last_vacuum: Option<i64>,
    pub last_autovacuum: Option<i64>,
    pub last_analyze: Option<i64>,
    pub last_autoanalyze: Option<i64>,
    pub indexes: Vec<TableIndex>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TableIndex {
    pub name: String,
    /// `pg_get_indexdef`: the statement that built it.
    pub definition: String,
    pub size_bytes: i64,
    /// Scans since `scans_counted_since`.
    pub scans: i64,
    /// `used`, `unused` (no scan over at least `unused_after_days`), `too_early` (no scan, but
    /// counted for less), or `kept` (never proposed: see `kept_because`).
    pub usage: String,
    pub kept_because: Option<String>,
    /// The index whose leading keys are this one's keys.
    pub duplicate_of: Option<String>,
}

/// An index that could be dropped. Not run: dropping needs the user's approval.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = IndexRecommendation)]
pub struct Recommendation {
    pub schema: String,
    pub table: String,
    pub index: String,
    /// `unused`, `duplicate`, or both.
    pub reasons: Vec<String>,
    /// Why, in words, with the period the scans were counted over.
    pub explanation: String,
    pub duplicate_of: Option<String>,
    pub scans: i64,
    pub size_bytes: i64,
    /// `DROP INDEX CONCURRENTLY "schema"."name";`
    pub drop_statement: String,
    /// The definition saved before dropping (`pg_get_indexdef`).
    pub definition: String,
    /// The definition as a statement that rebuilds the index without blocking writes.
    pub restore_statement: String,
}

/// Connects as the connection string says and reads the page.
pub async fn examine(connection_string: &str, options: Options) -> Result<Report, TablesError> {
    let mut conn = dbtest::connect(connection_string, APPLICATION_NAME).await?;
    let report = tokio::time::timeout(READ_LIMIT, read(&mut conn, options))
        .await
        .unwrap_or_else(|_| Err(TablesError::Read("no answer within 15 s".into())));
    // Closed politely; a failure to say goodbye changes nothing in the report.
    let _ = conn.close().await;
    report
}

async fn read(conn: &mut PgConnection, options: Options) -> Result<Report, TablesError> {
    let failed = |e: sqlx::Error| TablesError::Read(describe(&e));
    let limit = options.limit.clamp(1, MAX_TABLES);
    let offset = options.offset.max(0);
    let context = catalog::context(conn).await.map_err(failed)?;
    let total_tables = catalog::table_count(conn).await.map_err(failed)?;
    let rows = catalog::tables(conn, limit, offset).await.map_err(failed)?;
    let facts = catalog::index_facts(conn).await.map_err(failed)?;

    let judged = judge(&facts, &context, options.unused_after_days);
    let page_tables: HashSet<i64> = rows.iter().map(|t| t.oid).collect();
    let mut recommended: Vec<&Judged> = judged.iter().filter(|j| j.recommended()).collect();
    let wanted: Vec<i64> = facts
        .iter()
        .filter(|f| page_tables.contains(&f.table_oid))
        .map(|f| f.index_oid)
        .chain(recommended.iter().map(|j| j.facts.index_oid))
        .collect();
    let details = catalog::index_details(conn, &wanted)
        .await
        .map_err(failed)?;
    let size_of = |oid: i64| details.get(&oid).map_or(0, |d| d.size_bytes);
    recommended.sort_by_key(|j| (-size_of(j.facts.index_oid), j.facts.name.clone()));
    let total_recommendations = recommended.len();

    let mut by_table: HashMap<i64, Vec<TableIndex>> = HashMap::new();
    for j in judged
        .iter()
        .filter(|j| page_tables.contains(&j.facts.table_oid))
    {
        let Some(detail) = details.get(&j.facts.index_oid) else {
            continue;
        };
        by_table
            .entry(j.facts.table_oid)
            .or_default()
            .push(TableIndex {
                name: j.facts.name.clone(),
                definition: detail.definition.clone(),
                size_bytes: detail.size_bytes,
                scans: j.facts.scans,
                usage: match j.facts.kept_because() {
                    Some(_) => "kept".into(),
                    None => j.usage.word().into(),
                },
                kept_because: j.facts.kept_because().map(|k| k.describe().to_owned()),
                duplicate_of: j.duplicate_of.clone(),
            });
    }
    let tables = rows
        .into_iter()
        .map(|t| {
            let mut indexes = by_table.remove(&t.oid).unwrap_or_default();
            indexes.sort_by(|a, b| a.name.cmp(&b.name));
            Table {
                bloat_ratio: (t.live_rows > 0).then(|| t.dead_rows as f64 / t.live_rows as f64),
                schema: t.schema,
                name: t.name,
                total_bytes: t.total_bytes,
                table_bytes: t.table_bytes,
                indexes_bytes: t.indexes_bytes,
                live_rows: t.live_rows,
                dead_rows: t.dead_rows,
                sequential_scans: t.sequential_scans,
                rows_read_sequentially: t.rows_read_sequentially,
                index_scans: t.index_scans,
                last_vacuum: t.last_vacuum,
                last_autovacuum: t.last_autovacuum,
                last_analyze: t.last_analyze,
                last_autoanalyze: t.last_autoanalyze,
                indexes,
            }
        })
        .collect();
    let recommendations = recommended
        .into_iter()
        .take(MAX_RECOMMENDATIONS)
        .filter_map(|j| {
            let detail = details.get(&j.facts.index_oid)?;
            Some(j.recommendation(detail, &context))
        })
        .collect();

    let mut notes = vec![
        "Scans are counted on this server only: an index that queries on a replica use looks \
         unused here. Check the replicas before dropping."
            .to_owned(),
        "An index built after the counting began has had less time to be scanned than the period \
         says."
            .to_owned(),
    ];
    if context.in_recovery {
        notes.insert(
            0,
            "This server is a standby: its scans are not the primary's and no index can be dropped \
             here, so nothing is recommended. Register the primary to see its recommendations."
                .to_owned(),
        );
    }
    if facts.len() as i64 >= catalog::MAX_INDEXES_COMPARED {
        notes.push(format!(
            "Only the first {} indexes (the oldest) were compared.",
            catalog::MAX_INDEXES_COMPARED
        ));
    }
    Ok(Report {
        database: context.database.clone(),
        total_tables,
        offset,
        limit,
        tables,
        scans_counted_since: context.period.since,
        scans_counted_days: context.period.days(),
        counted_since_reset: context.since_reset,
        unused_after_days: options.unused_after_days,
        scan_period: scan_period(&context, options.unused_after_days),
        recommendations,
        total_recommendations,
        notes,
        read_at: context.period.now,
    })
}

/// One index with what the page says of it.
struct Judged<'a> {
    facts: &'a IndexFacts,
    usage: Usage,
    duplicate_of: Option<String>,
    /// Recommendations are made on a primary only.
    on_primary: bool,
}

impl Judged<'_> {
    fn recommended(&self) -> bool {
        self.on_primary
            && self.facts.kept_because().is_none()
            && (self.usage == Usage::Unused || self.duplicate_of.is_some())
    }

    fn recommendation(
        &self,
        detail: &catalog::IndexDetail,
        context: &catalog::Context,
    ) -> Recommendation {
        let mut reasons = Vec::new();
        let mut explanation = Vec::new();
        let since = format!(
            "{} ({})",
            day(context.period.since),
            days(context.period.days())
        );
        if self.usage == Usage::Unused {
            reasons.push("unused".to_owned());
            explanation.push(format!("no scans since {since}"));
        }
        if let Some(other) = &self.duplicate_of {
            reasons.push("duplicate".to_owned());
            explanation.push(format!(
                "its keys are the leading keys of {other} (same method, same predicate), which \
                 serves the same lookups"
            ));
            if self.usage != Usage::Unused {
                explanation.push(format!("{} scans since {since}", self.facts.scans));
            }
        }
        let mut explanation = explanation.join("; ");
        if let Some(first) = explanation.get(..1) {
            explanation = first.to_uppercase() + &explanation[1..];
        }
        Recommendation {
            schema: self.facts.schema.clone(),
            table: self.facts.table.clone(),
            index: self.facts.name.clone(),
            reasons,
            explanation,
            duplicate_of: self.duplicate_of.clone(),
            scans: self.facts.scans,
            size_bytes: detail.size_bytes,
            drop_statement: self.facts.drop_statement(),
            definition: detail.definition.clone(),
            restore_statement: redundant::restore_statement(&detail.definition),
        }
    }
}

fn judge<'a>(
    facts: &'a [IndexFacts],
    context: &catalog::Context,
    unused_after_days: f64,
) -> Vec<Judged<'a>> {
    // Duplicates are looked for among the indexes of the same table only.
    let mut by_table: HashMap<i64, Vec<IndexFacts>> = HashMap::new();
    for f in facts {
        by_table.entry(f.table_oid).or_default().push(f.clone());
    }
    facts
        .iter()
        .map(|f| Judged {
            facts: f,
            usage: redundant::usage(f.scans, context.period, unused_after_days),
            duplicate_of: redundant::duplicate_of(f, &by_table[&f.table_oid])
                .map(|d| d.name.clone()),
            on_primary: !context.in_recovery,
        })
        .collect()
}

/// "2025-05-01".
fn day(unix: i64) -> String {
    proto::events::rfc3339(unix).chars().take(10).collect()
}

/// "12 days", "1 day", "5 hours", "less than an hour".
fn days(days: f64) -> String {
    if days * 24.0 < 1.0 {
        "less than an hour".to_owned()
    } else if days >= 1.0 {
        let whole = days.floor() as i64;
        format!("{whole} day{}", if whole == 1 { "" } else { "s" })
    } else {
        let hours = (days * 24.0).floor() as i64;
        format!("{hours} hour{}", if hours == 1 { "" } else { "s" })
    }
}

fn scan_period(context: &catalog::Context, unused_after_days: f64) -> String {
    let start = if context.since_reset {
        "the statistics were last reset"
    } else {
        "the server started (the statistics were never reset)"
    };
    let counted = format!(
        "Index scans have been counted since {}, when {start}: {}.",
        day(context.period.since),
        days(context.period.days())
    );
    if context.period.days() >= unused_after_days {
        format!(
            "{counted} An index without a scan in that time is called unused (the minimum is {} days).",
            unused_after_days
        )
    } else {
        format!(
            "{counted} Too early to call an index unused: that needs {} days of counting, so no \
             index is called unused before {}.",
            unused_after_days,
            day(context.period.since + (unused_after_days * 86_400.0) as i64)
        )
    }
}
