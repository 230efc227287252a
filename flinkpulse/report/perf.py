"""System performance for `flinkpulse report`: the Flink jobs (REST) and the newest benchmark.

Flink's REST API keeps no history: checkpoints (and, when no job_metrics sample covers the
period, throughput and lag) are the jobs' figures since they started, read when the report is
made. Throughput and lag over the period come from ClickHouse's job_metrics
(:func:`flinkpulse.report.queries.job_throughput`), sampled by the loader component.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flinkpulse.config import Config
from flinkpulse.flinkrest import FlinkRest
from flinkpulse.loader import jobmetrics
from flinkpulse.paths import ROOT

BENCH_RESULTS = ROOT / "bench" / "results"


def flink_jobs(cfg: Config, since_ms: int) -> list[dict[str, Any]]:
    """Each pipeline job (on the topic prefix) running, or ended after `since_ms`: figures since
    it started
    (throughput and lag now, records read) and its checkpoints."""
    rest = FlinkRest(cfg)
    out = []
    for j in jobmetrics.pipeline_jobs(cfg, rest):
        if j["state"] != "RUNNING" and (j.get("end-time") or 0) < since_ms:
            continue
        info = rest.call("GET", f"/jobs/{j['jid']}")
        duration_s = max(info.get("duration", 0) / 1000, 0.001)
        f = jobmetrics.job_figures(rest, j["jid"], info)
        row: dict[str, Any] = {
            "job": j["job"],
            "state": j["state"],
            "uptime_s": duration_s,
            "records_in": f["records_in"],
            "avg_rate": None if f["records_in"] is None else f["records_in"] / duration_s,
            "rate_now": f["records_in_per_s"],
            "lag": f["lag"],
        }
        cp = rest.call("GET", f"/jobs/{j['jid']}/checkpoints") or {}
        counts = cp.get("counts") or {}
        summary = cp.get("summary") or {}
        dur = summary.get("end_to_end_duration") or {}
        size = summary.get("checkpointed_size") or summary.get("state_size") or {}
        row.update(
            checkpoints=int(counts.get("completed", 0)),
            checkpoints_failed=int(counts.get("failed", 0)),
            cp_avg_ms=dur.get("avg"),
            cp_max_ms=dur.get("max"),
            cp_avg_bytes=size.get("avg"),
            cp_max_bytes=size.get("max"),
        )
        out.append(row)
    return out


def newest_bench(results: Path = BENCH_RESULTS) -> dict[str, Any] | None:
    """The headline figures of the newest `flinkpulse bench` result (by its start time)."""
    runs = []
    for f in results.glob("*.json"):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "started" in data and "machine" in data:
            runs.append((str(data["started"]), f, data))
    if not runs:
        return None
    started, f, d = max(runs, key=lambda r: r[0])
    m = d["machine"]
    figures: list[tuple[str, str]] = []
    for r in (d.get("producers") or {}).get("rows", []):
        figures.append((f"producer {r['domain']}", f"{r['avro_events_per_s']:,} Avro events/s"))
    for r in (d.get("jobs") or {}).get("rows", []):
        if r.get("variant") == "udf" and r.get("events_per_s"):
            figures.append((f"job {r['job']}", f"{r['events_per_s']:,} events/s"))
    lo = d.get("loader") or {}
    if lo.get("loader_rows_per_s"):
        figures.append(("loader", f"{lo['loader_rows_per_s']:,} rows/s"))
    for v in (d.get("e2e") or {}).get("latency_variants", []):
        p95 = (v.get("latency_s") or {}).get("p95")
        if p95 is not None:
            figures.append(
                (
                    f"alert latency p95 ({v.get('label', '')})",
                    f"{p95:.2f} s at {d['e2e'].get('rate', 0):,} events/s",
                )
            )
    return {
        "file": f.name,
        "started": started,
        "machine": f"{m.get('hostname', '?')}: {m.get('cores')} cores ({m.get('cpu', '?')}), "
        f"{m.get('memory_gb')} GB",
        "figures": figures,
        "goals": [(g["goal"], g["measured"], bool(g["met"])) for g in d.get("goals", [])],
    }
