"use client";
// Data from the gateway that stays current: fetched once, then again whenever a live event of
// one of `kinds` arrives (at most every 500 ms), and every 15 s as a safety net.
import { useEffect, useRef, useState } from "react";

import { api } from "@/lib/api";
import { useLive, type LiveKind } from "@/lib/live";

export function useData<T>(path: string | null, kinds: LiveKind[]): { data: T | null; error: string; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState("");
  const [tick, setTick] = useState(0);
  const pending = useRef(false);

  useEffect(() => {
    if (!path) return;
    let current = true;
    api<T>(path).then(
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
  }, [path, tick]);

  useEffect(() => {
    const timer = setInterval(() => setTick((t) => t + 1), 15_000);
    return () => clearInterval(timer);
  }, []);

  useLive((kind) => {
    if (!kinds.includes(kind) || pending.current) return;
    pending.current = true;
    setTimeout(() => {
      pending.current = false;
      setTick((t) => t + 1);
    }, 500);
  });

  return { data, error, reload: () => setTick((t) => t + 1) };
}
