import { describe, expect, it } from "vitest";

import { parseDoctorReport } from "./doctor";

const report = {
  database: "app",
  role: "sm-monitor",
  server_version: "15.8",
  superuser: false,
  checks: [
    { check: "connect", ok: true, detail: "PostgreSQL 15.8", needed_for: "everything", grant: null },
    { check: "pg_monitor", ok: false, detail: "not a member", needed_for: "sessions", grant: 'GRANT pg_monitor TO "sm-monitor";' },
  ],
  missing: 1,
  grants: 'GRANT pg_monitor TO "sm-monitor";\n',
};

describe("parseDoctorReport", () => {
  it("reads the gateway's report", () => {
    const parsed = parseDoctorReport(report);
    expect(parsed.missing).toBe(1);
    expect(parsed.checks.map((c) => [c.check, c.ok, c.grant])).toEqual([
      ["connect", true, null],
      ["pg_monitor", false, 'GRANT pg_monitor TO "sm-monitor";'],
    ]);
  });

  it("names the field of a reply of another shape", () => {
    expect(() => parseDoctorReport(null)).toThrow("the reply is not an object");
    expect(() => parseDoctorReport({ ...report, checks: "x" })).toThrow("checks is not a list");
    expect(() => parseDoctorReport({ ...report, checks: [{ ...report.checks[0], ok: "yes" }] })).toThrow("ok is not a boolean");
    expect(() => parseDoctorReport({ ...report, checks: [{ ...report.checks[0], grant: 1 }] })).toThrow("checks[0].grant");
    expect(() => parseDoctorReport({ ...report, missing: "1" })).toThrow("missing is not a number");
  });
});
