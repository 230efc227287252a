"""System performance for `flinkpulse report`: the Flink jobs (REST) and the newest benchmark.

Flink's REST API keeps no history: throughput, consumer lag and checkpoints are the jobs'
figures since they started, read when the report is made (the loader's rate and lag over the
period come from ClickHouse, :func:`flinkpulse.report.queries.loader_stats`).
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.flinkrest import FlinkRest
from flinkpulse.paths import ROOT

BENCH_RESULTS = ROOT / "bench" / "results"
#: the Flink jobs' name prefix (flinkrest.job_name)
JOB_PREFIX = "flinkpulse-"
#: ad-hoc queries from the notebooks (flinkpulse.lab): not part of the pipeline
NOTEBOOK_PREFIX = "flinkpulse-notebook-"


def _metric(
    rest: FlinkRest, job_id: str, vertex: str, pattern: str, agg: str = "sum"
) -> float | None:
    """`agg` (sum/max) over the vertex's subtasks of the metrics whose id matches `pattern`
    (None when the vertex has none, e.g. a finished job)."""
    base = f"/jobs/{job_id}/vertices/{vertex}/subtasks/metrics"
    ids = [m["id"] for m in rest.call("GET", base) or [] if re.fullmatch(pattern, m["id"])]
    if not ids:
        return None
    got = rest.call("GET", f"{base}?get={quote(','.join(ids), safe=',')}&agg={agg}") or []
    vals = [float(v.get(agg, 0)) for v in got]
    return (sum(vals) if agg == "sum" else max(vals)) if vals else None


def flink_jobs(cfg: Config, since_ms: int) -> list[dict[str, Any]]:
    """Each flinkpulse job running, or ended after `since_ms`: throughput, lag, checkpoints."""
    rest = FlinkRest(cfg)
    out = []
    for j in sorted(rest.jobs(), key=lambda j: j["name"]):
        if not j["name"].startswith(JOB_PREFIX) or j["name"].startswith(NOTEBOOK_PREFIX):
            continue
        if j["state"] != "RUNNING" and (j.get("end-time") or 0) < since_ms:
            continue
        info = rest.call("GET", f"/jobs/{j['jid']}")
        sources = [v for v in info["vertices"] if v["name"].startswith("Source")]
        duration_s = max(info.get("duration", 0) / 1000, 0.001)
        row: dict[str, Any] = {
            "job": j["name"].removeprefix(JOB_PREFIX),
            "state": j["state"],
            "uptime_s": duration_s,
            "records_in": None,
            "avg_rate": None,
            "rate_now": None,
            "lag": None,
        }
        # a source is chained with the operators after it: its own operator metrics (e.g.
        # Source__player_events_raw[1].numRecordsOut) count what it read from Kafka
        figures = {
            "records_in": (r"Source__.*\.numRecordsOut", "sum"),
            "rate_now": (r"Source__.*\.numRecordsOutPerSecond", "sum"),
            "lag": (r"Source__.*\.pendingRecords", "sum"),
        }
        for v in sources:
            for key, (pattern, agg) in figures.items():
                try:
                    val = _metric(rest, j["jid"], v["id"], pattern, agg)
                except FlinkpulseError:
                    val = None  # a finished job has no live metrics
                if val is not None:
                    row[key] = (row[key] or 0) + val
            if row["lag"] is None:  # the Kafka client's own: the most behind partition
                with contextlib.suppress(FlinkpulseError):
                    row["lag"] = _metric(
                        rest, j["jid"], v["id"], r"Source__.*\.records-lag-max", "max"
                    )
        if row["records_in"] is not None:
            row["avg_rate"] = row["records_in"] / duration_s
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
