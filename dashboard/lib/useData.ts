"use client";
// Data from the gateway that stays current: fetched once, then again whenever a live event of
// one of `kinds` arrives (at most every 500 ms) or the live stream comes back after a drop, and
// every 15 s as a safety net. Its type is what
// the gateway's document says `path` answers. `params` fill the path's `{name}` segments.
import { useEffect, useRef, useState } from "react";

import { api, type CallOptions, type PathWith, type Reply } from "@/lib/api";
import { useLive, type LiveKind } from "@/lib/live";

export function useData<P extends PathWith<"get">>(
  path: P | null,
  query: CallOptions<P, "get">["query"],
  kinds: Exclude<LiveKind, "reconnected">[],
  params?: Record<string, string>,
): { data: Reply<P> | null; error: string; reload: () => void } {
  const [data, setData] = useState<Reply<P> | null>(null);
  const [error, setError] = useState("");
  const [tick, setTick] = useState(0);
  const pending = useRef(false);
  const search = JSON.stringify(query ?? {});
  const segments = JSON.stringify(params ?? {});

  useEffect(() => {
    if (!path) return;
    let current = true;
    api("get", path, { query: JSON.parse(search), params: JSON.parse(segments) }).then(
      (value) => {
        if (!current) return;
        setData(value);
        setError("");
      },
      (e: Error) => {
        if (current) setError(e.message);
      },
    );
    return () => {
      current = false;
    };
  }, [path, search, segments, tick]);

  useEffect(() => {
    const timer = setInterval(() => setTick((t) => t + 1), 15_000);
    return () => clearInterval(timer);
  }, []);

  useLive((kind) => {
    if ((kind !== "reconnected" && !kinds.includes(kind)) || pending.current) return;
    pending.current = true;
    setTimeout(() => {
      pending.current = false;
      setTick((t) => t + 1);
    }, 500);
  });

  return { data, error, reload: () => setTick((t) => t + 1) };
}
