// Reading JSON whose shape the gateway's document leaves open (a detector's evidence, the
// ledger's measurements, the collector's metric snapshots): each value is checked, never cast.

/** The number at `path` inside `value`, or undefined when something on the way is not there. */
export function numberAt(value: unknown, ...path: string[]): number | undefined {
  let here: unknown = value;
  for (const key of path) {
    if (typeof here !== "object" || here === null || Array.isArray(here)) return undefined;
    here = (here as Record<string, unknown>)[key];
  }
  return typeof here === "number" ? here : undefined;
}
