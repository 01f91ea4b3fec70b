import { describe, expect, it } from "vitest";

import { decisionWords, figures, missingHistory, servedHistory, windowFor } from "./actionLatency";
import type { LedgerEntry, QueriesReport, StatementReport } from "./types";

const statement = (queryid: string, history: [number, number, number][]): StatementReport =>
  ({
    queryid,
    query: "SELECT $1",
    calls: 0,
    total_time_ms: 0,
    rows: 0,
    history: history.map(([at, calls, total_time_ms]) => ({ at, calls, total_time_ms, mean_ms: calls ? total_time_ms / calls : null })),
    detections: [],
    actions: [],
  }) as StatementReport;

const report = (over: Partial<QueriesReport>): QueriesReport =>
  ({
    database_id: "db",
    window: "1h",
    window_seconds: 3600,
    until: 10_000,
    history_since: 6_000,
    covered_seconds: 3600,
    bucket_seconds: 20,
    statements: [],
    actions: [],
    ...over,
  }) as QueriesReport;

const entry = (over: Partial<LedgerEntry>): LedgerEntry =>
  ({
    action_id: "a1",
    database_id: "db",
    detection_id: "d1",
    detection_key: "k",
    action_type: "create_index",
    state: "kept",
    reason: "faster",
    started_at: "",
    decided_at: "",
    cycles: 6,
    before: { served: { calls: 40, mean_ms: 12.5 } },
    after: { served: { calls: 800, mean_ms: 0.5, before_mean_ms: 12.5, before_calls: 40 } },
    time_saved_ms_per_day: 7_200_000,
    write_cost_ms_per_day: 0,
    storage_bytes: 8192,
    served: ["1"],
    ...over,
  }) as LedgerEntry;

describe("the action's latency chart", () => {
  it("picks the shortest window that shows some history before the action", () => {
    expect(windowFor(9_000, 10_000)?.window).toBe("1h");
    expect(windowFor(10_000 - 3000, 10_000)?.window).toBe("24h");
    expect(windowFor(10_000 - 2 * 86_400, 10_000)?.window).toBe("7d");
    expect(windowFor(10_000 - 6.5 * 86_400, 10_000)?.window).toBe("7d");
    expect(windowFor(10_000 - 8 * 86_400, 10_000)).toBeNull();
  });

  it("sums the served statements per point and tells the points before, during and after the action", () => {
    const r = report({
      statements: [
        statement("1", [
          [9_000, 10, 100],
          [9_020, 10, 100],
          [9_040, 100, 50],
        ]),
        statement("2", [
          [9_000, 10, 300],
          [9_040, 0, 0],
        ]),
        statement("3", [[9_000, 1000, 1]]),
      ],
    });
    const h = servedHistory(r, ["1", "2", "9"], 9_025, 9_035);
    expect(h.found).toEqual(["1", "2"]);
    expect(h.times).toEqual([9_000, 9_020, 9_040]);
    expect(h.means).toEqual([20, 10, 0.5]);
    // 9_000 + 20 <= 9_025: before; 9_020 holds the start: during; 9_040 >= 9_035: after.
    expect(h.phase).toEqual(["before", "during", "after"]);
  });

  it("a point without calls is a gap, not a zero", () => {
    const h = servedHistory(report({ statements: [statement("1", [[9_000, 0, 0]])] }), ["1"], 9_500, 9_600);
    expect(h.means[0]).toBeNaN();
  });

  it("says plainly when the history does not cover the action", () => {
    const base = { startedAt: 9_000, now: 10_000, served: ["1"] };
    const h = servedHistory(report({ statements: [statement("1", [[9_000, 1, 1]])] }), ["1"], 9_000, 9_010);
    expect(missingHistory({ ...base, report: report({}), history: h })).toBeNull();
    expect(missingHistory({ ...base, report: report({ history_since: 9_500 }), history: h })).toContain("restarted since the action ran");
    expect(missingHistory({ ...base, report: report({ history_since: null }), history: h })).toContain("does not reach back to this action");
    expect(missingHistory({ ...base, startedAt: 10_000 - 8 * 86_400, report: null, history: null })).toBe(
      "This action ran 8.0 days ago; the statement history reaches back 7 days, so only the verification's figures are shown.",
    );
    expect(missingHistory({ ...base, report: report({}), history: servedHistory(report({}), ["1"], 9_000, 9_010) })).toContain("not among the 20 costliest");
    expect(missingHistory({ ...base, served: [], report: report({}), history: h })).toContain("names no statement");
  });

  it("reads the verification's before and after means, the after only once measured", () => {
    expect(figures(entry({}))).toEqual({ beforeMs: 12.5, afterMs: 0.5, beforeCalls: 40, afterCalls: 800 });
    expect(figures(entry({ state: "verifying", after: { served: { calls: 0, mean_ms: 0 } } })).afterMs).toBeUndefined();
  });

  it("puts the decision and its figures in words", () => {
    expect(decisionWords(entry({}))).toBe(
      "Kept after 6 collection cycles: the served statements' mean time per call went from 13 ms (over 40 calls before) to 0.50 ms (over 800 calls after) (96 % faster); it saves 2.0 h/day of database time at the call rate seen before (or after, if lower).",
    );
    expect(decisionWords(entry({ state: "rolled_back", after: { served: { calls: 50, mean_ms: 15 } }, time_saved_ms_per_day: 0 }))).toBe(
      "Rolled back after 6 collection cycles: the served statements' mean time per call went from 13 ms (over 40 calls before) to 15 ms (over 50 calls after) (20 % slower).",
    );
    expect(decisionWords(entry({ state: "verifying", after: { served: { calls: 17, mean_ms: 0.05 } } }))).toContain("to 0.05 ms (over 17 calls after) (99.6 % faster).");
    expect(decisionWords(entry({ state: "no_effect", cycles: 1, after: { served: { calls: 50, mean_ms: 12.4 } } }))).toContain("No effect after 1 collection cycle: ");
    expect(decisionWords(entry({ state: "verifying", cycles: 0, after: { served: { calls: 0, mean_ms: 0 } } }))).toBe(
      "Being verified (0 collection cycles so far): the served statements took 13 ms per call before (over 40 calls); not yet measured after.",
    );
  });
});
