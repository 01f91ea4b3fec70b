import { describe, expect, it } from "vitest";

import { ago, indexScanShare, latest, pageText, usageText } from "./tables";

describe("tables page wording", () => {
  it("says how long ago, or never", () => {
    const now = 1_000_000;
    expect(ago(null, now)).toBe("never");
    expect(ago(now - 5, now)).toBe("just now");
    expect(ago(now - 120, now)).toBe("2 min ago");
    expect(ago(now - 3600, now)).toBe("1 hour ago");
    expect(ago(now - 3 * 86_400, now)).toBe("3 days ago");
    expect(ago(now + 30, now)).toBe("just now");
  });

  it("picks the later of the manual and the automatic run", () => {
    expect(latest(null, null)).toEqual({ at: null, how: "" });
    expect(latest(10, 20)).toEqual({ at: 20, how: "automatic" });
    expect(latest(30, 20)).toEqual({ at: 30, how: "manual" });
    expect(latest(5, null)).toEqual({ at: 5, how: "manual" });
  });

  it("says what share of scans used an index", () => {
    expect(indexScanShare({ sequential_scans: 1, index_scans: 3 })).toBe("75 % of scans used an index");
    expect(indexScanShare({ sequential_scans: 4, index_scans: null })).toBe("no index: every read is sequential");
    expect(indexScanShare({ sequential_scans: 0, index_scans: 0 })).toBe("not read since the statistics were reset");
  });

  it("says what an index's scans mean in the period", () => {
    const report = { unused_after_days: 7 };
    expect(usageText({ usage: "used", scans: 1234, kept_because: null, duplicate_of: null }, report)).toBe("1,234 scans");
    expect(usageText({ usage: "too_early", scans: 0, kept_because: null, duplicate_of: "b" }, report)).toBe(
      "no scans yet: too early to tell (needs 7 days of counting) · duplicate of b",
    );
    expect(usageText({ usage: "unused", scans: 0, kept_because: null, duplicate_of: null }, report)).toBe("unused: no scans in at least 7 days");
    expect(usageText({ usage: "kept", scans: 0, kept_because: "the primary key", duplicate_of: null }, report)).toBe("0 scans; kept: the primary key");
  });

  it("counts the page", () => {
    expect(pageText({ offset: 0, total_tables: 0, shown: 0 })).toBe("No tables");
    expect(pageText({ offset: 50, total_tables: 230, shown: 50 })).toBe("Tables 51–100 of 230");
    expect(pageText({ offset: 300, total_tables: 230, shown: 0 })).toBe("No tables past 300 of 230");
  });
});
