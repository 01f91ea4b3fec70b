// What the Queries page says of a report, unit-tested in queries.test.ts.
import type { QueriesReport } from "./types";

/** A history point's width in words ("20-s", "15-min", "3-h"). */
export function pointWidth(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}-h`;
  if (seconds % 60 === 0) return `${seconds / 60}-min`;
  return `${seconds}-s`;
}

function duration(seconds: number): string {
  if (seconds >= 86_400) return `${(seconds / 86_400).toFixed(1)} days`;
  if (seconds >= 3600) return `${(seconds / 3600).toFixed(1)} h`;
  if (seconds >= 60) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds)} s`;
}

/** How much of the window the history covers, in words. */
export function coverage(r: QueriesReport): string {
  const window = duration(r.window_seconds);
  if (r.history_since === null || r.history_since === undefined) return `Nothing heard of this database yet: the last ${window} will fill from its first snapshot.`;
  if (r.covered_seconds >= r.window_seconds) return `Figures over the last ${window}, one history point per ${pointWidth(r.bucket_seconds)} interval.`;
  const since = new Date(r.history_since * 1000).toLocaleString();
  return `The history covers ${duration(r.covered_seconds)} of the ${window} asked: the gateway keeps it in memory and has heard this database since ${since}. One point per ${pointWidth(r.bucket_seconds)} interval.`;
}

/** Where the charts start: the window's start, or a little before the history's when it covers
 * less (the page says how much), so a few minutes of history are not drawn as a sliver. */
export function drawnFrom(r: QueriesReport): number {
  const start = r.until - r.window_seconds;
  if (r.history_since === null || r.history_since === undefined) return start;
  return Math.max(start, r.history_since - 3 * r.bucket_seconds);
}
