"use client";
// Sign-in with the gateway's token; the gateway answers with an HTTP-only session cookie.
import { useState } from "react";

import { api } from "@/lib/api";

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  return (
    <form
      className="center card"
      onSubmit={async (event) => {
        event.preventDefault();
        try {
          await api("post", "/auth/login", { body: { token } });
          onSignedIn();
        } catch (e) {
          setError((e as Error).message);
        }
      }}
    >
      <h3>Sign in to StartupMonkey</h3>
      <p className="muted">
        Use the gateway token: <code>GATEWAY_TOKEN</code>, or the one <code>make up</code> printed (kept in
        <code> .startupmonkey/gateway.token</code>).
      </p>
      <label>
        Token
        <input type="password" value={token} onChange={(e) => setToken(e.target.value)} autoFocus />
      </label>
      {error && <p className="error">{error}</p>}
      <button className="primary" type="submit" disabled={!token}>
        Sign in
      </button>
    </form>
  );
}
