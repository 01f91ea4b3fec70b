// Pure helpers of the charts (components/Chart.tsx), unit-tested in chart.test.ts.
import type { Action } from "./types";

/** An action drawn on a chart: where it ran, and which it was. */
export interface ChartMarker {
  /** Unix seconds. */
  at: number;
  id: string;
  label: string;
}

/** A value drawn as a dashed horizontal segment from `from` to `to` (unix seconds). */
export interface ChartLevel {
  from: number;
  to: number;
  value: number;
  /** The CSS variable of its colour ("--neutral"). */
  colour: string;
  label: string;
}

/** The x range drawn: the window given, else the data's own span (at least a minute). */
export function chartRange(times: number[], from?: number, to?: number): [number, number] {
  const first = times.length ? Math.min(...times) : Date.now() / 1000 - 60;
  const last = times.length ? Math.max(...times) : Date.now() / 1000;
  const min = from ?? first;
  const max = to ?? Math.max(last, min + 60);
  return [min, max];
}

/** The markers of the actions that ran: at completion, or at the start of one still running. */
export function actionMarkers(actions: Action[]): ChartMarker[] {
  return actions.flatMap((a) => {
    const when = a.completed || a.started;
    const at = when ? Date.parse(when) / 1000 : Number.NaN;
    if (!Number.isFinite(at)) return [];
    return [{ at, id: a.action_id, label: `${a.action_type} ${a.status.replace("_", " ")}: ${a.description ?? a.message}` }];
  });
}

/** A count, without decimals. */
export function count(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en") : "–";
}
