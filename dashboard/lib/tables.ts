// Pure wording of the Tables page (app/tables), unit-tested in tables.test.ts: how long ago,
// the share of index scans, what an index's scan count says.
import type { TableIndex, TablesReport, TableStats } from "./types";

/** `unix` seconds as "3 days ago" from `now` (also unix seconds), or "never". */
export function ago(unix: number | null | undefined, now: number): string {
  if (unix === null || unix === undefined) return "never";
  const seconds = Math.max(0, now - unix);
  const [value, unit] =
    seconds < 60
      ? [0, ""]
      : seconds < 3600
        ? [Math.floor(seconds / 60), "min"]
        : seconds < 86_400
          ? [Math.floor(seconds / 3600), "hour"]
          : [Math.floor(seconds / 86_400), "day"];
  if (unit === "") return "just now";
  if (unit === "min") return `${value} min ago`;
  return `${value} ${unit}${value === 1 ? "" : "s"} ago`;
}

/** The later of a manual and an automatic run, and which it was. */
export function latest(manual: number | null | undefined, automatic: number | null | undefined): { at: number | null; how: string } {
  const m = manual ?? null;
  const a = automatic ?? null;
  if (m === null && a === null) return { at: null, how: "" };
  if (a === null || (m !== null && m >= a)) return { at: m, how: "manual" };
  return { at: a, how: "automatic" };
}

/** "12 % of scans used an index", or why there is no share. */
export function indexScanShare(table: Pick<TableStats, "sequential_scans" | "index_scans">): string {
  if (table.index_scans === null || table.index_scans === undefined) return "no index: every read is sequential";
  const total = table.sequential_scans + table.index_scans;
  if (total === 0) return "not read since the statistics were reset";
  return `${Math.round((table.index_scans / total) * 100)} % of scans used an index`;
}

/** What an index's scan count says, in the report's period. */
export function usageText(index: Pick<TableIndex, "usage" | "scans" | "kept_because" | "duplicate_of">, report: Pick<TablesReport, "unused_after_days">): string {
  const parts: string[] = [];
  if (index.usage === "used") parts.push(`${index.scans.toLocaleString("en")} scans`);
  else if (index.usage === "unused") parts.push(`unused: no scans in at least ${report.unused_after_days} days`);
  else if (index.usage === "too_early") parts.push(`no scans yet: too early to tell (needs ${report.unused_after_days} days of counting)`);
  else parts.push(`${index.scans.toLocaleString("en")} scans; kept: ${index.kept_because ?? "it enforces something"}`);
  if (index.duplicate_of) parts.push(`duplicate of ${index.duplicate_of}`);
  return parts.join(" · ");
}

/** "Tables 51–100 of 230", or "No tables". */
export function pageText(report: Pick<TablesReport, "offset" | "total_tables"> & { shown: number }): string {
  if (report.total_tables === 0) return "No tables";
  if (report.shown === 0) return `No tables past ${report.offset} of ${report.total_tables}`;
  return `Tables ${report.offset + 1}–${report.offset + report.shown} of ${report.total_tables}`;
}
