"use client";
// "Check privileges" for one registered database: the gateway's doctor connects as the monitoring
// role and says, check by check, what it may do and what to grant — with the grants as one
// script to copy and run as a superuser.
import { useState } from "react";

import { api } from "@/lib/api";
import { parseDoctorReport, type DoctorReport } from "@/lib/doctor";

export function DoctorPanel({ databaseId }: { databaseId: string }) {
  const [report, setReport] = useState<DoctorReport | null>(null);
  const [error, setError] = useState("");
  const [checking, setChecking] = useState(false);
  const [copied, setCopied] = useState(false);

  const check = async () => {
    setChecking(true);
    setError("");
    setCopied(false);
    try {
      setReport(parseDoctorReport(await api("get", "/databases/{id}/doctor", { params: { id: databaseId } })));
    } catch (e) {
      setReport(null);
      setError((e as Error).message);
    } finally {
      setChecking(false);
    }
  };

  return (
    <div data-testid={`doctor-${databaseId}`}>
      <button disabled={checking} onClick={check}>
        {checking ? "Checking…" : "Check privileges"}
      </button>
      {error && <p className="error">{error}</p>}
      {report && (
        <div className="card" style={{ marginTop: 8 }}>
          <p className={report.missing === 0 ? "good" : "wait"}>
            Role <strong>{report.role}</strong> on {report.database} (PostgreSQL {report.server_version}):{" "}
            {report.missing === 0 ? "nothing missing" : `${report.missing} missing`}
          </p>
          {report.checks.map((c) => (
            <p key={c.check} className="muted">
              <span className={`badge ${c.ok ? "good" : "bad"}`}>{c.ok ? "ok" : "missing"}</span> <strong>{c.check}</strong>{" "}
              — {c.detail} <em>(for {c.needed_for})</em>
            </p>
          ))}
          {report.grants && (
            <>
              <pre aria-label="Grants script">{report.grants}</pre>
              <button
                onClick={async () => {
                  try {
                    await navigator.clipboard.writeText(report.grants);
                    setCopied(true);
                  } catch {
                    setError("the browser refused the clipboard: select the script and copy it");
                  }
                }}
              >
                {copied ? "Copied" : "Copy grants"}
              </button>
            </>
          )}
        </div>
      )}
    </div>
  );
}
