"""Issue 18: the raw archive. Scripted records of all four sources (some player events still
written with PlayerEvent v1) and three undecodable sensor records are in Kafka before the
archive job and device_stats (which dead-letters them) start. The archive then holds exactly
the accepted records per source, the three dead letters with their reasons, in committed JSON
lines files under dt=/hour= partitions, and ClickHouse's archive_* views return the same values.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flinkpulse import archive, cli, topics
from flinkpulse.bench.records import Encoder, register
from flinkpulse.clickhouse.migrate import client
from flinkpulse.config import Config
from flinkpulse.schemas import schema
from producers import streams
from producers.base import TimeConfig
from tests.pipeline_helpers import Writer, deployment, scoped

pytestmark = pytest.mark.integration

MINUTE = 60_000
PLAYER = "gaming.player-events"
SENSOR = "iot.sensor-readings"
TIMEOUT = 180


def _write(cfg: Config, t0: int) -> tuple[Writer, dict[str, list[dict[str, Any]]]]:
    """400 generated records of the four sources (10 player events in v1 first), 3 garbage
    sensor records; Kafka timestamp = the producer's clock (running max of event time)."""
    topics.ensure_topics(cfg)
    w = Writer(cfg)
    v1 = schema("flinkpulse.gaming.PlayerEvent", 1)
    enc_v1 = Encoder(register(cfg.registry.url, f"{cfg.kafka.topic(PLAYER)}-value", v1), v1)
    gen = streams.stream(
        "all", 18, TimeConfig(start_ms=t0, events_per_second=40.0), anomalies=False, timed=False
    )
    events = sorted((next(gen) for _ in range(400)), key=lambda e: int(e[1]["event_time"]))
    sent: dict[str, list[dict[str, Any]]] = {t: [] for t in archive.SOURCE_TABLES}
    clock = 0
    n_v1 = 0
    for key, rec, topic in events:
        clock = max(clock, int(rec["event_time"]))
        if topic == PLAYER and n_v1 < 10:
            n_v1 += 1
            rec = {k: v for k, v in rec.items() if k != "platform"}
            w.send(PLAYER, "v1", key.encode(), enc_v1(rec), timestamp=clock)
            rec = {**rec, "platform": None}
        else:
            w.avro(topic, "valid", rec, key=key, ts=clock)
        sent[topic].append(rec)
    for i in range(3):
        w.send(SENSOR, "garbage", b"dev-x", f"not avro {i}".encode(), timestamp=clock)
    w.flush()
    return w, sent


def _files(cfg: Config) -> list[Any]:
    """The committed (visible) files of every archive table."""
    return sorted(
        p
        for t in archive.TABLES
        for p in archive.table_dir(cfg, t).glob("dt=*/hour=*/*")
        if not p.name.startswith(".")
    )


def _counts(ch: Any, db: str) -> dict[str, int]:
    out = {}
    for table in archive.TABLES:
        try:
            out[table] = int(ch.command(f"SELECT count() FROM `{db}`.archive_{table}"))
        except Exception:  # no view yet: no committed file yet
            out[table] = -1
    return out


def test_archive_holds_every_accepted_record_and_dead_letter_once(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    ensure_stack("kafka", "registry", "flink", "clickhouse")
    t0 = (int(time.time() * 1000) // MINUTE - 10) * MINUTE
    prefix = f"arch{uuid.uuid4().hex[:6]}"
    cfg = scoped(base_cfg, prefix)
    w, sent = _write(cfg, t0)
    want = {archive.SOURCE_TABLES[t]: len(recs) for t, recs in sent.items()}
    want[archive.DEAD_LETTERS] = 3
    assert sum(want.values()) == 403 and all(want.values())
    scope = ["--set", f"clickhouse.database={prefix}"]  # the CLI's config: this test's database
    ch = client(cfg, "writer")
    try:
        with deployment(base_cfg, prefix, ["device_stats", "archive"]):
            deadline = time.monotonic() + TIMEOUT
            got: dict[str, int] = {}
            while got != want:
                assert time.monotonic() < deadline, (got, want)
                time.sleep(3)
                cli.main([*scope, "archive", "views", "--topic-prefix", f"{prefix}."])
                got = _counts(ch, prefix)
            time.sleep(6)  # a checkpoint later: still exactly once (nothing committed twice)
            assert _counts(ch, prefix) == want

        # the files: committed and compacted (visible ones only), JSON lines, one per record
        files = _files(cfg)
        assert files and all(p.name.startswith("compacted-") for p in files)
        lines = [json.loads(line) for p in files for line in p.read_text().splitlines()]
        assert len(lines) == sum(want.values())

        # compression: hours that ended an hour ago are gzipped (now: none of this test's yet)
        assert cli.main([*scope, "archive", "compress", "--topic-prefix", f"{prefix}."]) == 0
        assert _files(cfg) == files
        plain = sum(p.stat().st_size for p in files)
        later = datetime.now(UTC) + timedelta(seconds=cfg.archive.compress_after_s + 3600)
        assert archive.compress(cfg, now=later)
        files = _files(cfg)
        assert files and all(p.name.endswith(".jsonl.gz") for p in files)
        assert sorted(
            json.dumps(json.loads(line), sort_keys=True)
            for p in files
            for line in archive.read_lines(p)
        ) == sorted(json.dumps(r, sort_keys=True) for r in lines)
        assert sum(p.stat().st_size for p in files) * 3 < plain  # gzip: under a third
        # the views read the compressed files (the value checks below run on them)
        cli.main([*scope, "archive", "views", "--topic-prefix", f"{prefix}."])
        assert _counts(ch, prefix) == want

        # the same values as produced, for every player event (v1 ones read platform as NULL)
        rows = ch.query(
            f"SELECT event_id, player_id, event_type, damage, platform, "
            f"toUnixTimestamp64Milli(event_time), dt, `hour` FROM `{prefix}`.archive_player_events"
        ).result_rows
        produced = {
            r["event_id"]: (
                r["player_id"],
                r["event_type"],
                r["damage"],
                r["platform"],
                r["event_time"],
            )
            for r in sent[PLAYER]
        }
        assert {r[0]: tuple(r[1:6]) for r in rows} == produced
        assert sum(1 for r in rows if r[4] is None) >= 10
        for r in rows:  # partitioned by event time
            t = datetime.fromtimestamp(r[5] / 1000, UTC)
            assert (r[6], r[7]) == (t.date(), t.hour)
        sensors = ch.query(
            f"SELECT device_id, value, src_offset FROM `{prefix}`.archive_sensor_readings"
        ).result_rows
        assert Counter((d, v) for d, v, _ in sensors) == Counter(
            (r["device_id"], r["value"]) for r in sent[SENSOR]
        )
        # dead letters: the garbage records, where they came from and why
        dead = ch.query(
            f"SELECT source, reason, src_partition, src_offset, base64Decode(value) AS value "
            f"FROM `{prefix}`.archive_dead_letters ORDER BY value"
        ).result_rows
        garbage = {k for k, case in w.cases.items() if case == "garbage"}
        assert {(cfg.kafka.topic(SENSOR), p, o) for _, _, p, o, _ in dead} == garbage
        assert [(s, v) for s, _, _, _, v in dead] == [(SENSOR, f"not avro {i}") for i in range(3)]
        assert all(reason for _, reason, _, _, _ in dead)

        # retention: nothing is 30 days old yet; 31 days later every partition goes
        assert cli.main([*scope, "archive", "expire", "--topic-prefix", f"{prefix}."]) == 0
        assert all(p.exists() for p in files)
        later = datetime.now(UTC) + timedelta(days=cfg.archive.retention_days + 1)
        gone = archive.expire(cfg, now=later)
        assert gone and not any(p.exists() for p in files)
    finally:
        ch.command(f"DROP DATABASE IF EXISTS `{prefix}`")
        ch.close()
