"use client";
// An action's served statements over time, on its card: their combined mean time per call from
// the gateway's statement history (`GET /queries`, the shortest window that holds the action),
// the action's marker, the means its verification measured before and after drawn as levels and
// stated beside, and the decision with its figures in words. When the history does not cover the
// action it says so and shows the figures alone.
import { useEffect, useState } from "react";

import { Chart, type ChartLevel } from "@/components/Chart";
import { decisionWords, figures, missingHistory, servedHistory, windowFor } from "@/lib/actionLatency";
import { actionMarkers } from "@/lib/chart";
import { ms } from "@/lib/format";
import { drawnFrom, pointWidth } from "@/lib/queries";
import type { Action, LedgerEntry } from "@/lib/types";
import { useData } from "@/lib/useData";

function seconds(rfc3339: string): number | undefined {
  const at = Date.parse(rfc3339) / 1000;
  return Number.isFinite(at) ? at : undefined;
}

export function ActionLatency({ action, entry }: { action: Action; entry: LedgerEntry }) {
  // The window is chosen again as time passes, so an open page keeps the action in view.
  const [now, setNow] = useState(() => Date.now() / 1000);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now() / 1000), 60_000);
    return () => clearInterval(timer);
  }, []);
  const startedAt = seconds(action.started) ?? seconds(action.created_at) ?? now;
  const completedAt = seconds(action.completed) ?? startedAt;
  const served = entry.served;
  const chosen = windowFor(startedAt, now);
  const report = useData(chosen && served.length > 0 ? "/queries" : null, { database_id: action.database_id, window: chosen?.window }, ["metrics", "action"]);
  const r = report.data;
  const history = r ? servedHistory(r, served, startedAt, completedAt) : null;
  const missing = missingHistory({ startedAt, now, served, report: r, history });
  const f = figures(entry);
  const width = r ? pointWidth(r.bucket_seconds) : "";
  const from = r ? Math.min(drawnFrom(r), startedAt - 3 * r.bucket_seconds) : startedAt;

  // The after level is green when the served statements got faster, red when slower.
  const faster = f.afterMs !== undefined && f.beforeMs !== undefined && f.afterMs <= f.beforeMs;
  const levels: ChartLevel[] = [];
  if (r && f.beforeMs !== undefined) levels.push({ from, to: startedAt, value: f.beforeMs, colour: "--neutral", label: "before" });
  // The after mean spans the cycles the verification measured: until its decision, or now.
  const decidedAt = seconds(entry.decided_at);
  if (r && f.afterMs !== undefined) levels.push({ from: completedAt, to: Math.min(decidedAt ?? r.until, r.until), value: f.afterMs, colour: faster ? "--good" : "--bad", label: "after" });
  const points = (phase: string) => {
    const n = history?.phase.filter((p, i) => p === phase && Number.isFinite(history.means[i])).length ?? 0;
    return `${n} point${n === 1 ? "" : "s"}`;
  };
  const statements = history && history.found.length > 1 ? `The ${history.found.length} served statements'` : "The served statement's";

  return (
    <div className="card" data-testid="action-latency">
      <h3>Latency of the statements it served</h3>
      <p data-testid="decision">{decisionWords(entry)}</p>
      <dl className="kv">
        <dt>Before</dt>
        <dd>
          <span data-testid="before-mean">{f.beforeMs === undefined ? "not measured" : `${ms(f.beforeMs)} per call`}</span>{" "}
          <span className="muted">
            {f.beforeMs === undefined ? "" : `the verification's mean over ${f.beforeCalls} calls in the cycles before the action (grey dashes)`}
          </span>
        </dd>
        <dt>After</dt>
        <dd>
          <span data-testid="after-mean">{f.afterMs === undefined ? "measuring…" : `${ms(f.afterMs)} per call`}</span>{" "}
          <span className="muted">
            {f.afterMs === undefined
              ? "the served statements have not run since the action"
              : `the verification's mean over ${f.afterCalls} calls in the cycles after it (${faster ? "green" : "red"} dashes)`}
          </span>
        </dd>
      </dl>
      {report.error && <p className="error">The statement history could not be read: {report.error}</p>}
      {missing && (
        <p className="muted" data-testid="history-missing">
          {missing}
        </p>
      )}
      {!missing && !r && !report.error && <p className="muted">Loading the statement history…</p>}
      {!missing && r && history && (
        <div data-testid="action-chart">
          <Chart
            title="Served statements: mean time per call"
            label={`mean per call over ${width}, ms`}
            times={history.times}
            values={history.means}
            format={ms}
            from={from}
            to={r.until}
            markers={actionMarkers([action])}
            levels={levels}
            height={160}
            note={`${statements} calls and time summed per ${width} point (total time / calls): ${points("before")} before the action started, ${points("during")} spanning it, ${points("after")} after it finished. Points count the cycles where a statement was among the 20 costliest; ▼ marks when the action ran; the dashes are the verification's means.`}
          />
        </div>
      )}
    </div>
  );
}
