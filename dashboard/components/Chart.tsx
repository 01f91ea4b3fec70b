// A small line chart in SVG (no chart library, no CDN): values over time, with min and max.
export function Chart({ title, values, format }: { title: string; values: number[]; format: (v: number) => string }) {
  const width = 300;
  const height = 100;
  const present = values.filter((v) => Number.isFinite(v));
  const min = Math.min(...present, 0);
  const max = Math.max(...present, 1e-9);
  // Points without a value (nothing measured in that cycle) are skipped, not drawn as zero.
  const path = values
    .map((v, i) => [v, i] as const)
    .filter(([v]) => Number.isFinite(v))
    .map(([v, i], n) => {
      const x = values.length > 1 ? (i / (values.length - 1)) * width : 0;
      const y = height - ((v - min) / (max - min || 1)) * height;
      return `${n === 0 ? "M" : "L"}${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
  const last = present[present.length - 1];
  return (
    <div className="card">
      <h3>{title}</h3>
      <div className="big">{last === undefined ? "–" : format(last)}</div>
      <svg className="chart" viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" role="img" aria-label={title}>
        {present.length > 1 && <path d={path} />}
      </svg>
      <p className="muted">
        {present.length} points · min {present.length ? format(Math.min(...present)) : "–"} · max{" "}
        {present.length ? format(Math.max(...present)) : "–"}
      </p>
    </div>
  );
}
