#!/usr/bin/env python3
"""Merges the newest result of each benchmark (bench/results/*-collector.json, *-s1.json,
*-safety.json) into one document in the shape SCENARIOS.md asks for, written as
bench/results/<UTC timestamp>.json with a markdown table beside it (<timestamp>.md).
A figure no benchmark measures yet is null, with the reason in "missing"."""
import datetime
import json
import pathlib
import sys

results = pathlib.Path(__file__).resolve().parent / "results"


def newest(kind):
    files = sorted(results.glob(f"*-{kind}.json"), key=lambda p: int(p.name.split("-")[0]))
    if not files:
        return None, None
    return json.loads(files[-1].read_text()), files[-1].name


collector, collector_file = newest("collector")
s1, s1_file = newest("s1")
safety, safety_file = newest("safety")
if not (collector and s1 and safety):
    sys.exit("run `make bench` first: a collector, s1 and safety result are needed")

document = {
    "generated_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "sources": [collector_file, s1_file, safety_file],
    "scenarios": {
        "S1": {
            "rows": s1["rows"],
            "ttd_s": s1["ttd_s"],
            "ttm_s": s1.get("ttm_s"),
            "tps_before": s1["tps_before"],
            "tps_after": s1["tps_after"],
            "tps_ideal": s1["tps_ideal"],
            "p95_before_ms": s1.get("p95_before_ms"),
            "p95_after_ms": s1.get("p95_after_ms"),
            "false_actions": s1.get("false_actions"),
            "max_lock_wait_ms": safety["max_lock_wait_ms"],
        }
    },
    "overhead_tps_ratio": collector["overhead_tps_ratio"],
    "cycle_ms_10k_tables": collector["cycle_ms_10k_tables"],
    "databases_per_collector_10s": None,
    "rss_mb": None,
    "missing": {
        "databases_per_collector_10s": "the 100-database load benchmark belongs to the scale-out work (issue 9)",
        "rss_mb": "the benchmarks run the services in one process; per-service RSS needs them as separate processes",
    },
}
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
(results / f"{stamp}.json").write_text(json.dumps(document, indent=2) + "\n")
s = document["scenarios"]["S1"]
fmt = lambda v, spec: "–" if v is None else format(v, spec)
table = f"""| measure | value |
|---|---|
| S1 rows | {s['rows']:,} |
| S1 TTD (s) | {fmt(s['ttd_s'], '.1f')} |
| S1 TTM: index built and verified (s) | {fmt(s['ttm_s'], '.1f')} |
| S1 TPS before / after / ideal | {s['tps_before']:,.1f} / {s['tps_after']:,.1f} / {s['tps_ideal']:,.1f} |
| S1 after / ideal | {s['tps_after'] / s['tps_ideal']:.3f} |
| S1 p95 before / after (ms) | {fmt(s['p95_before_ms'], '.2f')} / {fmt(s['p95_after_ms'], '.2f')} |
| S1 false actions | {fmt(s['false_actions'], 'd')} |
| max lock wait during CREATE INDEX CONCURRENTLY on 1M rows (ms) | {s['max_lock_wait_ms']:.1f} |
| collector overhead, TPS ratio on/off at 1 s | {document['overhead_tps_ratio']:.3f} |
| collector cycle at 10,000 tables (ms) | {document['cycle_ms_10k_tables']:.0f} |
"""
(results / f"{stamp}.md").write_text(table)
print(table)
print(f"written to {results / stamp}.json and .md")
