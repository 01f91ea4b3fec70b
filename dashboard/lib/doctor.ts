// The gateway's doctor report (GET /databases/{id}/doctor), checked field by field: a reply of
// another shape is an error with the field's name, never a half-drawn panel.

import type { DoctorCheck, DoctorReport } from "./types";

export type { DoctorCheck, DoctorReport };

function field<T>(object: Record<string, unknown>, name: string, kind: "string" | "boolean" | "number"): T {
  const value = object[name];
  if (typeof value !== kind) throw new Error(`doctor report: ${name} is not a ${kind}`);
  return value as T;
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`doctor report: ${what} is not an object`);
  return value as Record<string, unknown>;
}

export function parseDoctorReport(data: unknown): DoctorReport {
  const report = record(data, "the reply");
  if (!Array.isArray(report.checks)) throw new Error("doctor report: checks is not a list");
  const checks = report.checks.map((item, i): DoctorCheck => {
    const c = record(item, `checks[${i}]`);
    const grant = c.grant;
    if (grant !== null && typeof grant !== "string") throw new Error(`doctor report: checks[${i}].grant is not a string or null`);
    return {
      check: field(c, "check", "string"),
      ok: field(c, "ok", "boolean"),
      detail: field(c, "detail", "string"),
      needed_for: field(c, "needed_for", "string"),
      grant,
    };
  });
  return {
    database: field(report, "database", "string"),
    role: field(report, "role", "string"),
    server_version: field(report, "server_version", "string"),
    superuser: field(report, "superuser", "boolean"),
    checks,
    missing: field(report, "missing", "number"),
    grants: field(report, "grants", "string"),
  };
}
