import { describe, expect, it } from "vitest";

import { numberAt } from "./json";

describe("numberAt", () => {
  it("reads a nested number and nothing else", () => {
    const ledger = { served: { mean_ms: 1.5, calls: "3" } };
    expect(numberAt(ledger, "served", "mean_ms")).toBe(1.5);
    expect(numberAt(ledger, "served", "calls")).toBeUndefined();
    expect(numberAt(ledger, "missing", "mean_ms")).toBeUndefined();
    expect(numberAt(null, "served")).toBeUndefined();
    expect(numberAt([1], "0")).toBeUndefined();
  });
});
