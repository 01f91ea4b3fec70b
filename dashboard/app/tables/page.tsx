"use client";
// Tables: each table of the selected database read live (size, rows, dead rows, scans, the last
// vacuum and analyze, its indexes), and the indexes that could be dropped — unused or duplicate —
// each with its exact DROP INDEX CONCURRENTLY and the saved definition that rebuilds it. Nothing
// here runs a statement.
import { useState } from "react";

import { useShell } from "@/components/Shell";
import { bytes } from "@/lib/format";
import { ago, indexScanShare, latest, pageText, usageText } from "@/lib/tables";
import type { IndexRecommendation, TablesReport, TableStats } from "@/lib/types";
import { useData } from "@/lib/useData";

const PAGE = 50;

function Recommendation({ r }: { r: IndexRecommendation }) {
  return (
    <div className="card" data-testid="recommendation" data-index={r.index}>
      <div className="row">
        {r.reasons.map((reason) => (
          <span key={reason} className="badge wait">
            {reason}
          </span>
        ))}
        <strong>
          {r.schema}.{r.table} · {r.index}
        </strong>
        <span className="muted">{bytes(r.size_bytes)} on disk</span>
        <span className="badge neutral">not run · needs your approval</span>
      </div>
      <p>{r.explanation}.</p>
      <p className="muted">To drop it, without blocking reads or writes:</p>
      <pre aria-label={`Drop statement for ${r.index}`}>{r.drop_statement}</pre>
      <p className="muted">To undo, its saved definition rebuilds it:</p>
      <pre aria-label={`Restore statement for ${r.index}`}>{r.restore_statement}</pre>
    </div>
  );
}

function Table({ t, report }: { t: TableStats; report: TablesReport }) {
  const vacuum = latest(t.last_vacuum, t.last_autovacuum);
  const analyze = latest(t.last_analyze, t.last_autoanalyze);
  const now = report.read_at;
  return (
    <div className="card" data-testid="table" data-table={`${t.schema}.${t.name}`}>
      <h3>
        {t.schema}.{t.name}
      </h3>
      <dl className="kv">
        <dt>Size</dt>
        <dd>
          {t.total_bytes === null || t.total_bytes === undefined ? (
            "dropped while it was read"
          ) : (
            <>
              {bytes(t.total_bytes)}{" "}
              <span className="muted">
                in all: {bytes(t.table_bytes)} of rows, {bytes(t.indexes_bytes)} of indexes, the rest TOAST and the free-space and visibility maps
              </span>
            </>
          )}
        </dd>
        <dt>Rows</dt>
        <dd>
          {t.live_rows.toLocaleString("en")} <span className="muted">live (the statistics&apos; estimate)</span>
        </dd>
        <dt>Dead rows</dt>
        <dd>
          {t.dead_rows.toLocaleString("en")}{" "}
          <span className="muted">
            {t.bloat_ratio === null || t.bloat_ratio === undefined
              ? "not yet reclaimed by VACUUM"
              : `${t.bloat_ratio.toFixed(2)} per live row (bloat ratio), not yet reclaimed by VACUUM`}
          </span>
        </dd>
        <dt>Scans</dt>
        <dd>
          {t.sequential_scans.toLocaleString("en")} sequential, {(t.index_scans ?? 0).toLocaleString("en")} by index{" "}
          <span className="muted">({indexScanShare(t)})</span>
        </dd>
        <dt>Last vacuum</dt>
        <dd title={vacuum.at ? new Date(vacuum.at * 1000).toLocaleString() : undefined}>
          {ago(vacuum.at, now)} {vacuum.how && <span className="muted">({vacuum.how})</span>}
        </dd>
        <dt>Last analyze</dt>
        <dd title={analyze.at ? new Date(analyze.at * 1000).toLocaleString() : undefined}>
          {ago(analyze.at, now)} {analyze.how && <span className="muted">({analyze.how})</span>}
        </dd>
      </dl>
      {t.indexes.length === 0 ? (
        <p className="muted">No indexes: every query on this table reads it whole.</p>
      ) : (
        <div className="scroll">
          <table className="data">
            <thead>
              <tr>
                <th>Index</th>
                <th>Size</th>
                <th>Scans since {new Date(report.scans_counted_since * 1000).toLocaleDateString()}</th>
              </tr>
            </thead>
            <tbody>
              {t.indexes.map((i) => (
                <tr key={i.name} data-testid="index" data-index={i.name}>
                  <td>
                    <strong>{i.name}</strong>
                    <div className="muted mono">{i.definition}</div>
                  </td>
                  <td>{bytes(i.size_bytes)}</td>
                  <td className={i.usage === "unused" || i.duplicate_of ? "wait" : undefined}>{usageText(i, report)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

export default function TablesPage() {
  const { selected, databases } = useShell();
  const [offset, setOffset] = useState(0);
  const [pageOf, setPageOf] = useState(selected);
  if (pageOf !== selected) {
    // Another database: back to its first page.
    setPageOf(selected);
    setOffset(0);
  }
  const tables = useData(selected ? "/databases/{id}/tables" : null, { limit: PAGE, offset }, ["action"], { id: selected });
  const report = tables.data;
  const name = databases.find((d) => d.database_id === selected)?.database_name || selected;

  if (!selected)
    return <p className="muted">No database is registered yet: add one in Settings, and its tables and indexes appear here.</p>;
  return (
    <>
      {tables.error && (
        <div className="card">
          <p className="error">{tables.error}</p>
          <button onClick={tables.reload}>Try again</button>
        </div>
      )}
      {!report && !tables.error && <p className="muted">Reading the tables of {name}…</p>}
      {report && (
        <>
          <div className="row" style={{ justifyContent: "space-between" }}>
            <p className="muted" data-testid="scan-period" style={{ maxWidth: 820 }}>
              {report.scan_period}
            </p>
            <div className="row">
              <span className="muted">read {new Date(report.read_at * 1000).toLocaleTimeString()}</span>
              <button onClick={tables.reload}>Reload</button>
            </div>
          </div>

          <h3>Indexes that could be dropped</h3>
          {report.total_recommendations === 0 ? (
            <p className="muted" data-testid="no-recommendations">
              None: no index is a duplicate of another, and{" "}
              {report.scans_counted_days >= report.unused_after_days
                ? `every index other than those that enforce something was scanned in the last ${Math.floor(report.scans_counted_days)} days`
                : `unused indexes are named once scans have been counted for ${report.unused_after_days} days`}
              . Each would appear here with the statement that drops it.
            </p>
          ) : (
            <>
              <p className="muted">
                {report.total_recommendations} in all
                {report.total_recommendations > report.recommendations.length && `, the ${report.recommendations.length} largest shown`}. StartupMonkey
                does not run these: dropping from here is not built yet, so run a statement yourself once you approve it.
              </p>
              {report.recommendations.map((r) => (
                <Recommendation key={`${r.schema}.${r.index}`} r={r} />
              ))}
            </>
          )}
          <ul className="muted">
            {report.notes.map((note) => (
              <li key={note}>{note}</li>
            ))}
          </ul>

          <div className="row" style={{ justifyContent: "space-between", margin: "16px 0 8px" }}>
            <h3 style={{ margin: 0 }}>{pageText({ ...report, shown: report.tables.length })}</h3>
            <span className="muted">largest first, by the size the last VACUUM or ANALYZE recorded</span>
            <div className="row">
              <button disabled={report.offset === 0} onClick={() => setOffset(Math.max(0, report.offset - PAGE))}>
                Previous
              </button>
              <button disabled={report.offset + report.tables.length >= report.total_tables} onClick={() => setOffset(report.offset + PAGE)}>
                Next
              </button>
            </div>
          </div>
          {report.total_tables === 0 && (
            <p className="muted">{report.database} has no tables yet: they appear here once the application creates them.</p>
          )}
          {report.tables.map((t) => (
            <Table key={`${t.schema}.${t.name}`} t={t} report={report} />
          ))}
        </>
      )}
    </>
  );
}
