import { describe, expect, it } from "vitest";

import { bytes, countBy, idFromName, ms, perDay, percent, tone } from "./format";

describe("format", () => {
  it("writes durations, ratios and sizes for people", () => {
    expect(ms(0.034)).toBe("0.03 ms");
    expect(ms(42.4)).toBe("42 ms");
    expect(ms(2500)).toBe("2.5 s");
    expect(ms(undefined)).toBe("–");
    expect(percent(0.9523)).toBe("95.2 %");
    expect(percent(1)).toBe("100 %");
    expect(bytes(2_252_800)).toBe("2.1 MB");
    expect(perDay(864_000_000)).toBe("240.0 h/day");
    expect(perDay(90_000)).toBe("1.5 min/day");
  });

  it("gives statuses a tone and counts by key", () => {
    expect(tone("kept")).toBe("good");
    expect(tone("rolled_back")).toBe("bad");
    expect(tone("pending_approval")).toBe("wait");
    expect(countBy(["a", "b", "a"], (x) => x)).toEqual([
      ["a", 2],
      ["b", 1],
    ]);
  });

  it("derives database ids as the original did", () => {
    expect(idFromName("Shop DB (prod)")).toBe("shop_db_prod");
    expect(idFromName("!!!")).toBe("database");
  });
});
