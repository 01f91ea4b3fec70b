"use client";
// The first run: a database (with a real connection test), then thresholds and the execution
// mode; "Start monitoring" registers the database and saves the configuration.
import { useState } from "react";

import { DatabaseForm, type ConnectionReport } from "@/components/DatabaseForm";
import { api } from "@/lib/api";
import { idFromName } from "@/lib/format";

export function Onboarding({ onDone }: { onDone: () => void }) {
  const [step, setStep] = useState(1);
  const [database, setDatabase] = useState<{ name: string; connection: string; report: ConnectionReport } | null>(null);
  const [mode, setMode] = useState("approval");
  const [thresholds, setThresholds] = useState({
    connection_pool_critical: 80,
    p95_latency_ms: 100,
    cache_hit_rate_threshold: 90,
    // Shown as a percentage of one core; saved as seconds of database time per second.
    index_min_statement_seconds_per_second: 2,
    idle_transaction_seconds: 300,
  });
  const [error, setError] = useState("");

  const field = (key: keyof typeof thresholds, label: string) => (
    <label>
      {label}
      <input
        type="number"
        step="any"
        aria-label={label}
        value={thresholds[key]}
        onChange={(e) => setThresholds({ ...thresholds, [key]: Number(e.target.value) })}
      />
    </label>
  );

  return (
    <div className="center card">
      <h3>Set up StartupMonkey · step {step} of 2</h3>
      {step === 1 ? (
        <>
          <p className="muted">Which PostgreSQL database should StartupMonkey watch?</p>
          <DatabaseForm onTested={(name, connection, report) => setDatabase({ name, connection, report })} />
          <p>
            <button className="primary" disabled={!database?.report.ok || !database.name} onClick={() => setStep(2)}>
              Continue
            </button>
          </p>
        </>
      ) : (
        <>
          {field("connection_pool_critical", "Connection pool alert (%)")}
          {field("p95_latency_ms", "p95 latency alert (ms)")}
          {field("cache_hit_rate_threshold", "Cache hit rate alert (%)")}
          {field("index_min_statement_seconds_per_second", "Index advisor: database time per second of unindexed statements on a table (% of one core)")}
          {field("idle_transaction_seconds", "Idle in transaction after (s)")}
          <label>
            Execution mode
            <select aria-label="Execution mode" value={mode} onChange={(e) => setMode(e.target.value)}>
              <option value="approval">Approval — fixes wait for you</option>
              <option value="autonomous">Autonomous — fixes run, are verified, and undone if they do not help</option>
              <option value="observe">Observe — suggestions only</option>
            </select>
          </label>
          {error && <p className="error">{error}</p>}
          <button
            className="primary"
            onClick={async () => {
              if (!database) return;
              try {
                await api("post", "/databases", {
                  body: { database_id: idFromName(database.name), database_name: database.name, connection_string: database.connection },
                });
                const config = await api("get", "/config");
                await api("post", "/config", {
                  body: {
                    ...config,
                    onboarding_complete: true,
                    execution_mode: mode,
                    thresholds: {
                      ...config.thresholds,
                      connection_pool_critical: thresholds.connection_pool_critical / 100,
                      cache_hit_rate_threshold: thresholds.cache_hit_rate_threshold / 100,
                      p95_latency_ms: thresholds.p95_latency_ms,
                      index_min_statement_seconds_per_second: thresholds.index_min_statement_seconds_per_second / 100,
                      idle_transaction_seconds: thresholds.idle_transaction_seconds,
                    },
                  },
                });
                onDone();
              } catch (e) {
                setError((e as Error).message);
              }
            }}
          >
            Start monitoring
          </button>
        </>
      )}
    </div>
  );
}
