"use client";
// Name and connection string, with the gateway's real connection test: version, what the
// database has and lacks, and how to add it.
import { useState } from "react";

import { api } from "@/lib/api";
import { idFromName } from "@/lib/format";
import type { ConnectionReport } from "@/lib/types";

export type { ConnectionReport };

export function DatabaseForm({ onTested }: { onTested: (name: string, connection: string, report: ConnectionReport) => void }) {
  const [name, setName] = useState("");
  const [connection, setConnection] = useState("");
  const [report, setReport] = useState<ConnectionReport | null>(null);
  const [testing, setTesting] = useState(false);
  return (
    <div>
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} placeholder="Shop production" />
      </label>
      {name && <p className="muted">id: {idFromName(name)}</p>}
      <label>
        Connection string
        <input
          type="password"
          value={connection}
          onChange={(e) => {
            setConnection(e.target.value);
            setReport(null);
          }}
          placeholder="postgresql://user:password@host:5432/database"
        />
      </label>
      <button
        disabled={!connection || testing}
        onClick={async () => {
          setTesting(true);
          try {
            const result = await api("post", "/databases/test", { body: { connection_string: connection } });
            setReport(result);
            onTested(name, connection, result);
          } catch (e) {
            setReport({ ok: false, error: (e as Error).message });
          } finally {
            setTesting(false);
          }
        }}
      >
        {testing ? "Testing…" : "Test connection"}
      </button>
      {report && (
        <div className="card" style={{ marginTop: 12 }} data-testid="connection-report">
          {report.ok ? (
            <>
              <p className="good">Connected: {report.version?.split(" on ")[0]}</p>
              <p className="muted">
                pg_stat_statements: {report.features?.pg_stat_statements ? "yes" : "no"} · HypoPG: {report.features?.hypopg ? "yes" : "no"}
              </p>
              {report.missing?.map((m) => (
                <p key={m.name} className="wait">
                  Missing {m.name} — {m.why}. <code>{m.remedy}</code>
                </p>
              ))}
            </>
          ) : (
            <p className="error">{report.error}</p>
          )}
        </div>
      )}
    </div>
  );
}
