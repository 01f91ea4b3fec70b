#!/usr/bin/env python3
"""Merges the newest result of each benchmark (bench/results/*-collector.json, *-s1.json,
*-safety.json, *-load.json, *-advisor.json) into one document in the shape SCENARIOS.md asks
for, written as bench/results/<UTC timestamp>.json with a markdown table beside it
(<timestamp>.md).
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
load, load_file = newest("load")
advisor, advisor_file = newest("advisor")
if not (collector and s1 and safety):
    sys.exit("run `make bench` first: a collector, s1 and safety result are needed")
# The load benchmark (tests/system/benches/load.rs): without one, its figures are null.
from_load = lambda key: load.get(key) if load else None
missing = {}
if not load:
    missing = {
        key: "no bench/results/*-load.json yet: run `cargo bench -p system-tests --bench load`"
        for key in ["databases_per_collector_10s", "rss_mb", "analyser_snapshots_per_s",
                    "collector_cycle_ms_p95_100db"]
    }
# The advisor benchmark (tests/system/benches/advisor.rs): without one, its figures are null.
if advisor:
    configurations = advisor["configurations"]
    best = configurations[advisor["best"]]
    advisor_figures = {
        # Agent ÷ best offline set, database time per second of the same workload (goal ≤ 1.05).
        "advisor_workload_ratio": advisor["advisor_workload_ratio"],
        "advisor_storage_ratio": advisor["storage_ratio"],
        "advisor_storage_bytes": {"agent": advisor["agent_storage_bytes"],
                                  "best": advisor["best_storage_bytes"]},
        "advisor_db_ms_per_s": {"none": configurations["none"]["db_ms_per_s"],
                                "agent": configurations["agent"]["db_ms_per_s"],
                                "best": best["db_ms_per_s"]},
        "advisor_indexes": {"agent": len(configurations["agent"]["indexes"]),
                            "best": len(best["indexes"])},
        "advisor_best_judge": advisor["best"],
        "advisor_convergence_s": advisor["agent"]["convergence_s"],
    }
else:
    advisor_figures = {key: None for key in [
        "advisor_workload_ratio", "advisor_storage_ratio", "advisor_storage_bytes",
        "advisor_db_ms_per_s", "advisor_indexes", "advisor_best_judge", "advisor_convergence_s"]}
    missing["advisor_workload_ratio"] = (
        "no bench/results/*-advisor.json yet: run `cargo bench -p system-tests --bench advisor`")

document = {
    "generated_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "sources": [f for f in [collector_file, s1_file, safety_file, load_file, advisor_file] if f],
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
    # pgbench TPS with the collector on ÷ off: the median of 5 ABBA pairs at each interval, with
    # their spread (min, max); an older collector result has one figure at 1 s only.
    "overhead_tps_ratio_10s": collector.get("overhead_tps_ratio_10s"),
    "overhead_tps_ratio_10s_spread": collector.get("overhead_tps_ratio_10s_spread"),
    "overhead_tps_ratio_1s": collector.get("overhead_tps_ratio_1s", collector.get("overhead_tps_ratio")),
    "overhead_tps_ratio_1s_spread": collector.get("overhead_tps_ratio_1s_spread"),
    "cycle_ms_10k_tables": collector["cycle_ms_10k_tables"],
    # Server time of the collector's own statements per cycle (pg_stat_statements), and the
    # snapshot's encoded size when nothing changed; older collector results lack them.
    "cycle_server_ms_10k_tables": collector.get("cycle_server_ms_10k_tables"),
    "snapshot_bytes_10k_tables_idle": collector.get("snapshot_bytes_10k_tables_idle"),
    # The largest number of databases tried (100, 200, 400, 1,000) whose every cycle finished within
    # the 10 s interval; a lower bound when the largest tried still fitted.
    "databases_per_collector_10s": from_load("databases_per_collector_10s"),
    "databases_per_collector_10s_is_lower_bound": from_load("databases_per_collector_10s_is_lower_bound"),
    "collector_cycle_ms_p95_100db": from_load("collector_cycle_ms_p95_100db"),
    "collector_cycle_ms_max_100db": from_load("collector_cycle_ms_max_100db"),
    "analyser_snapshots_per_10s_100db": from_load("analyser_snapshots_per_10s_100db"),
    "analyser_snapshots_per_s": from_load("analyser_snapshots_per_s"),
    "analyser_snapshots_per_s_one_stream": from_load("analyser_snapshots_per_s_one_stream"),
    "analyser_latency_ms_p50": from_load("analyser_latency_ms_p50"),
    "analyser_latency_ms_p99": from_load("analyser_latency_ms_p99"),
    "analyser_cpu_ms_per_snapshot": from_load("analyser_cpu_ms_per_snapshot"),
    # VmRSS of each service process while one collector watched 100 databases.
    "rss_mb": from_load("rss_mb"),
    # The analyser's VmRSS after 1,000 replayed databases sent it 30 snapshots each.
    "analyser_rss_mb_1000db": from_load("analyser_rss_mb_1000db"),
    **advisor_figures,
    "missing": missing,
}
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
(results / f"{stamp}.json").write_text(json.dumps(document, indent=2) + "\n")
s = document["scenarios"]["S1"]
fmt = lambda v, spec: "–" if v is None else format(v, spec)
spread = lambda v: "" if not v else f"({v[0]:.3f}, {v[1]:.3f})"
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
| collector overhead, TPS ratio on/off at 10 s (median of 5 ABBA pairs; min, max) | {fmt(document['overhead_tps_ratio_10s'], '.3f')} {spread(document['overhead_tps_ratio_10s_spread'])} |
| collector overhead, TPS ratio on/off at 1 s | {fmt(document['overhead_tps_ratio_1s'], '.3f')} {spread(document['overhead_tps_ratio_1s_spread'])} |
| collector cycle at 10,000 tables (ms) | {document['cycle_ms_10k_tables']:.0f} |
| collector server time per cycle at 10,000 tables (ms) | {fmt(document['cycle_server_ms_10k_tables'], '.1f')} |
| snapshot at 10,000 idle tables (bytes) | {fmt(document['snapshot_bytes_10k_tables_idle'], ',d')} |
"""
if load:
    d = document
    bound = "≥ " if d["databases_per_collector_10s_is_lower_bound"] else ""
    table += f"""| databases one collector keeps within a 10 s interval (tried {', '.join(str(s['databases']) for s in load['steps'])}) | {bound}{d['databases_per_collector_10s']} |
| collector cycle at 100 databases, p95 / max (ms) | {d['collector_cycle_ms_p95_100db']:.0f} / {d['collector_cycle_ms_max_100db']:.0f} |
| snapshots reaching the analyser per 10 s, 100 databases | {d['analyser_snapshots_per_10s_100db']:.1f} |
| analyser snapshots/s, {load['analyser_streams']} streams / one stream | {d['analyser_snapshots_per_s']:,.0f} / {d['analyser_snapshots_per_s_one_stream']:,.0f} |
| analyser latency per snapshot p50 / p99 (ms); its processor time per snapshot (ms) | {d['analyser_latency_ms_p50']:.2f} / {d['analyser_latency_ms_p99']:.2f}; {d['analyser_cpu_ms_per_snapshot']:.2f} |
| RSS at 100 databases (MB) | {', '.join(f'{k} {v:.0f}' for k, v in d['rss_mb'].items())} |
| analyser RSS, 1,000 databases replayed (MB) | {fmt(d['analyser_rss_mb_1000db'], '.0f')} |
"""
if advisor:
    d = document
    storage = d["advisor_storage_bytes"]
    times = d["advisor_db_ms_per_s"]
    storage_ratio = fmt(d["advisor_storage_ratio"], ".2f")
    table += f"""| B-advisor: database ms per s of workload, none / agent / best offline | {times['none']:,.1f} / {times['agent']:,.1f} / {times['best']:,.1f} |
| B-advisor: advisor_workload_ratio, agent / best (goal ≤ 1.05) | {d['advisor_workload_ratio']:.3f} |
| B-advisor: index storage agent / best (MB); ratio | {storage['agent'] / 1e6:.1f} / {storage['best'] / 1e6:.1f}; {storage_ratio} |
| B-advisor: agent's index set settled after (s) | {d['advisor_convergence_s']:.0f} |
"""
# Each single figure beside the previous summary's, so a change shows at a glance.
summaries = sorted(p for p in results.glob("*.json") if p.name[0:8].isdigit() and "T" in p.name
                   and p.name != f"{stamp}.json")
previous = json.loads(summaries[-1].read_text()) if summaries else {}
table += "\n| figure | this run | previous run |\n|---|---|---|\n"
for key, value in document.items():
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Summaries before the ABBA runs named the 1 s ratio `overhead_tps_ratio`.
        before = previous.get(key, previous.get({"overhead_tps_ratio_1s": "overhead_tps_ratio"}.get(key, "")))
        shown = lambda v: "–" if v is None else (f"{v:,.3f}" if isinstance(v, float) else f"{v:,}")
        table += f"| {key} | {shown(value)} | {shown(before)} |\n"
(results / f"{stamp}.md").write_text(table)
print(table)
print(f"written to {results / stamp}.json and .md")
