import { describe, expect, it } from "vitest";

import { outcomeOf, periodWords, plural, weeklySummary, WEEK_MS } from "./summary";
import type { Action, LedgerEntry } from "./types";

const NOW = Date.parse("2025-03-10T12:00:00Z");
const DAY = 24 * 3_600_000;

function action(id: string, status: Action["status"], ageMs: number): Action {
  return {
    action_id: id,
    detection_id: `d-${id}`,
    action_type: "create_index",
    database_id: "shop",
    status,
    message: "",
    error: null,
    created_at: new Date(NOW - ageMs).toISOString(),
    started: "",
    completed: "",
    updated_at: 0,
    can_rollback: true,
    rolledback: status === "rolled_back",
    description: `index ${id}`,
    plan: {},
    detection_key: null,
    changes: {},
  };
}

function entry(id: string, state: LedgerEntry["state"], saved: number, writeCost = 0): LedgerEntry {
  return {
    action_id: id,
    database_id: "shop",
    detection_id: `d-${id}`,
    detection_key: "",
    action_type: "create_index",
    state,
    reason: "",
    started_at: "",
    decided_at: "",
    cycles: 10,
    time_saved_ms_per_day: saved,
    write_cost_ms_per_day: writeCost,
    storage_bytes: 0,
    served: [],
  };
}

describe("outcomeOf", () => {
  it("reads the action's status, then verification's decision", () => {
    expect(outcomeOf({ status: "pending_approval" })).toBe("awaiting_approval");
    expect(outcomeOf({ status: "failed" })).toBe("failed");
    expect(outcomeOf({ status: "executing" })).toBe("in_progress");
    expect(outcomeOf({ status: "pending_implementation" })).toBe("suggested");
    expect(outcomeOf({ status: "completed" })).toBe("done");
    expect(outcomeOf({ status: "completed" }, { state: "verifying" })).toBe("verifying");
    expect(outcomeOf({ status: "completed" }, { state: "kept" })).toBe("kept");
    expect(outcomeOf({ status: "completed" }, { state: "no_effect" })).toBe("no_effect");
    expect(outcomeOf({ status: "completed" }, { state: "not_judged" })).toBe("done");
  });

  it("calls an action you rolled back after it was kept rolled back", () => {
    expect(outcomeOf({ status: "rolled_back" }, { state: "kept" })).toBe("rolled_back");
  });
});

describe("weeklySummary", () => {
  it("counts the last 7 days' actions by outcome and sums only the kept ones' ledger figures", () => {
    const actions = [
      action("kept", "completed", 2 * DAY),
      action("undone", "rolled_back", 3 * DAY),
      action("kept-then-undone", "rolled_back", 4 * DAY),
      action("waiting", "pending_approval", 1000),
      action("measuring", "completed", DAY),
      action("old", "completed", 8 * DAY),
    ];
    const ledger = [
      entry("kept", "kept", 46 * 3_600_000, 60_000),
      entry("undone", "rolled_back", 0),
      entry("kept-then-undone", "kept", 5 * 3_600_000),
      entry("measuring", "verifying", 9_000_000),
      entry("old", "kept", 1_000_000),
    ];
    const s = weeklySummary(actions, ledger, 0, NOW);
    expect(s.partial).toBe(false);
    expect(s.since).toBe(NOW - WEEK_MS);
    expect(s.items.map((i) => i.action.action_id)).toEqual(["waiting", "measuring", "kept", "undone", "kept-then-undone"]);
    expect(s.counts).toEqual([
      ["kept", 1],
      ["rolled_back", 2],
      ["awaiting_approval", 1],
      ["verifying", 1],
    ]);
    // Neither the one still measured, nor the rolled back one, nor the one older than a week.
    expect(s.savedMsPerDay).toBe(46 * 3_600_000);
    expect(s.writeCostMsPerDay).toBe(60_000);
  });

  it("starts at the registration when the database is younger than a week", () => {
    const registered = (NOW - 2 * DAY) / 1000;
    const s = weeklySummary([action("before", "completed", 3 * DAY), action("after", "failed", DAY)], [], registered, NOW);
    expect(s.partial).toBe(true);
    expect(s.since).toBe(NOW - 2 * DAY);
    expect(s.items.map((i) => i.action.action_id)).toEqual(["after"]);
    expect(periodWords(s)).toBe("since 8 March 2025, when it started watching");
    expect(periodWords({ since: NOW - WEEK_MS, partial: false })).toBe("in the last 7 days");
  });

  it("is empty, not zero-filled, when nothing happened", () => {
    const s = weeklySummary([], [], 0, NOW);
    expect(s.items).toEqual([]);
    expect(s.counts).toEqual([]);
    expect(s.savedMsPerDay).toBe(0);
  });

  it("never counts a negative figure", () => {
    const s = weeklySummary([action("a", "completed", DAY)], [entry("a", "kept", -5)], 0, NOW);
    expect(s.savedMsPerDay).toBe(0);
  });
});

describe("plural", () => {
  it("says one action and two actions", () => {
    expect(plural(1, "action")).toBe("1 action");
    expect(plural(2, "action")).toBe("2 actions");
  });
});
