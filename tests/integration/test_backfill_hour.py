"""Issue 18: a backfill of one full closed hour of scripted input equals the stream, windows and
alerts, and ClickHouse holds no duplicate afterwards.

The input runs on a simulated clock: an hour (and five minutes either side) of sensor readings,
one every 10 s per device, and scripted security incidents spread over the hour, with Kafka
timestamps equal to event time two to three hours ago, written in seconds. device_stats and
security_alerts stream over it (an hour of event time takes seconds of wall time); then
`backfill` recomputes the hour [t0, t0 + 1 h) with each job's SQL (both as bounded streaming
runs: device_stats for its temporal join, security_alerts for arrival order) next to the
running stream.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from flinkpulse import cli, topics
from flinkpulse.clickhouse.migrate import client
from flinkpulse.config import Config
from flinkpulse.loader.core import Loader
from tests.pipeline_helpers import Reader, Writer, deployment, scoped

pytestmark = pytest.mark.integration

MINUTE = 60_000
HOUR = 60 * MINUTE
SENSOR = "iot.sensor-readings"
STATS = "results.device-stats"
ALERTS = "alerts"
DEVICES = ["dev-a", "dev-b", "dev-c"]
STEP_S = 10


def _ms(v: datetime) -> int:
    return int(v.timestamp() * 1000)


def _norm(rec: dict[str, Any]) -> tuple[Any, ...]:
    """A record comparable across runs: times in ms, floats rounded, detected_at left out (when
    Flink emitted an alert: the run's wall clock)."""
    return tuple(
        sorted(
            (
                k,
                _ms(v)
                if isinstance(v, datetime)
                else round(v, 6)
                if isinstance(v, float)
                else tuple(sorted(dict(v).items()))
                if k == "attributes"
                else v,
            )
            for k, v in rec.items()
            if k != "detected_at"
        )
    )


def _incidents(t0: int) -> dict[str, list[tuple[int, str]]]:
    """home -> [(event time, kind)]: door_open_while_armed matches (ARM_AWAY, then DOOR_OPEN
    5 s later) 20 s apart are one incident (incident_gap_s 60). Twelve homes in the hour with 1,
    2 or 3 matches, one home disarmed before its door opens (no alert), one incident before the
    hour and one after it (the backfill leaves both alone)."""
    out: dict[str, list[tuple[int, str]]] = {}
    for k in range(12):
        base = t0 + MINUTE + k * 5 * MINUTE
        out[f"h-{k:02d}"] = [
            (base + i * 20_000 + d, kind)
            for i in range(1 + k % 3)
            for d, kind in ((0, "ARM_AWAY"), (5_000, "DOOR_OPEN"))
        ]
    out["h-disarmed"] = [(t0 + 30 * MINUTE, "ARM_AWAY"), (t0 + 30 * MINUTE + 2_000, "DISARM"),
                         (t0 + 30 * MINUTE + 4_000, "DOOR_OPEN")]  # fmt: skip
    out["h-before"] = [(t0 - 3 * MINUTE, "ARM_AWAY"), (t0 - 3 * MINUTE + 5_000, "DOOR_OPEN")]
    out["h-after"] = [(t0 + HOUR + MINUTE, "ARM_AWAY"), (t0 + HOUR + MINUTE + 5_000, "DOOR_OPEN")]
    return out


def _write(cfg: Config, t0: int, prefix: str) -> list[tuple[int, str, str]]:
    """The readings of [t0 - 5 min, t0 + 65 min), the incidents, and a closer of each source
    at t0 + 75 min that moves the stream's watermarks past everything. Returns the security
    events (time, home, kind)."""
    topics.ensure_topics(cfg)
    w = Writer(cfg)
    for t in range(t0 - 5 * MINUTE, t0 + 65 * MINUTE, STEP_S * 1000):
        for i, dev in enumerate(DEVICES):
            rec = {
                "device_id": dev, "home_id": "home-bf", "room": "lab",
                "sensor_type": "TEMPERATURE", "value": float((t - t0) // 1000 + i), "unit": "C",
                "appliance": None, "event_time": t,
            }  # fmt: skip
            w.avro(SENSOR, "reading", rec)
    events = sorted((t, home, kind) for home, evs in _incidents(t0).items() for t, kind in evs)
    events.append((t0 + 75 * MINUTE, "h-closer", "DOOR_CLOSE"))
    w.security_events(prefix, events)
    closer = {
        "device_id": "closer", "home_id": "home-bf", "room": "lab", "sensor_type": "TEMPERATURE",
        "value": 0.0, "unit": "C", "appliance": None, "event_time": t0 + 75 * MINUTE,
    }  # fmt: skip
    w.avro(SENSOR, "closer", closer)
    w.flush()
    return events


def test_backfill_of_a_closed_hour_equals_the_stream_and_clickhouse_keeps_each_once(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """Over one closed hour: the backfill's device_stats windows (HOP 60 s / 10 s wholly inside
    the hour: 355 per device) and its alerts (the updates of the 12 incidents that started in
    the hour) equal the stream's exactly; loaded into ClickHouse next to the stream's, FINAL and,
    after a merge, the tables themselves hold every window and incident once."""
    ensure_stack("kafka", "registry", "flink", "clickhouse")
    t0 = (int(time.time() * 1000) // HOUR - 2) * HOUR  # a closed hour (two hours ago)
    end = t0 + HOUR
    prefix = f"bfh{uuid.uuid4().hex[:6]}"
    pcfg = scoped(base_cfg, prefix)
    events = _write(pcfg, t0, prefix)
    with deployment(base_cfg, prefix, ["device_stats", "security_alerts"]) as cfg:
        stats = Reader(cfg, STATS, avro=True)
        alerts = Reader(cfg, ALERTS, avro=True)
        last = t0 + 65 * MINUTE - MINUTE  # the last window of the readings that has 6 of them
        stats.until(
            lambda r: (
                {v["device_id"] for v in r.values if _ms(v["window_start"]) == last} >= set(DEVICES)
            ),
            300,
            "the last window of the readings",
        )
        alerts.until(lambda r: any(v["entity_id"] == "h-after" for v in r.values), 240, "alerts")
        stats.settle(3)
        alerts.settle(3)
        stream_stats, stream_alerts = list(stats.values), list(alerts.values)
        frm = datetime.fromtimestamp(t0 / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        for job in ("device_stats", "security_alerts"):
            argv = ["backfill", job, "--topic-prefix", f"{prefix}.", "--from", frm]
            assert cli.main([*argv, "--to", str(end)]) == 0
        stats.settle(3)
        alerts.settle(3)
        bf_stats, bf_alerts = stats.values[len(stream_stats) :], alerts.values[len(stream_alerts) :]
        stats.close()
        alerts.close()

    # windows: the stream's wholly inside the hour, exactly
    inside = [
        v
        for v in stream_stats
        if t0 <= _ms(v["window_start"])
        and _ms(v["window_end"]) <= end
        and v["device_id"] in DEVICES
    ]
    assert len(inside) == len(DEVICES) * (HOUR - MINUTE) // (STEP_S * 1000) + len(DEVICES)
    assert Counter(map(_norm, bf_stats)) == Counter(map(_norm, inside))
    assert {v["samples"] for v in bf_stats} == {60 // STEP_S}
    # alerts: one incident per home (1, 2 or 3 updates), the backfill's those started in the hour
    incidents = Counter(v["alert_id"] for v in stream_alerts)
    assert sorted(a.split(":")[1] for a in incidents) == sorted(
        [f"h-{k:02d}" for k in range(12)] + ["h-after", "h-before"]
    )
    started = [v for v in stream_alerts if t0 <= _ms(v["first_event_time"]) < end]
    assert len(started) == sum(1 + k % 3 for k in range(12)) == 24
    assert Counter(map(_norm, bf_alerts)) == Counter(map(_norm, started))

    # ClickHouse: the stream's rows and the backfill's loaded; each window / incident once
    ch = client(pcfg, "writer")
    db = pcfg.clickhouse.database
    try:
        # raw security events, the stream's and the backfill's (each passed through as it came)
        logged = events
        in_hour = sum(1 for t, _, _ in logged if t0 <= t < end)
        total = len(stream_stats) + len(bf_stats) + len(stream_alerts) + len(bf_alerts)
        total += len(logged) + in_hour
        deadline = time.monotonic() + 180
        loaded = 0
        while loaded < total:
            assert time.monotonic() < deadline, f"loader loaded {loaded} of {total} rows"
            loaded += Loader(pcfg).run(until_idle=3).rows
        assert loaded == total
        windows = {(v["device_id"], _ms(v["window_start"])): v for v in stream_stats}
        assert len(windows) == len(stream_stats)
        newest = {v["alert_id"]: v for v in stream_alerts}
        for final in ("FINAL", ""):  # under FINAL; then merged: no duplicate left
            if not final:
                for table in ("device_stats", "alerts", "security_events"):
                    ch.command(f"OPTIMIZE TABLE {db}.{table} FINAL")
            rows = ch.query(
                f"SELECT device_id, toUnixTimestamp64Milli(window_start), samples, avg_value "
                f"FROM {db}.device_stats {final}"
            ).result_rows
            assert sorted((d, ws, n, round(a, 6)) for d, ws, n, a in rows) == sorted(
                (d, ws, v["samples"], round(v["avg_value"], 6)) for (d, ws), v in windows.items()
            )
            rows = ch.query(f"SELECT alert_id, version, event_count FROM {db}.alerts {final}")
            assert sorted(map(tuple, rows.result_rows)) == sorted(
                (a, v["version"], v["event_count"]) for a, v in newest.items()
            )
        assert int(ch.command(f"SELECT count() FROM {db}.security_events")) == len(logged)  # type: ignore[arg-type]
    finally:
        ch.command(f"DROP DATABASE IF EXISTS {db}")
        ch.close()
