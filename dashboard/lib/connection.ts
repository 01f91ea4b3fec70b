// The live stream's state in words, and how long to wait before opening it again: pure, unit-tested
// in connection.test.ts; lib/live.ts holds the one EventSource and reports its state.

export type LiveState =
  | { kind: "connecting" }
  | { kind: "live" }
  /** The stream dropped at `since` (ms since the epoch); the next try is at `retryAt`. */
  | { kind: "down"; since: number; retryAt: number; attempt: number };

/** The wait before the `attempt`th reopening (1, 2, 4 … seconds, at most 15). */
export function retryDelay(attempt: number): number {
  return Math.min(15_000, 1000 * 2 ** Math.max(0, attempt - 1));
}

/** A clock time as people read it ("14:03:27"). */
function clock(at: number): string {
  return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** What the header says of the live stream at `now`: a short label and a sentence saying what it means. */
export function describeLive(state: LiveState, now: number): { label: string; detail: string; tone: "good" | "wait" | "bad" } {
  switch (state.kind) {
    case "live":
      return { label: "Live", detail: "New detections and actions appear here as they happen.", tone: "good" };
    case "connecting":
      return { label: "Connecting…", detail: "Opening the live stream from the gateway.", tone: "wait" };
    case "down": {
      const seconds = Math.max(0, Math.ceil((state.retryAt - now) / 1000));
      return {
        label: "Offline",
        detail:
          `The live stream from the gateway dropped at ${clock(state.since)}; what you see may be out of date. ` +
          (seconds > 0 ? `Trying again in ${seconds} s` : "Trying again now") +
          ` (attempt ${state.attempt}). If this lasts, check that the gateway is running (make up logs it in .startupmonkey/logs/gateway.log).`,
        tone: "bad",
      };
    }
  }
}
