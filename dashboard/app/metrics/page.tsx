"use client";
// Metrics of the selected database: its history as time charts, live, with a marker where each
// action ran, and what it lacks.
import { Chart } from "@/components/Chart";
import { useShell } from "@/components/Shell";
import { actionMarkers, count } from "@/lib/chart";
import { ms, percent } from "@/lib/format";
import { numberAt } from "@/lib/json";
import type { Metrics } from "@/lib/types";
import { useData } from "@/lib/useData";

export default function MetricsPage() {
  const { selected, databases } = useShell();
  const history = useData(selected ? "/metrics/history" : null, { database_id: selected, limit: 120 }, ["metrics"]);
  const actions = useData(selected ? "/actions" : null, { database_id: selected }, ["action"]);
  const points = history.data ?? [];
  const times = points.map((m) => numberAt(m, "timestamp") ?? Number.NaN);
  const series = (pick: (m: Metrics) => number | undefined) => points.map((m) => pick(m) ?? Number.NaN);
  const markers = actionMarkers(actions.data ?? []);
  const database = databases.find((d) => d.database_id === selected);
  if (!selected) return <p className="muted">Register a database in Settings to see its metrics.</p>;
  const interval = numberAt(points[points.length - 1], "time_delta_seconds");
  const span = `The last ${points.length} snapshots the gateway heard${interval ? `, one every ${interval.toFixed(0)} s` : ""}; hover a chart for each value.`;
  return (
    <>
      {database?.features?.unavailable?.length ? (
        <div className="card">
          <h3>What this database lacks</h3>
          {database.features.unavailable.map((f) => (
            <p key={f.name} className="wait">
              {f.name}: {f.reason} — <code>{f.remedy}</code>
            </p>
          ))}
        </div>
      ) : null}
      {history.error && <p className="error">{history.error}</p>}
      {!history.error && history.data && points.length === 0 && (
        <p className="muted">No snapshot yet: the first arrives one collection interval after the database is registered, and the charts fill from then.</p>
      )}
      <p className="muted">{span}</p>
      <div className="grid">
        <Chart title="Health score" label="health score, %" times={times} values={series((m) => numberAt(m, "health_score"))} format={percent} markers={markers} />
        <Chart title="Active connections" label="connections running a statement" times={times} values={series((m) => numberAt(m, "measurements", "active_connections"))} format={count} markers={markers} />
        <Chart title="Cache hit rate" label="blocks found in memory, %" times={times} values={series((m) => numberAt(m, "measurements", "cache_hit_rate"))} format={percent} markers={markers} />
        <Chart
          title="p95 latency"
          label="p95 of statement means, ms"
          times={times}
          values={series((m) => numberAt(m, "measurements", "p95_query_latency_ms"))}
          format={ms}
          markers={markers}
          note="Each cycle's 95th percentile of calls, each call taken at its statement's mean time (pg_stat_statements keeps no single-call times)."
        />
        <Chart title="Sequential scans per cycle" label="sequential scans in the cycle" times={times} values={series((m) => numberAt(m, "measurements", "sequential_scans"))} format={count} markers={markers} />
      </div>
    </>
  );
}
