"use client";
// The live stream's state in the header: a dot and a word, with what it means on hover and, when
// it dropped, in a line under the header saying since when, when it is tried again and what to check.
import { useEffect, useState } from "react";

import { describeLive } from "@/lib/connection";
import { useLiveState } from "@/lib/live";

export function LiveStatus() {
  const state = useLiveState();
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (state.kind !== "down") return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [state.kind]);
  const words = describeLive(state, state.kind === "down" ? now : 0);
  return (
    <>
      <span className={`live ${words.tone}`} data-testid="live" data-state={state.kind} title={words.detail} role="status">
        <span className="dot" aria-hidden="true" /> {words.label}
      </span>
      {state.kind === "down" && (
        <p className="error live-detail" data-testid="live-detail">
          {words.detail}
        </p>
      )}
    </>
  );
}
