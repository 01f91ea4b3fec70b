"use client";
// A time chart drawn by uPlot (docs/decisions/0010): a time axis over the selected window, the
// value axis in the series' unit, the value under the cursor, and a marker at every action that
// ran in the window — a link to that action — and any reference levels (a dashed horizontal
// segment each, e.g. the mean a verification measured before an action). Points without a value
// are gaps, not zeros.
import { useEffect, useRef, useState } from "react";
import type uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import { chartRange, type ChartLevel, type ChartMarker } from "@/lib/chart";

export type { ChartLevel, ChartMarker } from "@/lib/chart";

export interface ChartProps {
  title: string;
  /** Unix seconds, oldest first. */
  times: number[];
  /** One per time; NaN where nothing was measured. */
  values: number[];
  /** Formats a value with its unit ("3.2 ms", "97 %"). */
  format: (v: number) => string;
  /** What the values are, with the unit, for the legend ("mean time per call, ms"). */
  label: string;
  /** The window shown, unix seconds; defaults to the data's own span. */
  from?: number;
  to?: number;
  markers?: ChartMarker[];
  /** Values drawn as dashed horizontal segments, in the value's unit. */
  levels?: ChartLevel[];
  /** A line under the chart saying what the figures mean. */
  note?: string;
  height?: number;
}

function css(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export function Chart({ title, times, values, format, label, from, to, markers = [], levels = [], note, height = 160 }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [positions, setPositions] = useState<{ marker: ChartMarker; left: number }[]>([]);
  const [theme, setTheme] = useState("");
  const present = values.filter((v) => Number.isFinite(v));
  const range = chartRange(times, from, to);
  const data = JSON.stringify([times, values, range, markers, levels]);

  // The chart is drawn again when the theme changes: its colours are read from the CSS.
  useEffect(() => {
    const observer = new MutationObserver(() => setTheme(document.documentElement.dataset.theme ?? ""));
    observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    return () => observer.disconnect();
  }, []);

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    let cancelled = false;
    let resize: ResizeObserver | undefined;
    const [xs, ys, [min, max], marks, lines] = JSON.parse(data) as [number[], (number | null)[], [number, number], ChartMarker[], ChartLevel[]];
    const top = Math.max(0, ...lines.map((l) => l.value));
    void import("uplot").then(({ default: UPlot }) => {
      if (cancelled) return;
      const text = css("--muted");
      const grid = css("--border");
      const accent = css("--accent");
      const place = (u: uPlot) =>
        setPositions(
          marks
            .filter((m) => m.at >= min && m.at <= max)
            .map((marker) => ({ marker, left: u.bbox.left / devicePixelRatio + u.valToPos(marker.at, "x") })),
        );
      const options: uPlot.Options = {
        width: Math.max(element.clientWidth, 200),
        height,
        scales: { x: { time: true, range: () => [min, max] }, y: { range: (_u, lo, hi) => [Math.min(0, lo ?? 0), Math.max(hi ?? 1, top * 1.1, 1e-9)] } },
        axes: [
          { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
          { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 64, values: (_u, ticks) => ticks.map((t) => format(t)) },
        ],
        series: [
          { value: (_u, v) => (v === null || v === undefined ? "–" : new Date(v * 1000).toLocaleString()) },
          { label, stroke: accent, width: 2, spanGaps: false, points: { show: true, size: 4 }, value: (_u, v) => (v === null || v === undefined ? "–" : format(v)) },
        ],
        cursor: { drag: { x: false, y: false } },
        hooks: {
          ready: [place],
          setSize: [place],
          draw: [
            (u) => {
              const ctx = u.ctx;
              ctx.save();
              ctx.strokeStyle = css("--wait");
              ctx.lineWidth = 2 * devicePixelRatio;
              ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
              for (const m of marks) {
                if (m.at < min || m.at > max) continue;
                const x = Math.round(u.valToPos(m.at, "x", true));
                ctx.beginPath();
                ctx.moveTo(x, u.bbox.top);
                ctx.lineTo(x, u.bbox.top + u.bbox.height);
                ctx.stroke();
              }
              ctx.setLineDash([8 * devicePixelRatio, 4 * devicePixelRatio]);
              for (const l of lines) {
                const start = Math.max(l.from, min);
                const end = Math.min(l.to, max);
                if (end <= start) continue;
                const y = Math.round(u.valToPos(l.value, "y", true));
                const x = u.valToPos(start, "x", true);
                ctx.strokeStyle = css(l.colour);
                ctx.fillStyle = css(l.colour);
                ctx.beginPath();
                ctx.moveTo(x, y);
                ctx.lineTo(u.valToPos(end, "x", true), y);
                ctx.stroke();
                ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
                ctx.textAlign = "left";
                ctx.textBaseline = "bottom";
                // Inside the plot: from the segment's start, or ending at the plot's right edge.
                const text = `${l.label} ${format(l.value)}`;
                const right = u.bbox.left + u.bbox.width;
                ctx.fillText(text, Math.max(u.bbox.left, Math.min(x + 4 * devicePixelRatio, right - ctx.measureText(text).width)), y - 4 * devicePixelRatio);
              }
              ctx.restore();
            },
          ],
        },
      };
      const values = ys.map((v) => (v === null || !Number.isFinite(v) ? null : v));
      plot.current?.destroy();
      plot.current = new UPlot(options, [xs, values], element);
      resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(element.clientWidth, 200), height }));
      resize.observe(element);
    });
    return () => {
      cancelled = true;
      resize?.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [data, label, height, format, theme]);

  const last = present[present.length - 1];
  return (
    <div className="card chart-card">
      <h3>{title}</h3>
      <div className="big">{last === undefined ? "–" : format(last)}</div>
      <div className="chart-box" role="img" aria-label={title}>
        <div ref={box} />
        {positions.map(({ marker, left }) => (
          <a
            key={marker.id}
            className="chart-marker"
            style={{ left }}
            href={`/actions#action-${marker.id}`}
            title={`${marker.label} — open the action`}
            data-testid="action-marker"
          >
            ▼
          </a>
        ))}
      </div>
      <p className="muted">
        {present.length} points · min {present.length ? format(Math.min(...present)) : "–"} · max {present.length ? format(Math.max(...present)) : "–"}
        {markers.length > 0 && " · ▼ an action ran (click to open it)"}
      </p>
      {note && <p className="muted">{note}</p>}
    </div>
  );
}
