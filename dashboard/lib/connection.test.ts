import { describe, expect, it } from "vitest";

import { describeLive, retryDelay } from "./connection";

describe("retryDelay", () => {
  it("doubles from one second up to fifteen", () => {
    expect([1, 2, 3, 4, 5, 9].map(retryDelay)).toEqual([1000, 2000, 4000, 8000, 15000, 15000]);
  });
});

describe("describeLive", () => {
  it("says when the stream dropped, when it is tried again and what to check", () => {
    const since = Date.parse("2025-03-10T12:00:00Z");
    const d = describeLive({ kind: "down", since, retryAt: since + 4000, attempt: 3 }, since + 1000);
    expect(d.label).toBe("Offline");
    expect(d.tone).toBe("bad");
    expect(d.detail).toContain("may be out of date");
    expect(d.detail).toContain("Trying again in 3 s (attempt 3)");
    expect(d.detail).toContain("gateway.log");
    expect(describeLive({ kind: "down", since, retryAt: since, attempt: 1 }, since + 10).detail).toContain("Trying again now");
  });

  it("says live when it is", () => {
    expect(describeLive({ kind: "live" }, 0)).toMatchObject({ label: "Live", tone: "good" });
    expect(describeLive({ kind: "connecting" }, 0).tone).toBe("wait");
  });
});
