import { describe, expect, it } from "vitest";

import { actionMarkers, chartRange } from "./chart";
import type { Action } from "./types";

const action = (over: Partial<Action>): Action =>
  ({
    action_id: "a1",
    detection_id: "d1",
    action_type: "create_index",
    database_id: "db",
    status: "completed",
    message: "m",
    created_at: "2026-01-01T00:00:00Z",
    started: "2026-01-01T00:00:10Z",
    completed: "2026-01-01T00:00:20Z",
    updated_at: 0,
    can_rollback: true,
    rolledback: false,
    plan: {},
    changes: {},
    description: "index posts(user_id)",
    ...over,
  }) as Action;

describe("chart", () => {
  it("draws the window given, else the data's span of at least a minute", () => {
    expect(chartRange([100, 130], 0, 3600)).toEqual([0, 3600]);
    expect(chartRange([100, 130])).toEqual([100, 160]);
    expect(chartRange([100, 500])).toEqual([100, 500]);
  });

  it("marks an action where it completed, or started, and never one that did not run", () => {
    const t = Date.parse("2026-01-01T00:00:20Z") / 1000;
    expect(actionMarkers([action({})])).toEqual([{ at: t, id: "a1", label: "create_index completed: index posts(user_id)" }]);
    expect(actionMarkers([action({ completed: "", status: "executing" })])[0]?.at).toBe(t - 10);
    expect(actionMarkers([action({ completed: "", started: "", status: "pending_approval" })])).toEqual([]);
  });
});
