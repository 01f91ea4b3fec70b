// What an action's card shows of the statements it served (components/ActionLatency.tsx): which
// window of the statement history covers it, their combined mean time per call over that window,
// which points fall before and after it, and the verification's decision in words. Unit-tested in
// actionLatency.test.ts.
import { ms, perDay } from "./format";
import { numberAt } from "./json";
import type { LedgerEntry, QueriesReport } from "./types";

/** The history windows the gateway keeps (`GET /queries?window=`), shortest first. */
export const WINDOWS = [
  { window: "1h", seconds: 3600 },
  { window: "24h", seconds: 86_400 },
  { window: "7d", seconds: 604_800 },
] as const;
const LONGEST = WINDOWS[2];

/** The shortest window that shows the action with some history before it (it ran no later than
 * four fifths of the way back), else the longest that still holds it; null when it is older. */
export function windowFor(startedAt: number, now: number): (typeof WINDOWS)[number] | null {
  const age = now - startedAt;
  if (age > LONGEST.seconds) return null;
  return WINDOWS.find((w) => age <= w.seconds * 0.8) ?? LONGEST;
}

export interface ServedHistory {
  /** Unix seconds of each history point, oldest first. */
  times: number[];
  /** The served statements' calls and time summed per point: total time / calls, NaN without calls. */
  means: number[];
  /** Which history points ended before the action started, and which began after it finished. */
  phase: ("before" | "during" | "after")[];
  /** The served queryids the report has a history for. */
  found: string[];
}

/** The served statements' combined mean time per call at each history point of `report`. */
export function servedHistory(report: QueriesReport, served: string[], startedAt: number, completedAt: number): ServedHistory {
  const points = new Map<number, { calls: number; time: number }>();
  const found: string[] = [];
  for (const s of report.statements) {
    if (!served.includes(s.queryid)) continue;
    found.push(s.queryid);
    for (const p of s.history) {
      const sum = points.get(p.at) ?? { calls: 0, time: 0 };
      sum.calls += p.calls;
      sum.time += p.total_time_ms;
      points.set(p.at, sum);
    }
  }
  const times = [...points.keys()].sort((a, b) => a - b);
  const means = times.map((at) => {
    const { calls, time } = points.get(at)!;
    return calls > 0 ? time / calls : Number.NaN;
  });
  const phase = times.map((at) => (at + report.bucket_seconds <= startedAt ? "before" : at >= completedAt ? "after" : "during"));
  return { times, means, phase, found };
}

function ago(seconds: number): string {
  if (seconds >= 86_400) return `${(seconds / 86_400).toFixed(1)} days`;
  if (seconds >= 3600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.max(1, Math.round(seconds / 60))} min`;
}

/** Why there is no chart (null when there is one): said plainly, the figures shown anyway. */
export function missingHistory(args: {
  startedAt: number;
  now: number;
  served: string[];
  report: QueriesReport | null;
  history: ServedHistory | null;
}): string | null {
  const { startedAt, now, served, report, history } = args;
  if (served.length === 0) return "The verification names no statement this action served, so there is no latency to chart; its figures are below.";
  if (now - startedAt > LONGEST.seconds)
    return `This action ran ${ago(now - startedAt)} ago; the statement history reaches back 7 days, so only the verification's figures are shown.`;
  if (!report) return null;
  if (report.history_since === null || report.history_since === undefined || report.history_since > startedAt) {
    const since = report.history_since ? ` It starts at ${new Date(report.history_since * 1000).toLocaleString()}.` : "";
    return `The statement history does not reach back to this action: the gateway keeps it in memory and has been restarted since the action ran at ${new Date(startedAt * 1000).toLocaleString()}.${since} Only the verification's figures are shown.`;
  }
  if (!history || history.found.length === 0)
    return "The served statements are not among the 20 costliest of this window, so the history holds no points for them; only the verification's figures are shown.";
  return null;
}

export interface Figures {
  /** The served statements' mean time per call the verification measured before the action. */
  beforeMs?: number;
  /** … and after it; undefined until the served statements ran again. */
  afterMs?: number;
  beforeCalls?: number;
  afterCalls?: number;
}

export function figures(entry: LedgerEntry): Figures {
  const beforeCalls = numberAt(entry.before, "served", "calls");
  const afterCalls = numberAt(entry.after, "served", "calls");
  return {
    beforeMs: beforeCalls ? numberAt(entry.before, "served", "mean_ms") : undefined,
    afterMs: afterCalls ? numberAt(entry.after, "served", "mean_ms") : undefined,
    beforeCalls,
    afterCalls,
  };
}

function change(before: number, after: number): string {
  if (before <= 0) return "";
  const ratio = (before - after) / before;
  // One decimal where a whole number would round to 0 % or 100 %.
  const pct = Math.abs(ratio * 100).toFixed(Math.abs(ratio) >= 0.1 && Math.abs(ratio) < 0.995 ? 0 : 1);
  return ratio >= 0 ? ` (${pct} % faster)` : ` (${pct} % slower)`;
}

/** The decision and its figures, in words (its reason is shown beside it, from the ledger). */
export function decisionWords(entry: LedgerEntry): string {
  const f = figures(entry);
  const measured =
    f.beforeMs !== undefined && f.afterMs !== undefined
      ? `the served statements' mean time per call went from ${ms(f.beforeMs)} (over ${f.beforeCalls} calls before) to ${ms(f.afterMs)} (over ${f.afterCalls} calls after)${change(f.beforeMs, f.afterMs)}`
      : f.beforeMs !== undefined
        ? `the served statements took ${ms(f.beforeMs)} per call before (over ${f.beforeCalls} calls); not yet measured after`
        : "no mean time of the served statements was measured before it";
  const over = `${entry.cycles} collection cycle${entry.cycles === 1 ? "" : "s"}`;
  switch (entry.state) {
    case "kept": {
      const saved = entry.time_saved_ms_per_day > 0 ? `; it saves ${perDay(entry.time_saved_ms_per_day)} of database time at the call rate seen before (or after, if lower)` : "";
      const cost = entry.write_cost_ms_per_day > 0 ? ` and costs ${perDay(entry.write_cost_ms_per_day)} on the table's writes` : "";
      return `Kept after ${over}: ${measured}${saved}${cost}.`;
    }
    case "rolled_back":
      return `Rolled back after ${over}: ${measured}.`;
    case "no_effect":
      return `No effect after ${over}: ${measured}.`;
    case "not_judged":
      return `Not judged: ${measured}.`;
    default:
      return `Being verified (${over} so far): ${measured}.`;
  }
}
