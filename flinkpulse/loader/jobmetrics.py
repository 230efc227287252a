"""Per-job throughput and consumer lag into ClickHouse over time (``job_metrics``).

Flink's REST API keeps no history: a job's counters and meters are those of its current run.
The loader component's sampler process (:mod:`flinkpulse.loader.quality`) calls
:func:`sample_once` every ``loader.quality_interval_s``: one row per running flinkpulse job
(records read from Kafka and written by its sinks, their per-second rates, the records its
sources are behind) and one for the loader itself (rows loaded, rows/s, records behind, from
its status file). `flinkpulse report` reads any period from it
(:func:`flinkpulse.report.queries.job_throughput`); sql/clickhouse/010_job_metrics.sql has the
table.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.flinkrest import FlinkRest, job_name

TABLE = "job_metrics"
#: the loader's row in job_metrics
LOADER = "loader"

#: (metric id pattern, aggregation over subtasks) of each figure. A source is chained with the
#: operators after it: its own operator metrics (Source__player_events_raw[1].numRecordsOut)
#: count what it read from Kafka; every sink's writer (results, late, dead letters, duplicates:
#: player_stats_sink[22]__Writer.numRecordsIn) counts what the job wrote.
FIGURES = {
    "records_in": (r"Source__.*\.numRecordsOut", "sum"),
    "records_in_per_s": (r"Source__.*\.numRecordsOutPerSecond", "sum"),
    "records_out": (r".*__Writer\.numRecordsIn", "sum"),
    "records_out_per_s": (r".*__Writer\.numRecordsInPerSecond", "sum"),
    "lag": (r"Source__.*\.pendingRecords", "sum"),
}
#: the Kafka client's own lag (its most behind partition), where a source has no pendingRecords
LAG_FALLBACK = (r"Source__.*\.records-lag-max", "max")


@dataclass(frozen=True)
class JobSample:
    """One job's figures at one time (None: not reported, e.g. a finished job)."""

    job: str
    job_id: str
    state: str
    records_in: int | None = None
    records_out: int | None = None
    records_in_per_s: float | None = None
    records_out_per_s: float | None = None
    lag: int | None = None


#: the table's columns, in the order of a row ([sampled_at, *astuple(sample)])
COLUMNS = ["sampled_at", *(f.name for f in fields(JobSample))]


def vertex_metric(
    rest: FlinkRest, job_id: str, vertex: str, pattern: str, agg: str = "sum"
) -> float | None:
    """`agg` (sum/max) over the vertex's subtasks of the metrics whose id matches `pattern`
    (None when the vertex has none, or none with a value)."""
    base = f"/jobs/{job_id}/vertices/{vertex}/subtasks/metrics"
    ids = [m["id"] for m in rest.call("GET", base) or [] if re.fullmatch(pattern, m["id"])]
    if not ids:
        return None
    got = rest.call("GET", f"{base}?get={quote(','.join(ids), safe=',')}&agg={agg}") or []
    # a meter or gauge with nothing to measure yet reads NaN (records-lag-max before a fetch)
    vals = [x for v in got if math.isfinite(x := float(v.get(agg, 0)))]
    return (sum(vals) if agg == "sum" else max(vals)) if vals else None


def job_figures(rest: FlinkRest, job_id: str, info: dict[str, Any]) -> dict[str, float | None]:
    """FIGURES of one job (`info`: its /jobs/<id> document), summed over its vertices."""
    out: dict[str, float | None] = dict.fromkeys(FIGURES)

    def add(key: str, val: float | None) -> None:
        if val is not None:
            out[key] = (out[key] or 0) + val

    for v in info.get("vertices", []):
        for key, (pattern, agg) in FIGURES.items():
            if key in ("records_in", "records_in_per_s", "lag") and not v["name"].startswith(
                "Source"
            ):
                continue
            with contextlib.suppress(FlinkpulseError):  # a finished job has no live metrics
                add(key, vertex_metric(rest, job_id, v["id"], pattern, agg))
        if v["name"].startswith("Source") and out["lag"] is None:
            with contextlib.suppress(FlinkpulseError):
                out["lag"] = vertex_metric(rest, job_id, v["id"], *LAG_FALLBACK)
    return out


def pipeline_jobs(cfg: Config, rest: FlinkRest) -> list[dict[str, Any]]:
    """The cluster's runs of the pipeline's jobs on `cfg`'s topic prefix (each with "job", its
    name in flink_jobs.JOBS); other prefixes' jobs and the notebooks' queries are left out."""
    from flink_jobs import JOBS

    own = job_name(cfg, "")
    out = []
    for j in rest.jobs():
        job = j["name"].removeprefix(own) if j["name"].startswith(own) else None
        if job in JOBS:
            out.append({**j, "job": job})
    return sorted(out, key=lambda j: (j["job"], j.get("start-time", 0)))


def flink_samples(cfg: Config) -> list[JobSample]:
    """A sample of every running pipeline job on `cfg`'s topic prefix."""
    rest = FlinkRest(cfg)
    out = []
    for j in pipeline_jobs(cfg, rest):
        if j["state"] != "RUNNING":
            continue
        info = rest.call("GET", f"/jobs/{j['jid']}")
        f = job_figures(rest, j["jid"], info)
        out.append(
            JobSample(
                job=j["job"],
                job_id=j["jid"],
                state=j["state"],
                records_in=_int(f["records_in"]),
                records_out=_int(f["records_out"]),
                records_in_per_s=f["records_in_per_s"],
                records_out_per_s=f["records_out_per_s"],
                lag=_int(f["lag"]),
            )
        )
    return out


def loader_sample(status_file: Path) -> JobSample | None:
    """The loader's figures from its status file (None when it has none): rows loaded since it
    started, rows/s, and the records it is behind on the result topics."""
    try:
        doc = json.loads(status_file.read_text())
    except (OSError, ValueError):
        return None
    rows = int(doc.get("rows", 0))
    rate = float(doc.get("rows_per_s", 0.0))
    return JobSample(
        job=LOADER,
        job_id=str(doc.get("pid", "")),
        state=str(doc.get("state", "")),
        records_in=rows,
        records_out=rows,
        records_in_per_s=rate,
        records_out_per_s=rate,
        lag=int(doc.get("lag_total", 0)),
    )


def _int(x: float | None) -> int | None:
    return None if x is None else round(x)


def sample_once(cfg: Config, ch: Any = None, loader_status: Path | None = None) -> list[JobSample]:
    """Sample every running job (and the loader) now into ``<clickhouse.database>.job_metrics``.
    Flink not reachable: only the loader's row."""
    from flinkpulse.clickhouse.migrate import check_database_name, client

    db = check_database_name(cfg.clickhouse.database)
    sampled_at = datetime.now(UTC)
    try:
        samples = flink_samples(cfg)
    except FlinkpulseError:
        samples = []
    if loader_status is not None and (lo := loader_sample(loader_status)) is not None:
        samples.append(lo)
    if not samples:
        return samples
    own = ch is None
    ch = ch or client(cfg, "writer", database=db)
    try:
        rows = [[sampled_at, *astuple(s)] for s in samples]
        ch.insert(f"`{db}`.{TABLE}", rows, column_names=COLUMNS)
    finally:
        if own:
            ch.close()
    return samples
