import { describe, expect, it } from "vitest";

import { coverage, drawnFrom, pointWidth } from "./queries";
import type { QueriesReport } from "./types";

const report = (over: Partial<QueriesReport>): QueriesReport =>
  ({
    database_id: "db",
    window: "1h",
    window_seconds: 3600,
    until: 10_000,
    history_since: 9_880,
    covered_seconds: 120,
    bucket_seconds: 20,
    total_calls: 1,
    total_time_ms: 1,
    statements: [],
    actions: [],
    ...over,
  }) as QueriesReport;

describe("queries", () => {
  it("names a point's width", () => {
    expect(pointWidth(20)).toBe("20-s");
    expect(pointWidth(900)).toBe("15-min");
    expect(pointWidth(10_800)).toBe("3-h");
  });

  it("says when the history covers less than the window, and when nothing was heard", () => {
    expect(coverage(report({}))).toContain("covers 2 min of the 1.0 h asked");
    expect(coverage(report({ covered_seconds: 3600 }))).toBe("Figures over the last 1.0 h, one history point per 20-s interval.");
    expect(coverage(report({ history_since: null }))).toContain("Nothing heard of this database yet");
  });

  it("draws the window, or from a little before the history when it covers less", () => {
    expect(drawnFrom(report({}))).toBe(9_880 - 60);
    expect(drawnFrom(report({ history_since: 1_000 }))).toBe(10_000 - 3600);
    expect(drawnFrom(report({ history_since: null }))).toBe(10_000 - 3600);
  });
});
