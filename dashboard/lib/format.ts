// Pure formatting and grouping, unit-tested in format.test.ts.

export function ms(value: number | undefined | null): string {
  if (value === undefined || value === null || Number.isNaN(value)) return "–";
  if (value >= 1000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 10) return `${value.toFixed(0)} ms`;
  return `${value.toFixed(2)} ms`;
}

export function percent(ratio: number | undefined | null): string {
  if (ratio === undefined || ratio === null || Number.isNaN(ratio)) return "–";
  return `${(ratio * 100).toFixed(ratio >= 0.995 || ratio === 0 ? 0 : 1)} %`;
}

export function bytes(value: number | undefined | null): string {
  if (!value) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = value;
  let unit = 0;
  while (v >= 1024 && unit < units.length - 1) {
    v /= 1024;
    unit += 1;
  }
  return `${v.toFixed(v >= 10 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** Milliseconds per day as the most readable unit ("3.2 min/day"). */
export function perDay(msPerDay: number): string {
  if (msPerDay >= 3_600_000) return `${(msPerDay / 3_600_000).toFixed(1)} h/day`;
  if (msPerDay >= 60_000) return `${(msPerDay / 60_000).toFixed(1)} min/day`;
  return `${(msPerDay / 1000).toFixed(1)} s/day`;
}

/** The visual tone of a status word. */
export function tone(status: string): "good" | "bad" | "wait" | "neutral" {
  if (["completed", "kept", "healthy", "verified"].includes(status)) return "good";
  if (["failed", "rolled_back", "critical", "unreachable", "rejected"].includes(status)) return "bad";
  if (["pending_approval", "queued", "approved", "executing", "verifying", "warning", "degraded"].includes(status)) return "wait";
  return "neutral";
}

/** Counts of items by a key, in first-seen order. */
export function countBy<T>(items: T[], key: (item: T) => string): [string, number][] {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return [...counts.entries()];
}

/** The original's id rule: lower case, non a-z0-9 to "_", repeats collapsed, trimmed. */
export function idFromName(name: string): string {
  const id = name
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "_")
    .replace(/_+/g, "_")
    .replace(/^_|_$/g, "");
  return id || "database";
}
