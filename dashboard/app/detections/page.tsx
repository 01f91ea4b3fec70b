"use client";
// Detections: what is wrong now, with the evidence and the recommendation; new ones appear live.
import { Problem } from "@/components/Problem";
import { useShell } from "@/components/Shell";
import { tone } from "@/lib/format";
import { useData } from "@/lib/useData";

export default function DetectionsPage() {
  const { selected } = useShell();
  const detections = useData("/detections", { database_id: selected || undefined }, ["detection", "action"]);
  const list = detections.data ?? [];
  return (
    <>
      <Problem what="the detections" error={detections.error} />
      {detections.data?.length === 0 && (
        <p className="muted">
          Nothing detected: the database looks healthy. The analyser checks every reading the collector takes (every collection
          interval); a problem appears here as soon as it is found, without reloading.
        </p>
      )}
      {list.map((d) => (
        <div key={d.id} className="card" data-testid="detection">
          <div className="row">
            <span className={`badge ${tone(d.severity)}`}>{d.severity}</span>
            <span className="badge neutral">{d.detector_name}</span>
            <span className="muted">{new Date(d.timestamp * 1000).toLocaleString()}</span>
          </div>
          <h3 style={{ marginTop: 8 }}>{d.title}</h3>
          <p>{d.description}</p>
          <p>
            <strong>Recommendation:</strong> {d.recommendation}
          </p>
          <details>
            <summary className="muted">Evidence</summary>
            <pre>{JSON.stringify(d.evidence, null, 2)}</pre>
          </details>
        </div>
      ))}
    </>
  );
}
