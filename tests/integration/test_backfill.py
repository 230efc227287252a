"""Issue 18: a bounded Kafka replay reads exactly its range, and a backfill of a closed range
writes the windows the stream wrote, which ClickHouse then keeps once.

Scripted sensor readings (one a second per device, Kafka timestamp = event time) are in Kafka
before any job starts; device_stats is HOP 60 s / 10 s, so every window's count is known.
The two backfill tests share one deployment (`streams`): device_stats and security_alerts on one
prefix holding both tests' input (security_alerts reads the sensor readings too, but only
POWER ones matter to it: these are TEMPERATURE), each test loading its own result topics into a
database of its own.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import clickhouse_connect
import pytest

from flinkpulse import cli, jobstate, topics
from flinkpulse.clickhouse import credentials
from flinkpulse.config import Config
from flinkpulse.flinkrest import FlinkRest, job_name
from flinkpulse.loader.core import Loader
from tests.pipeline_helpers import Reader, Writer, deployment

pytestmark = pytest.mark.integration

MINUTE = 60_000
SENSOR = "iot.sensor-readings"
STATS = "results.device-stats"
DEVICES = ["dev-a", "dev-b", "dev-c"]


def _reading(dev: str, t: int, value: float) -> dict[str, Any]:
    return {
        "device_id": dev, "home_id": "home-bf", "room": "lab", "sensor_type": "TEMPERATURE",
        "value": value, "unit": "C", "appliance": None, "event_time": t,
    }  # fmt: skip


def _write(cfg: Config, t0: int, seconds: int, closer: int | None = None) -> None:
    """One reading a second per device over [t0, t0 + seconds), then an optional closer."""
    topics.ensure_topics(cfg)
    w = Writer(cfg)
    for s in range(seconds):
        for i, d in enumerate(DEVICES):
            w.avro(SENSOR, "reading", _reading(d, t0 + s * 1000, float(s * 10 + i)))
    if closer is not None:
        w.avro(SENSOR, "closer", _reading("closer", closer, 0.0))
    w.flush()


def _ms(v: datetime) -> int:
    return int(v.timestamp() * 1000)


def _norm(rec: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        sorted(
            (k, _ms(v) if isinstance(v, datetime) else round(v, 6) if isinstance(v, float) else v)
            for k, v in rec.items()
        )
    )


def _expected(t0: int, seconds: range, lo: int, hi: int) -> dict[tuple[str, int], int]:
    """(device, window_start) -> samples for HOP 60 s / 10 s windows starting in [lo, hi)."""
    out = {}
    for start in range(lo, hi, 10_000):
        n = len([s for s in seconds if start <= t0 + s * 1000 < start + MINUTE])
        if n:
            out.update({(d, start): n for d in DEVICES})
    return out


def three_minutes(cfg: Config, t0: int) -> Reader:
    """The device-stats windows of three minutes of readings from t0, read until every device's
    last one (at t0 + 170 s) is in and nothing more comes: a closer moved the watermark on."""
    stats = Reader(cfg, STATS, avro=True)
    stats.until(
        lambda r: (
            {v["device_id"] for v in r.values if _ms(v["window_start"]) == t0 + 170_000}
            >= set(DEVICES)
        ),
        240,
        "the last window of the three minutes",
    )
    return stats.settle(3)


def test_bounded_replay_reads_exactly_its_range(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """`jobs submit --from/--to` reads the records with Kafka timestamps in [from, to), runs to
    the end of them and stops: every window holds exactly the readings of the range."""
    ensure_stack("kafka", "registry", "flink")
    t0 = (int(time.time() * 1000) // MINUTE - 10) * MINUTE
    prefix = f"replay{uuid.uuid4().hex[:6]}"
    cfg = base_cfg.with_prefix(f"{prefix}.")
    _write(cfg, t0, 120)
    start, end = t0 + 30_000, t0 + 90_000
    argv = ["jobs", "submit", "device_stats", "--topic-prefix", f"{prefix}."]
    assert cli.main([*argv, "--from", str(start), "--to", str(end)]) == 0
    # the job FINISHED (the command waited for it): its transactions are committed
    stats = Reader(cfg, STATS, avro=True)
    stats.settle(3)
    got = Counter((v["device_id"], _ms(v["window_start"])) for v in stats.values)
    assert all(n == 1 for n in got.values()), "a window was written twice"
    want = _expected(t0, range(30, 90), t0 - MINUTE, t0 + 2 * MINUTE)
    assert {
        k: v["samples"] for v in stats.values for k in [(v["device_id"], _ms(v["window_start"]))]
    } == want
    assert len(want) == 3 * 11  # windows starting t0-20 s .. t0+80 s touch [t0+30 s, t0+90 s)
    for side in ("dlq", "late"):
        r = Reader(cfg, f"{side}.{SENSOR}")
        assert r.poll(2.0) == []
        r.close()
    stats.close()


def test_start_at_reads_the_event_topics_from_its_timestamp_on(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """`jobs submit --start-at TIME` starts a streaming job that skips the records with earlier
    Kafka timestamps: every window holds only the readings from TIME on, and the ledger keeps it
    (in ms) for a resume without a snapshot. TIME is given as ISO 8601 here, as a user would."""
    ensure_stack("kafka", "registry", "flink")
    t0 = (int(time.time() * 1000) // MINUTE - 10) * MINUTE
    prefix = f"startat{uuid.uuid4().hex[:6]}"
    cfg = base_cfg.with_prefix(f"{prefix}.")
    _write(cfg, t0, 180, closer=t0 + 6 * MINUTE)
    start = t0 + MINUTE
    argv = ["jobs", "submit", "device_stats", "--topic-prefix", f"{prefix}."]
    rest = FlinkRest(cfg)
    try:
        iso = datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert cli.main([*argv, "--start-at", iso]) == 0
        stats = three_minutes(cfg, t0)
        got = {
            (v["device_id"], _ms(v["window_start"])): v["samples"]
            for v in stats.values
            if v["device_id"] in DEVICES
        }
        stats.close()
        # the first minute is skipped: the window at t0 + 10 s holds 10 readings, not 60
        want = _expected(t0, range(60, 180), t0, t0 + 3 * MINUTE)
        assert got == want
        assert len(want) == 3 * 17 and want[("dev-a", t0 + 10_000)] == 10
        assert jobstate.submitted_start(cfg, job_name(cfg, "device_stats")) == start
    finally:
        for j in rest.running(job_name(cfg, "device_stats")):
            with contextlib.suppress(Exception):
                rest.cancel(j["jid"])


ALERTS = "alerts"
SEC_RESULTS = "results.security-events"
#: (home, [(seconds after t0, kind)]): door_open_while_armed matches (ARM_AWAY .. DOOR_OPEN);
#: matches of one home within incident_gap_s (60 s) are one incident
HOMES = {
    "h-before": [(10, "ARM_AWAY"), (15, "DOOR_OPEN")],  # starts before the range
    "h-one": [(70, "ARM_AWAY"), (75, "DOOR_OPEN")],  # 1 incident, 1 update
    "h-three": [(80, "ARM_AWAY"), (85, "DOOR_OPEN"), (100, "ARM_AWAY"), (110, "DOOR_OPEN"),
                (120, "ARM_AWAY"), (125, "DOOR_OPEN")],  # 1 incident, 3 updates
    "h-gap": [(70, "ARM_AWAY"), (72, "DOOR_OPEN"), (150, "ARM_AWAY"), (155, "DOOR_OPEN")],
    "h-disarmed": [(90, "ARM_AWAY"), (92, "DISARM"), (95, "DOOR_OPEN")],  # no alert
    "h-after": [(200, "ARM_AWAY"), (205, "DOOR_OPEN")],  # starts after the range
}  # fmt: skip


def _write_security(cfg: Config, t0: int, prefix: str) -> list[tuple[int, str, str]]:
    """The security events of HOMES, then a closer 6 minutes on; returns (time, home, kind)."""
    topics.ensure_topics(cfg)
    w = Writer(cfg)
    events = sorted((t0 + s * 1000, home, kind) for home, evs in HOMES.items() for s, kind in evs)
    events.append((t0 + 6 * MINUTE, "h-closer", "DOOR_CLOSE"))  # the watermark past them all
    w.security_events(prefix, events)
    w.flush()
    return events


def _count(ch: Any, table: str) -> int:
    """Rows of `table`."""
    return int(ch.command(f"SELECT count() FROM {table}"))


def _alert(v: dict[str, Any]) -> tuple[Any, ...]:
    """An alert without detected_at (when Flink emitted it: the run's wall clock)."""
    return _norm(
        {
            k: tuple(sorted(dict(x).items())) if k == "attributes" else x
            for k, x in v.items()
            if k != "detected_at"
        }
    )


@dataclass
class Streams:
    """The streaming deployment both backfill tests run next to."""

    t0: int
    prefix: str
    #: the deployment's config (topics prefixed `prefix.`)
    cfg: Config
    #: the scripted security events (Kafka timestamp, home, kind)
    events: list[tuple[int, str, str]]

    def scoped(self, name: str) -> Config:
        """The prefix's topics and a ClickHouse database of the test's own, `<prefix>_<name>`."""
        return self.cfg.derive(clickhouse={"database": f"{self.prefix}_{name}"})


@pytest.fixture(scope="module")
def streams(ensure_stack: Callable[..., Config], base_cfg: Config) -> Iterator[Streams]:
    """Three minutes of sensor readings (for device_stats) and the security events of HOMES
    (for security_alerts) on one prefix, each with a closer 6 minutes on that moves its job's
    watermark past every window and incident; both jobs streaming on it for the module."""
    ensure_stack("kafka", "registry", "flink", "clickhouse")
    t0 = (int(time.time() * 1000) // MINUTE - 12) * MINUTE
    prefix = f"bf{uuid.uuid4().hex[:6]}"
    pcfg = base_cfg.with_prefix(f"{prefix}.")
    _write(pcfg, t0, 180, closer=t0 + 6 * MINUTE)
    events = _write_security(pcfg, t0, prefix)
    with deployment(base_cfg, prefix, ["device_stats", "security_alerts"]) as cfg:
        yield Streams(t0, prefix, cfg, events)


def test_backfill_equals_the_stream_and_clickhouse_keeps_each_window_once(
    streams: Streams,
) -> None:
    """The stream runs over three minutes of readings; `backfill` of the closed range
    [t0, t0 + 2 min) writes the 7 windows per device wholly inside it, equal to the stream's;
    loaded into ClickHouse, FINAL (and, after a merge, the table itself) holds each once."""
    t0, prefix, cfg = streams.t0, streams.prefix, streams.cfg
    pcfg = streams.scoped("device")
    # the closer moved the stream's watermark past every window of the three minutes
    stats = three_minutes(cfg, t0)
    stream = list(stats.values)
    frm = datetime.fromtimestamp(t0 / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    argv = ["backfill", "device_stats", "--topic-prefix", f"{prefix}."]
    # next to the running stream (own job name and transactional ids)
    assert cli.main([*argv, "--from", frm, "--to", str(t0 + 2 * MINUTE)]) == 0
    stats.settle(3)
    backfill = stats.values[len(stream) :]
    stats.close()
    inside = [
        v
        for v in stream
        if t0 <= _ms(v["window_start"])
        and _ms(v["window_end"]) <= t0 + 2 * MINUTE
        and v["device_id"] in DEVICES
    ]
    assert len(inside) == 3 * 7
    assert Counter(map(_norm, backfill)) == Counter(map(_norm, inside))
    want = _expected(t0, range(180), t0, t0 + MINUTE + 1)
    assert {(v["device_id"], _ms(v["window_start"])): v["samples"] for v in backfill} == want

    # ClickHouse: the stream's rows and the backfill's, loaded; one row per window remains
    user, password = credentials(pcfg, "writer")
    ch = clickhouse_connect.get_client(
        host="127.0.0.1", port=pcfg.stack.clickhouse_port, username=user, password=password
    )
    db = pcfg.clickhouse.database
    try:
        total = len(stream) + len(backfill)
        deadline = time.monotonic() + 120
        loaded = 0
        while loaded < total:
            assert time.monotonic() < deadline, f"loader loaded {loaded} of {total} results"
            loaded += Loader(pcfg, topics=[STATS]).run(until_idle=3).rows
        assert loaded == total
        # under FINAL one row per window: the backfilled one replaced the stream's
        assert int(ch.command(f"SELECT count() FROM {db}.device_stats FINAL")) == len(stream)  # type: ignore[arg-type]
        ch.command(f"OPTIMIZE TABLE {db}.device_stats FINAL")
        rows = ch.query(
            f"SELECT device_id, toUnixTimestamp64Milli(window_start), samples, avg_value "
            f"FROM {db}.device_stats"
        ).result_rows
        assert len(rows) == len(stream)
        by_key = {(v["device_id"], _ms(v["window_start"])): v for v in stream}
        assert len(by_key) == len(stream)
        for dev, ws, samples, avg in rows:
            v = by_key[(dev, ws)]
            assert (samples, round(avg, 6)) == (v["samples"], round(v["avg_value"], 6))
        assert not math.isnan(sum(r[3] for r in rows))
    finally:
        ch.command(f"DROP DATABASE IF EXISTS {db}")


def test_backfill_security_alerts_equals_the_stream_and_keeps_each_incident_once(
    streams: Streams,
) -> None:
    """security_alerts (MATCH_RECOGNIZE + incident views) over scripted security events; the
    backfill of the closed range [t0 + 60 s, t0 + 180 s), a bounded streaming run of the same
    SQL, writes exactly the stream's updates of the 4 incidents that started in it; loaded into
    ClickHouse, alerts FINAL holds each of the 6 incidents once, at its newest version."""
    t0, prefix, cfg, events = streams.t0, streams.prefix, streams.cfg, streams.events
    pcfg = streams.scoped("security")
    frm, to = t0 + MINUTE, t0 + 3 * MINUTE
    alerts = Reader(cfg, ALERTS, avro=True)
    alerts.until(lambda r: any(v["entity_id"] == "h-after" for v in r.values), 240, "every alert")
    alerts.settle(3)
    stream = list(alerts.values)
    argv = ["backfill", "security_alerts", "--topic-prefix", f"{prefix}."]
    assert cli.main([*argv, "--from", str(frm), "--to", str(to)]) == 0
    alerts.settle(3)
    backfill = alerts.values[len(stream) :]
    alerts.close()
    # the stream: one incident per home (two for h-gap), an update per match
    incidents = Counter(v["alert_id"] for v in stream)
    assert sorted(Counter(a.split(":")[1] for a in incidents).items()) == [
        ("h-after", 1), ("h-before", 1), ("h-gap", 2), ("h-one", 1), ("h-three", 1)
    ]  # fmt: skip
    assert sorted(incidents.values()) == [1, 1, 1, 1, 1, 3]
    inside = [v for v in stream if frm <= _ms(v["first_event_time"]) < to]
    assert len(inside) == 6  # h-one 1, h-three 3, h-gap's two incidents 1 each
    assert Counter(map(_alert, backfill)) == Counter(map(_alert, inside))

    user, password = credentials(pcfg, "writer")
    ch = clickhouse_connect.get_client(
        host="127.0.0.1", port=pcfg.stack.clickhouse_port, username=user, password=password
    )
    db = pcfg.clickhouse.database
    try:
        # every alert update and raw event, the stream's and the backfill's (in its range)
        logged = events
        total = len(stream) + len(backfill) + len(logged)
        total += sum(1 for t, _, _ in logged if frm <= t < to)
        deadline = time.monotonic() + 120
        loaded = 0
        while loaded < total:
            assert time.monotonic() < deadline, f"loader loaded {loaded} of {total} rows"
            loaded += Loader(pcfg, topics=[ALERTS, SEC_RESULTS]).run(until_idle=3).rows
        assert loaded == total
        newest = {v["alert_id"]: v for v in stream}  # the last update of each incident
        q = (
            f"SELECT alert_id, version, event_count, severity, summary, "
            f"toUnixTimestamp64Milli(last_event_time) FROM {db}.alerts"
        )
        want = sorted(
            (a, v["version"], v["event_count"], v["severity"], v["summary"],
             _ms(v["last_event_time"]))
            for a, v in newest.items()
        )  # fmt: skip
        assert sorted(tuple(r) for r in ch.query(f"{q} FINAL").result_rows) == want
        ch.command(f"OPTIMIZE TABLE {db}.alerts FINAL")
        # merged: no duplicate left
        assert sorted(tuple(r) for r in ch.query(q).result_rows) == want
        # raw security events: the backfill's copies replaced the stream's, one row each
        ch.command(f"OPTIMIZE TABLE {db}.security_events FINAL")
        assert _count(ch, f"{db}.security_events") == len(logged)
    finally:
        ch.command(f"DROP DATABASE IF EXISTS {db}")
