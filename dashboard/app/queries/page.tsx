"use client";
// Queries: the selected database's costliest statements over a window (1 h, 24 h, 7 d), each
// with its figures, its history with a marker where each action ran, the tables it names and the
// detections and actions that concern it. Texts are normalised: `$1` where a constant was.
import Link from "next/link";
import { useState } from "react";

import { Chart } from "@/components/Chart";
import { useShell } from "@/components/Shell";
import { type ChartMarker } from "@/lib/chart";
import { ms, percent } from "@/lib/format";
import { coverage, drawnFrom, pointWidth } from "@/lib/queries";
import type { QueriesReport, StatementReport } from "@/lib/types";
import { useData } from "@/lib/useData";

const WINDOWS = [
  ["1h", "1 hour"],
  ["24h", "24 hours"],
  ["7d", "7 days"],
] as const;

function Statement({ s, report, markers }: { s: StatementReport; report: QueriesReport; markers: ChartMarker[] }) {
  const width = pointWidth(report.bucket_seconds);
  return (
    <div className="card" data-testid="statement" data-queryid={s.queryid} data-tables={(s.tables ?? []).join(" ")}>
      <pre aria-label="Statement">{s.query}</pre>
      <dl className="statement-figures">
        <div>
          <dt>Total time</dt>
          <dd title="Database time this statement took in the window">{ms(s.total_time_ms)}</dd>
        </div>
        <div>
          <dt>Share of all statements&apos; time</dt>
          <dd>{s.share_of_total === null || s.share_of_total === undefined ? "not measured" : percent(s.share_of_total)}</dd>
        </div>
        <div>
          <dt>Calls</dt>
          <dd>{s.calls.toLocaleString("en")}</dd>
        </div>
        <div>
          <dt>Mean per call</dt>
          <dd>{ms(s.mean_ms)}</dd>
        </div>
        <div>
          <dt title={`pg_stat_statements keeps no single-call times: this is the 95th percentile of the statement's mean per ${width}`}>p95 of its {width} means</dt>
          <dd>{ms(s.p95_point_mean_ms)}</dd>
        </div>
        <div>
          <dt>Rows</dt>
          <dd>{s.rows.toLocaleString("en")}</dd>
        </div>
      </dl>
      <p className="muted">
        Tables: {s.tables === null || s.tables === undefined ? "the text was cut short and could not be read" : s.tables.length ? s.tables.join(", ") : "none"}
      </p>
      <Chart
        title="Mean time per call"
        label={`mean per call over ${width}, ms`}
        times={s.history.map((p) => p.at)}
        values={s.history.map((p) => p.mean_ms ?? Number.NaN)}
        format={ms}
        from={drawnFrom(report)}
        to={report.until}
        markers={markers}
        height={140}
      />
      {(s.detections.length > 0 || s.actions.length > 0) && (
        <ul className="concerns">
          {s.detections.map((d) => (
            <li key={d.id}>
              Detection ({d.status}): <Link href="/detections">{d.title}</Link>
            </li>
          ))}
          {s.actions.map((a) => (
            <li key={a.id}>
              Action ({a.status.replace("_", " ")}): <Link href={`/actions#action-${a.id}`}>{a.title}</Link>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export default function QueriesPage() {
  const { selected } = useShell();
  const [window, setWindow] = useState<string>("1h");
  const report = useData(selected ? "/queries" : null, { database_id: selected, window }, ["metrics", "action"]);
  if (!selected) return <p className="muted">Register a database in Settings to see its statements.</p>;
  const r = report.data;
  const markers: ChartMarker[] = (r?.actions ?? []).map((a) => ({
    at: a.at,
    id: a.action_id,
    label: `${a.action_type} ${a.status.replace("_", " ")} at ${new Date(a.at * 1000).toLocaleString()}: ${a.description}`,
  }));
  return (
    <>
      <div className="queries-controls" role="group" aria-label="Window">
        {WINDOWS.map(([value, text]) => (
          <button key={value} className={value === window ? "primary" : ""} aria-pressed={value === window} onClick={() => setWindow(value)}>
            Last {text}
          </button>
        ))}
      </div>
      {report.error && <p className="error">{report.error}</p>}
      {!r && !report.error && <p className="muted">Loading…</p>}
      {r && (
        <p className="muted" data-testid="coverage">
          {coverage(r)} Statements are ranked by total time; each is counted in the cycles where it was among the 20 costliest, so its figures are lower bounds. Texts are normalised: $1
          stands where a constant was.
        </p>
      )}
      {r && r.statements.length === 0 && (
        <p className="muted">
          No statements in this window yet. Each collection cycle sends the database&apos;s costliest statements (pg_stat_statements is needed); they appear here from the second cycle after
          the database is registered.
        </p>
      )}
      {r?.statements.map((s) => <Statement key={s.queryid} s={s} report={r} markers={markers} />)}
    </>
  );
}
