// "What StartupMonkey did this week": a database's actions of the last 7 days (or since it was
// registered, when that is more recent) by outcome, and the time its kept fixes save, taken from
// the ledger as verification recorded it (never recomputed here). Pure; unit-tested in
// summary.test.ts.
import type { Action, LedgerEntry } from "@/lib/types";

export const WEEK_MS = 7 * 24 * 3_600_000;

/** Where an action ended up, in the order the summary lists them. */
export const OUTCOMES = [
  "kept",
  "rolled_back",
  "no_effect",
  "failed",
  "awaiting_approval",
  "verifying",
  "done",
  "in_progress",
  "suggested",
  "rejected",
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** Each outcome in words: a label, and what it means. */
export const OUTCOME_WORDS: Record<Outcome, { label: string; meaning: string; tone: "good" | "bad" | "wait" | "neutral" }> = {
  kept: { label: "kept", meaning: "done, measured, and kept because it helped", tone: "good" },
  rolled_back: { label: "rolled back", meaning: "undone, by verification or by you", tone: "bad" },
  no_effect: { label: "no effect", meaning: "done, but the measurements did not move", tone: "neutral" },
  failed: { label: "failed", meaning: "could not be done; the action says why", tone: "bad" },
  awaiting_approval: { label: "awaiting approval", meaning: "waiting for you on the Actions page", tone: "wait" },
  verifying: { label: "being verified", meaning: "done; before and after are being compared", tone: "wait" },
  done: { label: "done", meaning: "done; nothing to measure afterwards", tone: "good" },
  in_progress: { label: "in progress", meaning: "queued or running now", tone: "wait" },
  suggested: { label: "suggested", meaning: "a recommendation for a person, never run", tone: "neutral" },
  rejected: { label: "rejected", meaning: "you said no", tone: "neutral" },
};

/** An action's outcome: its status, then what verification decided. */
export function outcomeOf(action: Pick<Action, "status">, entry?: Pick<LedgerEntry, "state">): Outcome {
  switch (action.status) {
    case "rolled_back":
      return "rolled_back";
    case "failed":
      return "failed";
    case "pending_approval":
      return "awaiting_approval";
    case "rejected":
      return "rejected";
    case "suggested":
    case "pending_implementation":
      return "suggested";
    case "queued":
    case "approved":
    case "executing":
      return "in_progress";
    case "completed":
      switch (entry?.state) {
        case "kept":
          return "kept";
        case "rolled_back":
          return "rolled_back";
        case "no_effect":
          return "no_effect";
        case "verifying":
          return "verifying";
        default:
          return "done";
      }
  }
}

export interface SummaryItem {
  action: Action;
  outcome: Outcome;
  /** The ledger's time saved (ms of database time per day), only for a kept action. */
  savedMsPerDay: number;
  /** The ledger's write cost (ms per day added to the table's writes), only for a kept action. */
  writeCostMsPerDay: number;
}

export interface Summary {
  /** The start of the period (ms since the epoch): a week ago, or the registration if later. */
  since: number;
  /** True when the period is shorter than a week because the database was registered since. */
  partial: boolean;
  /** The actions created in the period, newest first. */
  items: SummaryItem[];
  /** Actions per outcome, in `OUTCOMES` order, only the outcomes that occur. */
  counts: [Outcome, number][];
  /** Sums of the kept actions' ledger figures (ms per day). */
  savedMsPerDay: number;
  writeCostMsPerDay: number;
}

/**
 * The summary at `now` (ms) of one database's `actions` and `ledger`, for the database registered
 * at `registeredAt` (unix seconds; 0 when unknown).
 */
export function weeklySummary(actions: Action[], ledger: LedgerEntry[], registeredAt: number, now: number): Summary {
  const weekAgo = now - WEEK_MS;
  const registered = registeredAt > 0 ? registeredAt * 1000 : 0;
  const since = Math.max(weekAgo, registered);
  const entries = new Map(ledger.map((e) => [e.action_id, e]));
  const items = actions
    .map((action) => ({ action, at: Date.parse(action.created_at) }))
    .filter(({ at }) => !Number.isNaN(at) && at >= since)
    .sort((a, b) => b.at - a.at)
    .map(({ action }): SummaryItem => {
      const entry = entries.get(action.action_id);
      const outcome = outcomeOf(action, entry);
      const kept = outcome === "kept" && entry !== undefined;
      return {
        action,
        outcome,
        savedMsPerDay: kept ? Math.max(0, entry.time_saved_ms_per_day) : 0,
        writeCostMsPerDay: kept ? Math.max(0, entry.write_cost_ms_per_day) : 0,
      };
    });
  const counts = OUTCOMES.map((o): [Outcome, number] => [o, items.filter((i) => i.outcome === o).length]).filter(([, n]) => n > 0);
  return {
    since,
    partial: since > weekAgo,
    items,
    counts,
    savedMsPerDay: items.reduce((sum, i) => sum + i.savedMsPerDay, 0),
    writeCostMsPerDay: items.reduce((sum, i) => sum + i.writeCostMsPerDay, 0),
  };
}

/** The period in words: "in the last 7 days", or "since 3 March" when the database is younger. */
export function periodWords(summary: Pick<Summary, "since" | "partial">): string {
  if (!summary.partial) return "in the last 7 days";
  const date = new Date(summary.since).toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric" });
  return `since ${date}, when it started watching`;
}

/** "1 action" / "3 actions". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
