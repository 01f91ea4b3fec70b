"use client";
// "What StartupMonkey did this week" on the Overview: the selected database's actions of the last
// 7 days by outcome, each linking to its card on the Actions page, and the time the kept ones save
// as the ledger recorded it. Updated live as actions move.
import Link from "next/link";
import { useEffect, useState } from "react";

import { Problem } from "@/components/Problem";
import { perDay } from "@/lib/format";
import { OUTCOME_WORDS, periodWords, plural, weeklySummary } from "@/lib/summary";
import type { Database } from "@/lib/types";
import { useData } from "@/lib/useData";

/** The newest actions listed one by one; the counts above cover them all. */
const SHOWN = 20;

const MODE_WORDS: Record<string, string> = {
  autonomous: "In autonomous mode, a fix runs as soon as it is found, is measured, and is undone if it does not help.",
  approval: "In approval mode, each fix waits here and on the Actions page for you to approve it.",
  observe: "In observe mode, fixes are only suggested, never run.",
};

export function WeeklySummary({ database, mode }: { database: Database; mode: string }) {
  const filter = { database_id: database.database_id, limit: 1000 };
  const actions = useData("/actions", filter, ["action"]);
  const ledger = useData("/ledger", filter, ["action"]);
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 60_000);
    return () => clearInterval(timer);
  }, []);

  const name = database.database_name || database.database_id;
  const error = actions.error || ledger.error;
  if (!actions.data || !ledger.data) {
    return (
      <section className="card" data-testid="weekly-summary">
        <h3>What StartupMonkey did this week on {name}</h3>
        {error ? <Problem what="the actions" error={error} /> : <p className="muted">Loading…</p>}
      </section>
    );
  }
  const summary = weeklySummary(actions.data, ledger.data, database.registered_at, now);
  const period = periodWords(summary);
  return (
    <section className="card" data-testid="weekly-summary">
      <h3>What StartupMonkey did this week on {name}</h3>
      <Problem what="the actions" error={error} />
      {summary.items.length === 0 ? (
        <p className="muted" data-testid="summary-empty">
          No actions {period}. The collector reads {name} every collection interval and the analyser checks each reading; when
          it finds a problem with a fix, the fix appears here and on the Actions page without reloading. {MODE_WORDS[mode] ?? ""}
        </p>
      ) : (
        <>
          <p>
            <strong>{plural(summary.items.length, "action")}</strong> {period}:{" "}
            {summary.counts.map(([outcome, n], i) => (
              <span key={outcome}>
                {i > 0 && " · "}
                <span className={OUTCOME_WORDS[outcome].tone}>
                  {n} {OUTCOME_WORDS[outcome].label}
                </span>
              </span>
            ))}
          </p>
          {summary.savedMsPerDay > 0 ? (
            <p data-testid="time-saved">
              <span className="figure">{perDay(summary.savedMsPerDay)}</span>{" "}
              <span className="muted">
                of database time saved by the kept fixes: how much less time the statements they serve take per day, at the call
                rate seen before each fix (or after, if lower), so demand a fix itself created is not counted. Database time is the
                server&apos;s work summed over statements, not time your users waited.
                {summary.writeCostMsPerDay > 0 && ` Their indexes add ${perDay(summary.writeCostMsPerDay)} to the tables' writes at the same rate.`}
              </span>
            </p>
          ) : (
            <p className="muted" data-testid="time-saved">
              No time saved to report yet: it is counted only for fixes verification measured and kept.
            </p>
          )}
          <ul className="summary-list">
            {summary.items.slice(0, SHOWN).map(({ action, outcome, savedMsPerDay }) => (
              <li key={action.action_id} data-testid="summary-action" data-outcome={outcome}>
                <span className={`badge ${OUTCOME_WORDS[outcome].tone}`} title={OUTCOME_WORDS[outcome].meaning}>
                  {OUTCOME_WORDS[outcome].label}
                </span>
                <Link className="what" href={`/actions#action-${encodeURIComponent(action.action_id)}`}>
                  {action.description || action.action_type.replaceAll("_", " ")}
                </Link>
                {savedMsPerDay > 0 && <span className="muted">saves {perDay(savedMsPerDay)}</span>}
                <span className="muted">{new Date(action.created_at).toLocaleString()}</span>
              </li>
            ))}
          </ul>
          {summary.items.length > SHOWN && (
            <Link href="/actions">
              and {plural(summary.items.length - SHOWN, "earlier action")} on the Actions page →
            </Link>
          )}
        </>
      )}
    </section>
  );
}
