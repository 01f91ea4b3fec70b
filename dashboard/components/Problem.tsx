// A read from the gateway that failed: what could not be read, the gateway's own reason, and what
// to do about it. The data hooks try again by themselves (every 15 s and when the live stream
// comes back), so the line says so.
export function Problem({ what, error }: { what: string; error: string }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      Could not read {what}: {error}. Check that the gateway and knowledge are running (<code>make up</code> writes their logs to{" "}
      <code>.startupmonkey/logs/</code>); this page tries again every 15 s and as soon as the live stream is back.
    </p>
  );
}
