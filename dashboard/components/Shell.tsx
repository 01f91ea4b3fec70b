"use client";
// The frame every page shares: sign-in first, then onboarding until it is complete, then the
// sidebar, the database selector and the theme toggle. Pages read the selection from context.
import Link from "next/link";
import { usePathname } from "next/navigation";
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";

import { LiveStatus } from "@/components/LiveStatus";
import { Onboarding } from "@/components/Onboarding";
import { SignIn } from "@/components/SignIn";
import { api } from "@/lib/api";
import type { Database } from "@/lib/types";

interface ShellContext {
  databases: Database[];
  selected: string;
  refreshDatabases: () => Promise<void>;
}

const Context = createContext<ShellContext>({ databases: [], selected: "", refreshDatabases: async () => {} });

export function useShell(): ShellContext {
  return useContext(Context);
}

const PAGES = [
  ["/", "Overview"],
  ["/metrics", "Metrics"],
  ["/queries", "Queries"],
  ["/tables", "Tables"],
  ["/detections", "Detections"],
  ["/actions", "Actions"],
  ["/settings", "Settings"],
] as const;

export function Shell({ children }: { children: ReactNode }) {
  const path = usePathname();
  const [signedIn, setSignedIn] = useState<boolean | null>(null);
  const [onboarded, setOnboarded] = useState<boolean | null>(null);
  const [databases, setDatabases] = useState<Database[]>([]);
  const [selected, setSelected] = useState("");
  const [theme, setTheme] = useState(() =>
    typeof document === "undefined" ? "light" : (document.documentElement.dataset.theme ?? "light"),
  );
  const [problem, setProblem] = useState("");

  const refreshDatabases = useCallback(async () => {
    const list = await api("get", "/databases");
    setDatabases(list);
    setSelected((current) => current || list[0]?.database_id || "");
  }, []);

  const [generation, setGeneration] = useState(0);
  const reload = () => setGeneration((g) => g + 1);

  useEffect(() => {
    let current = true;
    (async () => {
      const me = await api("get", "/auth/me");
      if (!current) return;
      setSignedIn(me.authenticated);
      if (!me.authenticated) return;
      const status = await api("get", "/status");
      if (!current) return;
      setOnboarded(status.onboarding_complete);
      await refreshDatabases();
      setProblem("");
    })().catch((error: Error) => {
      if (current)
        setProblem(`The gateway cannot be reached: ${error.message}. Check that it is running (make up writes its log to .startupmonkey/logs/gateway.log), then reload this page.`);
    });
    return () => {
      current = false;
    };
  }, [generation, refreshDatabases]);

  const toggleTheme = () => {
    const next = theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("sm-theme", next);
    setTheme(next);
  };

  if (problem) return <div className="center card error">{problem}</div>;
  if (signedIn === null) return <div className="center muted">Loading…</div>;
  if (!signedIn) return <SignIn onSignedIn={reload} />;
  if (onboarded === false) return <Onboarding onDone={reload} />;

  const title = PAGES.find(([href]) => href === path)?.[1] ?? "StartupMonkey";
  return (
    <Context.Provider value={{ databases, selected, refreshDatabases }}>
      <div className="shell">
        <aside className="sidebar">
          <h1>StartupMonkey</h1>
          <nav>
            {PAGES.map(([href, label]) => (
              <Link key={href} href={href} className={path === href ? "active" : ""}>
                {label}
              </Link>
            ))}
          </nav>
        </aside>
        <main className="main">
          <div className="header">
            <h2>{title}</h2>
            <div className="row">
              <LiveStatus />
              <select aria-label="Database" value={selected} onChange={(e) => setSelected(e.target.value)}>
                {databases.map((d) => (
                  <option key={d.database_id} value={d.database_id}>
                    {d.database_name || d.database_id}
                  </option>
                ))}
              </select>
              <button onClick={toggleTheme} aria-label="Toggle theme">
                {theme === "dark" ? "☀ Light" : "☾ Dark"}
              </button>
              <button
                onClick={async () => {
                  await api("post", "/auth/logout");
                  setSignedIn(false);
                }}
              >
                Sign out
              </button>
            </div>
          </div>
          {children}
        </main>
      </div>
    </Context.Provider>
  );
}
