//! `GET /queries`: the Queries page of a database — its costliest statements over a window
//! (1 h, 24 h or 7 d) from the gateway's statement history (`statements`), each with its
//! figures, its history, the tables it names, and the detections and actions that concern it
//! (from knowledge), plus every action of the database that ran in the window, for the charts'
//! markers.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use proto::error::Error;
use proto::knowledge::{Action, DatabaseFilterRequest, ListActionsRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::actions::changes;
use super::detections::parse_json;
use super::error::ErrorBody;
use super::{AppState, Reply, instant};
use crate::statements::{Figures, Window};

/// Statements listed at most.
const LIMIT: usize = 20;

#[derive(Debug, Default, Deserialize)]
pub struct QueriesQuery {
    #[serde(default)]
    pub database_id: String,
    #[serde(default)]
    pub window: String,
}

/// A database's costliest statements over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueriesReport {
    pub database_id: String,
    /// `1h`, `24h` or `7d`.
    pub window: String,
    pub window_seconds: i64,
    /// Unix seconds: the window ends now and starts `window_seconds` before.
    pub until: i64,
    /// Unix seconds of the first snapshot the gateway heard of this database (its history is in
    /// memory: it starts when the gateway starts); `null` when none was heard yet.
    pub history_since: Option<i64>,
    /// How much of the window the history covers, in seconds (less than `window_seconds` when
    /// the gateway heard the database for less long).
    pub covered_seconds: i64,
    /// The width of each history point, in seconds.
    pub bucket_seconds: i64,
    /// Every statement's calls and time over the window (pg_stat_statements, the collector's
    /// own left out), the denominator of `share_of_total`; `null` when not measured.
    pub total_calls: Option<u64>,
    pub total_time_ms: Option<f64>,
    /// At most 20, by total time, most first.
    pub statements: Vec<StatementReport>,
    /// Every action of the database that ran (started) within the window, oldest first: the
    /// charts' markers.
    pub actions: Vec<ActionMarker>,
}

/// One statement over the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementReport {
    /// pg_stat_statements' queryid, as text (a 64-bit number).
    pub queryid: String,
    /// The normalised text: `$1` where a constant was, literals removed.
    pub query: String,
    /// Calls and time in the cycles where it was among the 20 costliest the collector sent:
    /// lower bounds.
    pub calls: u64,
    pub total_time_ms: f64,
    pub rows: u64,
    /// Total time / calls.
    pub mean_ms: Option<f64>,
    /// The 95th percentile of its mean per history point (`bucket_seconds` wide), not of single
    /// calls: pg_stat_statements keeps no per-statement percentiles.
    pub p95_point_mean_ms: Option<f64>,
    /// Its time / every statement's time over the window, 0–1.
    pub share_of_total: Option<f64>,
    /// The tables its text names (PostgreSQL's parser); `null` when the text was cut short and
    /// does not parse.
    pub tables: Option<Vec<String>>,
    /// Oldest first.
    pub history: Vec<StatementPoint>,
    /// Active detections whose evidence names this statement or one of its tables.
    pub detections: Vec<Concern>,
    /// Actions on one of its tables (or from a detection naming it), newest first.
    pub actions: Vec<Concern>,
}

/// One history point: the cycles whose timestamp falls in `[at, at + bucket_seconds)`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementPoint {
    /// Unix seconds.
    pub at: i64,
    pub calls: u64,
    pub total_time_ms: f64,
    pub mean_ms: Option<f64>,
}

/// A detection or an action that concerns a statement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Concern {
    pub id: String,
    pub title: String,
    /// The detection's state or the action's status.
    pub status: String,
}

/// An action on the charts: where it ran.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionMarker {
    pub action_id: String,
    #[schema(schema_with = super::schema::action_type)]
    pub action_type: String,
    #[schema(schema_with = super::schema::action_status)]
    pub status: String,
    pub description: String,
    /// Unix seconds: when it completed, or started if it has not.
    pub at: i64,
    /// RFC 3339 of `at`.
    pub at_text: String,
}

/// The costliest statements of `database_id` over `window` (`1h`, the default, `24h` or `7d`).
#[utoipa::path(
    get,
    operation_id = "list_queries",
    path = "/queries",
    tag = "metrics",
    params(
        ("database_id" = String, Query, description = "The database"),
        ("window" = Option<String>, Query, description = "1h (default), 24h or 7d"),
    ),
    responses(
        (status = 200, body = QueriesReport),
        (status = 400, description = "No database_id, or an unknown window", body = ErrorBody),
        (status = 503, description = "knowledge cannot be reached", body = ErrorBody),
    )
)]
pub async fn list(
    State(s): State<AppState>,
    Query(q): Query<QueriesQuery>,
) -> Reply<Json<QueriesReport>> {
    if q.database_id.is_empty() {
        return Err(Error::invalid("database_id is required: statements are per database").into());
    }
    let window = Window::parse(&q.window).ok_or_else(|| {
        let shown: String = q.window.chars().take(80).collect();
        Error::invalid(format!("window {shown:?} must be one of 1h, 24h, 7d"))
    })?;
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let report = s.live.statements.lock().expect("statements lock").window(
        &q.database_id,
        window,
        until,
        LIMIT,
    );

    let database_id = q.database_id.clone();
    let detections = s
        .knowledge("GetActiveDetections", |mut k| async move {
            k.get_active_detections(DatabaseFilterRequest { database_id })
                .await
        })
        .await?
        .detections;
    let request = ListActionsRequest {
        database_id: q.database_id.clone(),
        status: String::new(),
        limit: 100,
    };
    let actions = s
        .knowledge("ListActions", |mut k| async move {
            k.list_actions(request).await
        })
        .await?
        .actions;
    let actions: Vec<(Action, Option<String>)> = actions
        .into_iter()
        .map(|a| {
            let plan = changes(&a).plan;
            let table = plan["table"].as_str().map(|table| {
                let schema = plan["schema"].as_str().unwrap_or("public");
                format!("{schema}.{table}")
            });
            (a, table)
        })
        .collect();

    let from = until - window.seconds();
    let mut markers: Vec<ActionMarker> = actions
        .iter()
        .filter_map(|(a, _)| {
            let at = if a.completed_at > 0 {
                a.completed_at
            } else {
                a.started_at
            };
            (at > 0 && at >= from && at <= until).then(|| ActionMarker {
                action_id: a.id.clone(),
                action_type: a.action_type.clone(),
                status: a.status.clone(),
                description: changes(a).description.unwrap_or_else(|| a.message.clone()),
                at,
                at_text: instant(at),
            })
        })
        .collect();
    markers.sort_by_key(|m| m.at);

    let (since, totals, figures) = match report {
        Some(r) => (
            Some(r.since),
            (r.total_calls, r.total_time_ms),
            r.statements,
        ),
        None => (None, (None, None), Vec::new()),
    };
    let statements = figures
        .into_iter()
        .map(|f| {
            let detections: Vec<Concern> = detections
                .iter()
                .filter(|d| concerns(&parse_json(&d.evidence_json), &f))
                .map(|d| Concern {
                    id: d.id.clone(),
                    title: d.title.clone(),
                    status: d.state.clone(),
                })
                .collect();
            let mut concerned: Vec<&Action> = actions
                .iter()
                .filter(|(a, table)| {
                    table.as_deref().is_some_and(|t| names(&f, t))
                        || detections.iter().any(|d| d.id == a.detection_id)
                })
                .map(|(a, _)| a)
                .collect();
            concerned.sort_by_key(|a| std::cmp::Reverse(a.created_at));
            StatementReport {
                queryid: f.queryid.to_string(),
                query: f.query.clone(),
                calls: f.calls,
                total_time_ms: f.total_time_ms,
                rows: f.rows,
                mean_ms: f.mean_ms,
                p95_point_mean_ms: f.p95_bucket_mean_ms,
                share_of_total: f.share,
                tables: f.tables.clone(),
                history: f
                    .history
                    .iter()
                    .map(|b| StatementPoint {
                        at: b.start,
                        calls: u64::from(b.calls),
                        total_time_ms: f64::from(b.time_ms),
                        mean_ms: b.mean_ms(),
                    })
                    .collect(),
                detections,
                actions: concerned
                    .into_iter()
                    .map(|a| Concern {
                        id: a.id.clone(),
                        title: changes(a)
                            .description
                            .unwrap_or_else(|| a.action_type.clone()),
                        status: a.status.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(QueriesReport {
        database_id: q.database_id,
        window: window.word().to_owned(),
        window_seconds: window.seconds(),
        until,
        history_since: since,
        covered_seconds: since.map_or(0, |s| (until - s.max(from)).clamp(0, window.seconds())),
        bucket_seconds: window.bucket_seconds(),
        total_calls: totals.0,
        total_time_ms: totals.1,
        statements,
        actions: markers,
    }))
}

/// Whether a detection's evidence concerns the statement: it lists its queryid among the
/// statements it read (`statements[].queryid`, the index advisor's) or names one of its tables
/// (`schema` and `table_name`).
fn concerns(evidence: &Value, f: &Figures) -> bool {
    let by_id = evidence["statements"].as_array().is_some_and(|list| {
        list.iter()
            .any(|s| s["queryid"].as_i64() == Some(f.queryid))
    });
    let by_table = evidence["table_name"].as_str().is_some_and(|table| {
        let schema = evidence["schema"].as_str().unwrap_or("public");
        names(f, &format!("{schema}.{table}"))
    });
    by_id || by_table
}

/// Whether the statement's text names `qualified` (`schema.table`): written qualified, or
/// unqualified for a table of `public` (the default search path; a statement under another
/// search path may be matched to the wrong schema's table of the same name).
fn names(f: &Figures, qualified: &str) -> bool {
    let unqualified = qualified.strip_prefix("public.");
    f.tables.as_ref().is_some_and(|tables| {
        tables
            .iter()
            .any(|t| t == qualified || Some(t.as_str()) == unqualified)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn figures(tables: &[&str]) -> Figures {
        Figures {
            queryid: 42,
            query: String::new(),
            tables: Some(tables.iter().map(|t| (*t).to_owned()).collect()),
            calls: 1,
            total_time_ms: 1.0,
            rows: 1,
            mean_ms: Some(1.0),
            p95_bucket_mean_ms: Some(1.0),
            share: None,
            history: Vec::new(),
        }
    }

    #[test]
    fn a_detection_concerns_a_statement_it_lists_or_whose_table_it_names() {
        let f = figures(&["posts"]);
        assert!(concerns(&json!({"statements": [{"queryid": 42}]}), &f));
        assert!(concerns(
            &json!({"schema": "public", "table_name": "posts"}),
            &f
        ));
        assert!(concerns(&json!({"table_name": "posts"}), &f));
        assert!(!concerns(
            &json!({"schema": "shop", "table_name": "posts"}),
            &f
        ));
        assert!(!concerns(
            &json!({"statements": [{"queryid": 41}], "table_name": "users"}),
            &f
        ));
        assert!(!concerns(&Value::Null, &f));
        assert!(names(&figures(&["shop.posts"]), "shop.posts"));
        assert!(!names(&figures(&["shop.posts"]), "public.posts"));
    }
}
