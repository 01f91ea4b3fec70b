"use client";
// Live updates: one EventSource on the gateway's /events shared by every component, opened while
// anyone listens. When it drops for good (the gateway or the proxy answered an error, which an
// EventSource never retries) it is opened again after 1, 2, 4 … 15 s; once it is back, listeners
// hear "reconnected" so they fetch what they missed. Its state is shown in the header.
import { useEffect, useRef, useSyncExternalStore } from "react";

import { retryDelay, type LiveState } from "@/lib/connection";

export type LiveKind = "metrics" | "detection" | "action" | "reconnected";

type Listener = (kind: LiveKind, data: unknown) => void;

const KINDS = ["metrics", "detection", "action"] as const;
const listeners = new Set<Listener>();
const watchers = new Set<() => void>();
const CONNECTING: LiveState = { kind: "connecting" };
let state: LiveState = CONNECTING;
let source: EventSource | null = null;
let timer: ReturnType<typeof setTimeout> | null = null;
let attempt = 0;
let wasDown = false;

function setState(next: LiveState): void {
  state = next;
  for (const watch of watchers) watch();
}

function emit(kind: LiveKind, data: unknown): void {
  for (const listener of listeners) listener(kind, data);
}

function open(): void {
  timer = null;
  const es = new EventSource("/api/events");
  source = es;
  es.onopen = () => {
    attempt = 0;
    setState({ kind: "live" });
    if (wasDown) emit("reconnected", null);
    wasDown = false;
  };
  es.onerror = () => {
    // CONNECTING: the browser retries by itself; CLOSED: it gave up, so we try again.
    wasDown = true;
    const now = Date.now();
    const since = state.kind === "down" ? state.since : now;
    if (es.readyState === EventSource.CLOSED) {
      attempt += 1;
      const delay = retryDelay(attempt);
      setState({ kind: "down", since, retryAt: now + delay, attempt });
      if (source === es) timer = setTimeout(open, delay);
    } else {
      setState({ kind: "down", since, retryAt: now, attempt: attempt + 1 });
    }
  };
  for (const kind of KINDS) {
    es.addEventListener(kind, (event: MessageEvent<string>) => {
      let data: unknown;
      try {
        data = JSON.parse(event.data);
      } catch {
        return; // A malformed event is skipped; the next one still arrives.
      }
      emit(kind, data);
    });
  }
}

function retain(): () => void {
  if (!source && !timer) open();
  return () => {
    if (listeners.size > 0 || watchers.size > 0) return;
    if (timer) clearTimeout(timer);
    timer = null;
    source?.close();
    source = null;
    attempt = 0;
    wasDown = false;
    setState(CONNECTING);
  };
}

/** Calls `onEvent` for every live event (and "reconnected" after the stream came back). */
export function useLive(onEvent: Listener): void {
  const handler = useRef(onEvent);
  useEffect(() => {
    handler.current = onEvent;
  }, [onEvent]);
  useEffect(() => {
    const listener: Listener = (kind, data) => handler.current(kind, data);
    listeners.add(listener);
    const release = retain();
    return () => {
      listeners.delete(listener);
      release();
    };
  }, []);
}

function watch(changed: () => void): () => void {
  watchers.add(changed);
  const release = retain();
  return () => {
    watchers.delete(changed);
    release();
  };
}

/** The live stream's state, kept current. */
export function useLiveState(): LiveState {
  return useSyncExternalStore(
    watch,
    () => state,
    () => CONNECTING,
  );
}
