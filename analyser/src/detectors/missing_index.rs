//! `missing_index`: one detection per index the advisor proposes (crate::advisor), keyed by the
//! table and the index's columns, with the statements it serves, their planner costs before and
//! after (HypoPG) or the heuristic's reasoning, the estimated time saved and the exact
//! `CREATE INDEX CONCURRENTLY` statement. Category `query`, severity `warning` (the original's),
//! action `create_index`.

use proto::events::Detection;
use proto::metrics::MetricSnapshot;
use serde_json::json;

use super::Finding;
use crate::advisor::Advice;

pub fn missing_index(snapshot: &MetricSnapshot, advice: &[Advice]) -> Vec<Detection> {
    let tables = snapshot
        .postgres
        .as_ref()
        .map(|p| p.tables.as_slice())
        .unwrap_or_default();
    advice
        .iter()
        .map(|a| {
            let qualified = format!("{}.{}", a.schema, a.table);
            let table = tables.iter().find(|t| t.qualified_name == qualified);
            let columns: Vec<String> = a
                .columns
                .iter()
                .map(|k| {
                    if k.descending {
                        format!("{} DESC", k.name)
                    } else {
                        k.name.clone()
                    }
                })
                .collect();
            let column_list = columns.join(", ");
            let saved_s_per_day = a.saved_ms_per_day / 1000.0;
            let statements: Vec<_> = a
                .served
                .iter()
                .map(|s| {
                    json!({
                        "queryid": s.queryid,
                        "query": s.query,
                        "calls": s.calls,
                        "mean_time_ms": s.mean_time_ms,
                        "cost_before": s.cost_before,
                        "cost_after": s.cost_after,
                        "cost_reduction": s.reduction,
                    })
                })
                .collect();
            let seq_scans = table.map_or(0, |t| t.seq_scan);
            Finding {
                snapshot,
                detector: "missing_index",
                category: "query",
                severity: "warning",
                identifier: format!("{qualified}({column_list})"),
                title: format!("Missing index on {qualified} ({column_list})"),
                description: format!(
                    "{seq_scans} sequential scans of {qualified} ({} rows) in {:.0} s; an index on \
                     ({column_list}) serves {} statement(s) and would save an estimated {:.0} s \
                     of query time per day ({}).",
                    table.map_or(0, |t| t.live_tuples),
                    snapshot.time_delta_seconds.unwrap_or(0.0),
                    a.served.len(),
                    saved_s_per_day,
                    match a.method {
                        crate::advisor::Method::HypoPg => "planner cost measured with HypoPG",
                        crate::advisor::Method::Heuristic => {
                            "heuristic estimate: HypoPG is not installed"
                        }
                    }
                ),
                evidence: json!({
                    "schema": a.schema,
                    "table_name": a.table,
                    "columns": columns,
                    "sequential_scans": seq_scans,
                    "rows_read": table.map_or(0, |t| t.seq_tup_read),
                    "live_tuples": table.map_or(0, |t| t.live_tuples),
                    "time_delta_seconds": snapshot.time_delta_seconds,
                    "writes": a.writes,
                    "reads": a.reads,
                    "write_heavy": a.write_heavy,
                    "method": a.method.as_str(),
                    "bar": a.bar,
                    "statements": statements,
                    "estimated_time_saved_ms_per_day": a.saved_ms_per_day,
                    "index_statement": a.statement,
                    "note": a.note,
                    "database_type": snapshot.database_type,
                }),
                recommendation: format!(
                    "{}; saves an estimated {saved_s_per_day:.0} s of query time per day.",
                    a.statement
                ),
                action_type: "create_index",
                action_metadata: json!({
                    "schema": a.schema,
                    "table_name": a.table,
                    "column_name": a.columns.first().map(|k| k.name.clone()),
                    "columns": a.columns.iter().map(|k| json!({"name": k.name, "descending": k.descending})).collect::<Vec<_>>(),
                    "index_name": a.index_name,
                    "statement": a.statement,
                    "method": a.method.as_str(),
                    "database_type": snapshot.database_type,
                    "priority": "high",
                }),
            }
            .into_detection()
        })
        .collect()
}
