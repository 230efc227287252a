"""Issue 18: a bounded Kafka replay reads exactly its range, and a backfill of a closed range
writes the windows the stream wrote, which ClickHouse then keeps once.

Scripted sensor readings (one a second per device, Kafka timestamp = event time) are in Kafka
before any job starts; device_stats is HOP 60 s / 10 s, so every window's count is known.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import clickhouse_connect
import pytest

from flinkpulse import cli, topics
from flinkpulse.clickhouse import credentials
from flinkpulse.config import Config
from flinkpulse.loader.core import Loader
from tests.pipeline_helpers import Reader, Writer, deployment, scoped

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


def test_backfill_equals_the_stream_and_clickhouse_keeps_each_window_once(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """The stream runs over three minutes of readings; `backfill` of the closed range
    [t0, t0 + 2 min) writes the 7 windows per device wholly inside it, equal to the stream's;
    loaded into ClickHouse, FINAL (and, after a merge, the table itself) holds each once."""
    ensure_stack("kafka", "registry", "flink", "clickhouse")
    t0 = (int(time.time() * 1000) // MINUTE - 12) * MINUTE
    prefix = f"bf{uuid.uuid4().hex[:6]}"
    pcfg = scoped(base_cfg, prefix)
    # the closer moves the stream's watermark past every window of the three minutes
    _write(pcfg, t0, 180, closer=t0 + 6 * MINUTE)
    with deployment(base_cfg, prefix, ["device_stats"]) as cfg:
        stats = Reader(cfg, STATS, avro=True)
        stats.until(
            lambda r: (
                {v["device_id"] for v in r.values if _ms(v["window_start"]) == t0 + 170_000}
                >= set(DEVICES)
            ),
            240,
            "the last window of the three minutes",
        )
        stats.settle(3)
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
            loaded += Loader(pcfg).run(until_idle=3).rows
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
