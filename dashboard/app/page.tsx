"use client";
// Overview: the execution mode, the databases, what is detected, what is being done, and each
// service's health as it reports it.
import Link from "next/link";

import { countBy, tone } from "@/lib/format";
import { useData } from "@/lib/useData";

export default function Overview() {
  const config = useData("/config", {}, []);
  const databases = useData("/databases", {}, ["metrics"]);
  const detections = useData("/detections", {}, ["detection", "action"]);
  const actions = useData("/actions", {}, ["action"]);
  const status = useData("/status", {}, []);
  const severities = countBy(detections.data ?? [], (d) => d.severity);
  const statuses = countBy(actions.data ?? [], (a) => a.status);
  return (
    <>
      <p>
        Execution mode:{" "}
        <span className="badge wait" data-testid="mode">
          {config.data ? config.data.execution_mode || "autonomous" : "…"}
        </span>
      </p>
      <div className="grid">
        <div className="card">
          <h3>Databases</h3>
          <div className="big">{databases.data?.length ?? "–"}</div>
          {databases.data?.map((d) => (
            <p key={d.database_id} className={tone(d.status)}>
              {d.database_name || d.database_id}: {d.status} ({Math.round(d.health_score * 100)} %)
            </p>
          ))}
        </div>
        <div className="card">
          <h3>Active detections</h3>
          <div className="big" data-testid="active-detections">{detections.data?.length ?? "–"}</div>
          <p className="muted">{severities.map(([s, n]) => `${n} ${s}`).join(" · ") || "nothing detected"}</p>
        </div>
        <div className="card">
          <h3>Actions</h3>
          <div className="big">{actions.data?.length ?? "–"}</div>
          <p className="muted">{statuses.map(([s, n]) => `${n} ${s.replace("_", " ")}`).join(" · ") || "none yet"}</p>
        </div>
        <div className="card">
          <h3>Services</h3>
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
          {(detections.data ?? []).slice(0, 5).map((d) => (
            <p key={d.id}>
              <span className={`badge ${tone(d.severity)}`}>{d.severity}</span> {d.title}
            </p>
          ))}
          <Link href="/detections">All detections →</Link>
        </div>
        <div className="card">
          <h3>Recent actions</h3>
          {(actions.data ?? []).slice(0, 5).map((a) => (
            <p key={a.action_id}>
              <span className={`badge ${tone(a.status)}`}>{a.status}</span> {a.description ?? a.action_type}
            </p>
          ))}
          <Link href="/actions">All actions →</Link>
        </div>
      </div>
    </>
  );
}
