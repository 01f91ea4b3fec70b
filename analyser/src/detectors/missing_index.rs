//! `missing_index`: one detection per index the advisor proposes (crate::advisor), keyed by the
//! table and the index's columns, with what put the table before the advisor (database time per
//! second of its unindexed statements, rows read per second by sequential scans), the statements
//! the index serves with their rates and planner costs before and after (HypoPG) or the
//! heuristic's reasoning, the estimated time saved and write cost, the index's estimated size,
//! the rest of the set chosen for the table, and the exact `CREATE INDEX CONCURRENTLY` statement.
//! Category `query`, severity `warning` (the original's), action `create_index`.

use proto::events::Detection;
use proto::metrics::MetricSnapshot;
use serde_json::json;

use proto::status::{ActionType, Category, Detector, Severity};

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
                .candidate
                .keys
                .iter()
                .map(|k| {
                    if k.descending {
                        format!("{} DESC", k.text())
                    } else {
                        k.text()
                    }
                })
                .collect();
            let mut column_list = columns.join(", ");
            if !a.candidate.include.is_empty() {
                column_list.push_str(&format!(" INCLUDE {}", a.candidate.include.join(", ")));
            }
            if let Some(p) = &a.candidate.predicate {
                column_list.push_str(&format!(" WHERE {} = {}", p.column, p.value.literal()));
            }
            let seconds = a.trigger.seconds_observed;
            let saved_s_per_day = a.saved_ms_per_day / 1000.0;
            let write_s_per_day = a.write_cost_ms_per_day / 1000.0;
            let statements: Vec<_> = a
                .served
                .iter()
                .map(|s| {
                    json!({
                        "queryid": s.queryid,
                        "query": s.query,
                        // Calls over `time_delta_seconds` (the recent workload the rates come from).
                        "calls": (s.calls_per_second * seconds).round() as i64,
                        "calls_per_second": s.calls_per_second,
                        "mean_time_ms": s.mean_time_ms,
                        "cost_before": s.cost_before,
                        "cost_after": s.cost_after,
                        "cost_reduction": s.reduction,
                        "cost_basis": s.basis.as_str(),
                        "saved_ms_per_second": s.saved_ms_per_second(),
                    })
                })
                .collect();
            Finding {
                snapshot,
                detector: Detector::MissingIndex,
                category: Category::Query,
                severity: Severity::Warning,
                identifier: format!("{qualified}({column_list})"),
                title: format!("Missing index on {qualified} ({column_list})"),
                description: format!(
                    "Statements reading {qualified} ({} rows) without a usable index took {:.3} s \
                     of database time per second and its sequential scans read {:.0} rows per \
                     second (recent rates: about the last {:.0} s, the newest weighted most); an \
                     index on ({column_list}) serves {} statement(s) and would save an \
                     estimated {:.0} s of query time per day for an estimated {:.0} s of extra \
                     write time ({}).",
                    table.map_or(0, |t| t.live_tuples),
                    a.trigger.statement_seconds_per_second,
                    a.trigger.rows_read_per_second,
                    seconds,
                    a.served.len(),
                    saved_s_per_day,
                    write_s_per_day,
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
                    "include": a.candidate.include,
                    "predicate": a.candidate.predicate,
                    "statement_seconds_per_second": a.trigger.statement_seconds_per_second,
                    "rows_read_per_second": a.trigger.rows_read_per_second,
                    "live_tuples": table.map_or(0, |t| t.live_tuples),
                    "time_delta_seconds": seconds,
                    "writes_per_second": a.writes_per_second,
                    "reads_per_second": a.reads_per_second,
                    "write_heavy": a.write_heavy,
                    "method": a.method.as_str(),
                    "bar": a.bar,
                    "statements": statements,
                    "estimated_time_saved_ms_per_day": a.saved_ms_per_day,
                    "estimated_write_cost_ms_per_day": a.write_cost_ms_per_day,
                    "estimated_size_bytes": a.size_bytes,
                    "index_statement": a.statement,
                    "then": a.then,
                    "note": a.note,
                    "database_type": snapshot.database_type,
                }),
                recommendation: format!(
                    "{}; saves an estimated {saved_s_per_day:.0} s of query time per day.",
                    a.statement
                ),
                action_type: ActionType::CreateIndex,
                action_metadata: json!({
                    "schema": a.schema,
                    "table_name": a.table,
                    "column_name": a.candidate.keys.first().map(|k| k.name.clone()),
                    "columns": a.candidate.keys.iter().map(|k| json!({
                        "name": k.name,
                        "descending": k.descending,
                        "function": k.function.map(|f| f.as_str()),
                    })).collect::<Vec<_>>(),
                    "include": a.candidate.include,
                    "predicate": a.candidate.predicate,
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
