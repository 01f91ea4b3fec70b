"use client";
// Settings: databases (add with the connection test, enable, delete, what each lacks, the
// doctor's privilege check), the execution mode, every threshold, verification, webhooks —
// applied live by the services.
import { useEffect, useState } from "react";

import { DatabaseForm, type ConnectionReport } from "@/components/DatabaseForm";
import { DoctorPanel } from "@/components/DoctorPanel";
import { useShell } from "@/components/Shell";
import { api } from "@/lib/api";
import { idFromName, tone } from "@/lib/format";
import type { SystemConfig, Thresholds } from "@/lib/types";

const THRESHOLDS: [keyof Thresholds, string][] = [
  ["connection_pool_critical", "Connection pool alert (ratio 0–1)"],
  ["p95_latency_ms", "p95 latency alert (ms)"],
  ["cache_hit_rate_threshold", "Cache hit rate alert (ratio 0–1)"],
  ["index_min_statement_seconds_per_second", "Index advisor: database time per second of unindexed statements on a table (s/s)"],
  ["index_min_rows_read_per_second", "Index advisor: rows read per second by sequential scans"],
  ["cache_min_block_reads_per_second", "Cache detector: block reads per second before judging"],
  ["latency_min_calls_per_second", "Latency detector: statement calls per second before judging"],
  ["index_max_new_per_table_per_hour", "New indexes per table per hour (at most)"],
  ["table_bloat_ratio", "Dead tuple ratio (0–1)"],
  ["long_query_seconds", "Long-running query after (s)"],
  ["idle_transaction_seconds", "Idle in transaction after (s)"],
  ["index_min_table_rows", "Smallest table worth an index (rows)"],
  ["index_min_cost_reduction", "Minimum planner cost reduction (0–1)"],
];

export default function SettingsPage() {
  const { databases, refreshDatabases } = useShell();
  const [config, setConfig] = useState<SystemConfig | null>(null);
  const [message, setMessage] = useState("");
  const [adding, setAdding] = useState<{ name: string; connection: string; report: ConnectionReport } | null>(null);

  useEffect(() => {
    api("get", "/config").then(setConfig, (e: Error) => setMessage(e.message));
  }, []);

  const save = async () => {
    try {
      if (config) await api("post", "/config", { body: config });
      setMessage("Saved: the services use it from their next cycle.");
    } catch (e) {
      setMessage(`Not saved: ${(e as Error).message}`);
    }
  };

  return (
    <>
      <div className="card">
        <h3>Databases</h3>
        {databases.map((d) => (
          <div key={d.database_id} style={{ marginBottom: 8 }}>
            <div className="row">
              <span className={`badge ${tone(d.status)}`}>{d.status}</span>
              <strong>{d.database_name || d.database_id}</strong>
              <span className="muted">{d.connection_string_redacted}</span>
              <button
                onClick={async () => {
                  await api("put", "/databases/{id}", { params: { id: d.database_id }, body: { enabled: !d.enabled } });
                  await refreshDatabases();
                }}
              >
                {d.enabled ? "Disable" : "Enable"}
              </button>
              <button
                onClick={async () => {
                  if (!confirm(`Stop watching ${d.database_name || d.database_id}?`)) return;
                  await api("delete", "/databases/{id}", { params: { id: d.database_id } });
                  await refreshDatabases();
                }}
              >
                Delete
              </button>
              {d.features?.unavailable?.map((f) => (
                <span key={f.name} className="wait muted">
                  lacks {f.name}: <code>{f.remedy}</code>
                </span>
              ))}
            </div>
            <DoctorPanel databaseId={d.database_id} />
          </div>
        ))}
        <details>
          <summary>Add a database</summary>
          <DatabaseForm onTested={(name, connection, report) => setAdding({ name, connection, report })} />
          <button
            className="primary"
            disabled={!adding?.report.ok || !adding.name}
            onClick={async () => {
              if (!adding) return;
              try {
                await api("post", "/databases", {
                  body: { database_id: idFromName(adding.name), database_name: adding.name, connection_string: adding.connection },
                });
                await refreshDatabases();
                setMessage(`Watching ${adding.name}.`);
              } catch (e) {
                setMessage((e as Error).message);
              }
            }}
          >
            Add
          </button>
        </details>
      </div>
      {config && (
        <div className="card">
          <h3>Execution mode</h3>
          <select
            aria-label="Execution mode"
            value={config.execution_mode || "autonomous"}
            onChange={(e) => setConfig({ ...config, execution_mode: e.target.value })}
          >
            <option value="autonomous">Autonomous</option>
            <option value="approval">Approval</option>
            <option value="observe">Observe</option>
          </select>
          <h3 style={{ marginTop: 16 }}>Thresholds</h3>
          <div className="grid">
            {THRESHOLDS.map(([key, label]) => (
              <label key={key}>
                {label}
                <input
                  type="number"
                  step="any"
                  aria-label={label}
                  value={config.thresholds?.[key] ?? ""}
                  onChange={(e) => setConfig({ ...config, thresholds: { ...config.thresholds, [key]: Number(e.target.value) } })}
                />
              </label>
            ))}
          </div>
          <h3>Verification</h3>
          <div className="grid">
            <label>
              Cycles to measure
              <input
                type="number"
                value={config.verification?.cycles ?? 3}
                onChange={(e) => setConfig({ ...config, verification: { ...config.verification, cycles: Number(e.target.value) } })}
              />
            </label>
            <label>
              Minimum calls to judge
              <input
                type="number"
                value={config.verification?.min_calls ?? 50}
                onChange={(e) => setConfig({ ...config, verification: { ...config.verification, min_calls: Number(e.target.value) } })}
              />
            </label>
          </div>
          <h3>Webhook</h3>
          <label>
            URL (Slack, Discord or any JSON endpoint)
            <input
              value={config.webhook?.url ?? ""}
              onChange={(e) => setConfig({ ...config, webhook: { ...config.webhook, url: e.target.value } })}
            />
          </label>
          <label className="row">
            <input
              type="checkbox"
              style={{ width: "auto" }}
              checked={config.webhook?.enabled ?? false}
              onChange={(e) =>
                setConfig({
                  ...config,
                  webhook: {
                    ...config.webhook,
                    enabled: e.target.checked,
                    events: config.webhook?.events?.length ? config.webhook.events : ["detection.created", "action.completed", "action.failed"],
                  },
                })
              }
            />
            Enabled
          </label>
          <button className="primary" onClick={save}>
            Save configuration
          </button>
          {message && <p className="muted">{message}</p>}
        </div>
      )}
    </>
  );
}
