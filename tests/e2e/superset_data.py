"""The data the Superset e2e test looks at, made by the real pipeline.

Kafka -> the four Flink jobs -> loader -> ClickHouse, on the default topics and database (the
bundle's datasets point at database ``flinkpulse``), driven by `flinkpulse demo` itself as a
whole: schemas, migrations, dashboards, the jobs (reused when already running), live data from
every producer with one scripted incident per alert rule; then until every dashboard table
holds rows loaded during this run, and the loader component's quality process has sampled
the source topics (``source_quality``) since the run began. The time-filter test's own rows
(``PROBE_TOPIC``) are removed again afterwards.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flinkpulse import demo
from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.paths import ROOT
from flinkpulse.superset.definitions import TILING

#: tables whose charts keep only the tiling HOP windows (definitions.TILING)
TILED = ["player_stats", "team_stats", "energy_usage", "client_activity"]
#: the `_topic` of rows the test writes itself: no Kafka topic, so the loader never resumes on it
PROBE_TOPIC = "e2e.time-filter"
WEB_TRAFFIC_COLUMNS = [
    "window_start",
    "window_end",
    "path",
    "status",
    "requests",
    "errors",
    "error_rate",
    "latency_p50",
    "latency_p95",
    "bytes",
    "_topic",
    "_partition",
    "_offset",
]


def ch_client(cfg: Config, role: str) -> Any:
    """clickhouse-connect as the reader or writer of the configured database."""
    from flinkpulse.clickhouse.migrate import client

    return client(cfg, role, database=cfg.clickhouse.database)


def prepare(cfg: Config) -> None:
    """Schemas registered and ClickHouse migrated (both idempotent), as `flinkpulse demo` does."""
    demo._cli(cfg, "schemas", "register")
    demo._cli(cfg, "clickhouse", "migrate")


@dataclass
class Run:
    """What one pipeline run did: production, fresh rows per table, timings."""

    since: datetime
    produced: str = ""
    fresh: dict[str, int] = field(default_factory=dict)
    rules: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)
    #: seconds from the start until each table (tiling windows: "<table>/tiled") had fresh rows
    ready: dict[str, float] = field(default_factory=dict)
    #: what `flinkpulse demo` printed
    demo_output: str = ""
    #: per source topic, records no job reading it had committed when the fixture gave up
    #: waiting (tests/demo_run.py; all 0 once the jobs caught up)
    behind: dict[str, int] = field(default_factory=dict)
    #: records the run added to each source, late.* and dlq.* topic (end offsets after - before)
    records: dict[str, int] = field(default_factory=dict)
    #: end offsets per partition of those topics before the run
    start_offsets: dict[str, list[int]] = field(default_factory=dict)
    #: per job, its failures during the run ("HH:MM:SS.fff cause"): a restarted job caught up
    #: a backlog, a hazard of event time (docs/event-time.md)
    failures: dict[str, list[str]] = field(default_factory=dict)


#: the event-time column of each table: rows of this run have it at or after the run's start
EVENT_TIME = {t: "window_end" for t in demo.TABLES} | {
    "alerts": "last_event_time",
    "security_events": "event_time",
}


def fresh_rows(cfg: Config, since: datetime) -> tuple[dict[str, int], dict[str, int], set[str]]:
    """(rows of events produced since `since` per table, of those the tiling windows, alert
    rules seen). Event time, not load time: a restarted job re-emitting old windows from the
    earliest offset does not count."""
    ch = ch_client(cfg, "reader")
    p = {"since": since}

    def cond(t: str) -> str:
        return f"{EVENT_TIME[t]} >= {{since:DateTime64(3, 'UTC')}}"

    rows = {
        t: int(ch.command(f"SELECT count() FROM {t} WHERE {cond(t)}", parameters=p))
        for t in demo.TABLES
    }
    tiled = {
        t: int(ch.command(f"SELECT count() FROM {t} WHERE {cond(t)} AND {TILING}", parameters=p))
        for t in TILED
    }
    sql = f"SELECT DISTINCT rule FROM alerts WHERE {cond('alerts')}"
    rules = {r for (r,) in ch.query(sql, parameters=p).result_rows}
    return rows, tiled, rules


def quality_samples(cfg: Config, since: datetime) -> int:
    """Rows the loader component's quality process wrote to source_quality since `since`."""
    sql = "SELECT count() FROM source_quality WHERE sampled_at >= {since:DateTime64(3, 'UTC')}"
    return int(ch_client(cfg, "reader").command(sql, parameters={"since": since}))


def run_pipeline(
    cfg: Config, since: datetime, demo_argv: list[str], env: dict[str, str], timeout: float
) -> Run:
    """`flinkpulse demo` as a user runs it (a subprocess: stack up, schemas, migrations,
    dashboards, the jobs, live data with one incident per rule, its own wait and summary); then
    wait until every table has rows of this run, tiling windows included, and the loader's
    quality process has sampled the source topics since it began."""
    run = Run(since=since)
    t0 = time.monotonic()
    log = ROOT / "test-artifacts" / "demo.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.run(demo_argv, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=900)
    out = log.read_text()
    assert rc.returncode == 0, f"flinkpulse demo exited {rc.returncode}:\n{out[-3000:]}"
    run.seconds["demo"] = time.monotonic() - t0
    run.demo_output = out
    deadline = time.monotonic() + timeout
    while True:
        rows, tiled, run.rules = fresh_rows(cfg, since)
        rows["source_quality"] = quality_samples(cfg, since)
        run.fresh = rows
        now = round(time.monotonic() - t0, 1)
        for key, n in [*rows.items(), *((f"{t}/tiled", n) for t, n in tiled.items())]:
            if n:
                run.ready.setdefault(key, now)
        rules = run.rules >= set(demo.RULES)
        if all(rows.values()) and all(tiled.values()) and rules:
            break
        if time.monotonic() > deadline:
            missing = [t for t, n in {**rows, **tiled}.items() if not n]
            raise FlinkpulseError(
                f"{timeout:.0f}s after the demo still no fresh rows in {missing}, rules seen "
                f"{sorted(run.rules)} — see `flinkpulse jobs list`, `flinkpulse stack logs loader`"
            )
        time.sleep(2)
    run.produced = next((ln.strip() for ln in out.splitlines() if "produced:" in ln), "")
    run.seconds["loaded"] = time.monotonic() - t0
    return run


def probe_rows(t0: datetime, path: str) -> list[list[Any]]:
    """12 one-minute HOP windows sliding by 10 s, ending at t0 + 0 s, 10 s, ... 110 s, with
    1..12 requests, on a path of their own: the time-filter test's data."""
    from datetime import timedelta

    return [
        [t0 + timedelta(seconds=10 * i - 60), t0 + timedelta(seconds=10 * i), path, 200,
         i + 1, 0, 0.0, 1.0, 2.0, 100, PROBE_TOPIC, 0, i]
        for i in range(12)
    ]  # fmt: skip


@contextlib.contextmanager
def probe(cfg: Config, path: str, t0: datetime) -> Iterator[None]:
    """The probe rows of `path` in web_traffic while the block runs, removed afterwards."""
    db = cfg.clickhouse.database
    writer = ch_client(cfg, "writer")
    writer.insert(f"{db}.web_traffic", probe_rows(t0, path), column_names=WEB_TRAFFIC_COLUMNS)
    try:
        yield
    finally:
        remove_probe(writer, db, path)


def remove_probe(writer: Any, database: str, path: str) -> None:
    """Delete the probe rows from web_traffic and from the hourly rollup its view fed."""
    writer.command(
        f"ALTER TABLE {database}.web_traffic DELETE WHERE _topic = '{PROBE_TOPIC}' "
        "SETTINGS mutations_sync = 1"
    )
    writer.command(
        f"ALTER TABLE {database}.web_traffic_hourly DELETE WHERE path = '{path}' "
        "SETTINGS mutations_sync = 1"
    )
