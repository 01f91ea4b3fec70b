"use client";
// Metrics of the selected database: its history as charts, live, and what it lacks.
import { Chart } from "@/components/Chart";
import { useShell } from "@/components/Shell";
import { ms, percent } from "@/lib/format";
import { numberAt } from "@/lib/json";
import type { Metrics } from "@/lib/types";
import { useData } from "@/lib/useData";

export default function MetricsPage() {
  const { selected, databases } = useShell();
  const history = useData(selected ? "/metrics/history" : null, { database_id: selected, limit: 120 }, ["metrics"]);
  const points = history.data ?? [];
  const series = (pick: (m: Metrics) => number | undefined) => points.map((m) => pick(m) ?? Number.NaN);
  const database = databases.find((d) => d.database_id === selected);
  if (!selected) return <p className="muted">Register a database in Settings to see its metrics.</p>;
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
      <div className="grid">
        <Chart title="Health score" values={series((m) => numberAt(m, "health_score"))} format={percent} />
        <Chart title="Active connections" values={series((m) => numberAt(m, "measurements", "active_connections"))} format={(v) => v.toFixed(0)} />
        <Chart title="Cache hit rate" values={series((m) => numberAt(m, "measurements", "cache_hit_rate"))} format={percent} />
        <Chart title="p95 latency" values={series((m) => numberAt(m, "measurements", "p95_query_latency_ms"))} format={ms} />
        <Chart title="Sequential scans per cycle" values={series((m) => numberAt(m, "measurements", "sequential_scans"))} format={(v) => v.toFixed(0)} />
      </div>
    </>
  );
}
