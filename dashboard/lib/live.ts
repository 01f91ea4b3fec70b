"use client";
// Live updates: one EventSource on the gateway's /events, reconnecting by itself.
import { useEffect, useRef } from "react";

export type LiveKind = "metrics" | "detection" | "action";

export function useLive(onEvent: (kind: LiveKind, data: unknown) => void): void {
  const handler = useRef(onEvent);
  useEffect(() => {
    handler.current = onEvent;
  }, [onEvent]);
  useEffect(() => {
    const source = new EventSource("/api/events");
    const listen = (kind: LiveKind) => (event: MessageEvent<string>) => {
      try {
        handler.current(kind, JSON.parse(event.data));
      } catch {
        // A malformed event is skipped; the next one still arrives.
      }
    };
    const kinds: LiveKind[] = ["metrics", "detection", "action"];
    const listeners = kinds.map((kind) => [kind, listen(kind)] as const);
    for (const [kind, listener] of listeners) source.addEventListener(kind, listener);
    return () => {
      for (const [kind, listener] of listeners) source.removeEventListener(kind, listener);
      source.close();
    };
  }, []);
}
