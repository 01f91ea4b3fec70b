"use client";
// Actions: each with approve / reject / rollback where they apply, what it changed, and the
// ledger's measured before and after; an index's card also charts the latency of the statements
// it served (components/ActionLatency.tsx).
import { useEffect, useState } from "react";

import { ActionLatency } from "@/components/ActionLatency";
import { Problem } from "@/components/Problem";
import { useShell } from "@/components/Shell";
import { api } from "@/lib/api";
import { bytes, ms, perDay, tone } from "@/lib/format";
import { numberAt } from "@/lib/json";
import type { LedgerEntry } from "@/lib/types";
import { useData } from "@/lib/useData";

function Ledger({ entry }: { entry: LedgerEntry }) {
  const before = numberAt(entry.before, "served", "mean_ms");
  const measured = (numberAt(entry.after, "served", "calls") ?? 0) > 0;
  const after = numberAt(entry.after, "served", "mean_ms");
  return (
    <div className="card" data-testid="ledger">
      <div className="row">
        <strong>Verification:</strong> <span className={`badge ${tone(entry.state)}`}>{entry.state.replace("_", " ")}</span>
        <span className="muted">{entry.cycles} cycles</span>
      </div>
      <p>{entry.reason}</p>
      <dl className="kv">
        {before !== undefined && before > 0 && (
          <>
            <dt>Served statements</dt>
            <dd>
              {ms(before)} → {measured ? ms(after) : "measuring…"}
            </dd>
          </>
        )}
        {entry.time_saved_ms_per_day > 0 && (
          <>
            <dt>Time saved</dt>
            <dd title="Database time the served statements no longer take: the drop in their mean latency times the lower of their call rates before and after, so demand the fix itself created is not counted.">
              {perDay(entry.time_saved_ms_per_day)}{" "}
              <span className="muted">of database time, at the call rate seen before the fix (or after, if lower)</span>
            </dd>
          </>
        )}
        {entry.write_cost_ms_per_day > 0 && (
          <>
            <dt>Write cost</dt>
            <dd title="Time added to the table's writes (INSERT, UPDATE, DELETE) by maintaining the index, at the lower of their call rates before and after.">
              {perDay(entry.write_cost_ms_per_day)}{" "}
              <span className="muted">added to the table&apos;s writes, at the same rate</span>
            </dd>
          </>
        )}
        {entry.storage_bytes > 0 && (
          <>
            <dt>Storage</dt>
            <dd>
              {bytes(entry.storage_bytes)} <span className="muted">on disk, measured after the build</span>
            </dd>
          </>
        )}
      </dl>
    </div>
  );
}

export default function ActionsPage() {
  const { selected } = useShell();
  const filter = { database_id: selected || undefined };
  const actions = useData("/actions", filter, ["action"]);
  const ledger = useData("/ledger", filter, ["action", "metrics"]);
  const [problem, setProblem] = useState("");
  const [busy, setBusy] = useState("");

  const decide = async (id: string, decision: "approve" | "reject" | "rollback") => {
    setBusy(id);
    try {
      await api("post", "/actions/{id}/{decision}", { params: { id, decision } });
      setProblem("");
      actions.reload();
    } catch (e) {
      setProblem(`${decision} failed: ${(e as Error).message}`);
    } finally {
      setBusy("");
    }
  };

  const list = actions.data ?? [];
  // A link to one action (`/actions#action-<id>`: the Overview, the charts' markers, the Queries page)
  // scrolls to it once it is listed.
  const loaded = actions.data !== null;
  useEffect(() => {
    if (!loaded || !window.location.hash.startsWith("#action-")) return;
    document.getElementById(decodeURIComponent(window.location.hash.slice(1)))?.scrollIntoView({ block: "start" });
  }, [loaded]);
  return (
    <>
      {problem && <p className="error">{problem}</p>}
      <Problem what="the actions" error={actions.error} />
      <Problem what="the ledger" error={ledger.error} />
      {actions.data?.length === 0 && (
        <p className="muted">
          No actions yet. When the analyser finds a problem with a fix, the fix appears here without reloading: run at once in
          autonomous mode, waiting for your approval in approval mode, only suggested in observe mode.
        </p>
      )}
      {list.map((a) => {
        const entry = ledger.data?.find((e) => e.action_id === a.action_id);
        return (
          <div key={a.action_id} id={`action-${a.action_id}`} className="card" data-testid="action" data-status={a.status}>
            <div className="row">
              <span className={`badge ${tone(a.status)}`} data-testid="action-status">
                {a.status.replace("_", " ")}
              </span>
              <strong>{a.action_type}</strong>
              <span className="muted">{a.created_at}</span>
            </div>
            <p>{a.description ?? a.message}</p>
            <p className="muted">{a.message}</p>
            {a.error && <p className="error">{a.error}</p>}
            <div className="row">
              {a.status === "pending_approval" && (
                <>
                  <button className="primary" disabled={busy === a.action_id} onClick={() => decide(a.action_id, "approve")}>
                    Approve
                  </button>
                  <button disabled={busy === a.action_id} onClick={() => decide(a.action_id, "reject")}>
                    Reject
                  </button>
                </>
              )}
              {a.status === "completed" && a.can_rollback && (
                <button disabled={busy === a.action_id} onClick={() => decide(a.action_id, "rollback")}>
                  Roll back
                </button>
              )}
              {a.status === "suggested" && <span className="muted">Observe mode: a suggestion, never run.</span>}
            </div>
            {a.changes && Object.keys(a.changes).length > 0 && (
              <details>
                <summary className="muted">What it changed</summary>
                <pre>{JSON.stringify(a.changes, null, 2)}</pre>
              </details>
            )}
            {entry && <Ledger entry={entry} />}
            {entry && a.action_type === "create_index" && a.started && <ActionLatency action={a} entry={entry} />}
          </div>
        );
      })}
    </>
  );
}
