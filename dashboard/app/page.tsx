"use client";
// Overview of the selected database: what StartupMonkey did this week, what is detected and done
// now, the execution mode, the databases and each service's health as it reports it. Everything
// here follows the live stream.
import Link from "next/link";

import { Problem } from "@/components/Problem";
import { useShell } from "@/components/Shell";
import { WeeklySummary } from "@/components/WeeklySummary";
import { countBy, tone } from "@/lib/format";
import { useData } from "@/lib/useData";

export default function Overview() {
  const { databases, selected } = useShell();
  const database = databases.find((d) => d.database_id === selected);
  const filter = { database_id: selected || undefined };
  const config = useData("/config", {}, []);
  const listed = useData("/databases", {}, ["metrics"]);
  const detections = useData("/detections", filter, ["detection", "action"]);
  const actions = useData("/actions", filter, ["action"]);
  const status = useData("/status", {}, []);
  const mode = config.data ? config.data.execution_mode || "autonomous" : "";
  const name = database ? database.database_name || database.database_id : "";
  const severities = countBy(detections.data ?? [], (d) => d.severity);
  const statuses = countBy(actions.data ?? [], (a) => a.status);
  const errors = [...new Set([config.error, listed.error, detections.error, actions.error, status.error].filter(Boolean))];

  if (listed.data?.length === 0) {
    return (
      <div className="card">
        <h3>No database is registered</h3>
        <p className="muted">
          StartupMonkey watches the databases registered with it. Add one in <Link href="/settings">Settings</Link> (or run{" "}
          <code>make up DATABASE_URL=postgres://…</code>); its overview appears here after the collector&apos;s first reading.
        </p>
      </div>
    );
  }
  return (
    <>
      {errors.map((error) => (
        <Problem key={error} what="the overview" error={error} />
      ))}
      <p className="row">
        <span>
          Execution mode:{" "}
          <span className="badge wait" data-testid="mode">
            {mode || "…"}
          </span>
        </span>
        {database && (
          <span className="muted" data-testid="watched">
            Watching <strong>{name}</strong> since {new Date(database.registered_at * 1000).toLocaleString()}
          </span>
        )}
      </p>
      {database && <WeeklySummary database={database} mode={mode} />}
      <div className="grid">
        <div className="card">
          <h3>Databases</h3>
          <div className="big">{listed.data?.length ?? "–"}</div>
          {listed.data?.map((d) => (
            <p key={d.database_id} className={tone(d.status)}>
              {d.database_name || d.database_id}:{" "}
              {d.status === "unknown"
                ? "waiting for the collector's first reading (every collection interval)"
                : `${d.status} (health ${Math.round(d.health_score * 100)} %)`}
            </p>
          ))}
        </div>
        <div className="card">
          <h3>Active detections</h3>
          <div className="big" data-testid="active-detections">
            {detections.data?.length ?? "–"}
          </div>
          <p className="muted">{severities.map(([s, n]) => `${n} ${s}`).join(" · ") || `nothing detected on ${name}`}</p>
        </div>
        <div className="card">
          <h3>Actions</h3>
          <div className="big">{actions.data?.length ?? "–"}</div>
          <p className="muted">{statuses.map(([s, n]) => `${n} ${s.replaceAll("_", " ")}`).join(" · ") || "none yet"}</p>
        </div>
        <div className="card">
          <h3>Services</h3>
          {!status.data && !status.error && <p className="muted">Asking each service…</p>}
          {Object.entries(status.data?.services ?? {}).map(([name, state]) => (
            <p key={name} className={tone(state.startsWith("healthy") ? "healthy" : state.startsWith("connected") ? "healthy" : "unreachable")}>
              {name}: {state}
            </p>
          ))}
        </div>
      </div>
      <div className="grid">
        <div className="card">
          <h3>Recent detections</h3>
          {detections.data?.length === 0 && (
            <p className="muted" data-testid="detections-empty">
              Nothing detected on {name}. The analyser checks every reading the collector takes; a problem appears here as soon as it is
              found, without reloading.
            </p>
          )}
          {(detections.data ?? []).slice(0, 5).map((d) => (
            <p key={d.id}>
              <span className={`badge ${tone(d.severity)}`}>{d.severity}</span> {d.title}
            </p>
          ))}
          <Link href="/detections">All detections →</Link>
        </div>
        <div className="card">
          <h3>Recent actions</h3>
          {actions.data?.length === 0 && (
            <p className="muted">
              No actions on {name} yet. A fix appears here when a detection has one, without reloading.
            </p>
          )}
          {(actions.data ?? []).slice(0, 5).map((a) => (
            <p key={a.action_id}>
              <span className={`badge ${tone(a.status)}`}>{a.status.replaceAll("_", " ")}</span>{" "}
              <Link href={`/actions#action-${encodeURIComponent(a.action_id)}`}>{a.description ?? a.action_type}</Link>
            </p>
          ))}
          <Link href="/actions">All actions →</Link>
        </div>
      </div>
    </>
  );
}
