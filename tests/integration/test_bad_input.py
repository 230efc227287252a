"""Issue 8: bad input against the running pipeline — every case has a documented outcome, and
per topic produced = accepted + dead-lettered + late, with nothing lost or duplicated.

One module-scoped deployment of the four jobs (own topic prefix); all cases are written once,
then each test reconciles one topic. Accepted records are counted through the job's effect:
security events pass 1:1 into results.security-events; the windowed jobs' results show the
accepted readings (a "pusher" record 10 minutes ahead closes the windows: its effect — closed
windows — is what shows it was accepted). Dead letters are attributed to cases by their
source.partition/source.offset headers, late records likewise.

Outcomes (flink_jobs/validation.py, flinkpulse/avro.py, flink_jobs/common.py):
- garbage bytes, wrong magic byte, unknown schema id, truncated, trailing bytes, a record of
  another type -> dlq, with the exact reason of its kind (flinkpulse.avro.Reason); the same
  bytes in a result topic get the same reason in the loader's dlq
- null key -> accepted (the key is not used by the jobs; results are keyed by entity)
- 2 MB record -> accepted and its result written (broker and sinks allow 4 MB records)
- negative damage -> clamped to 0; NaN/inf damage or sensor value, status 999 -> dlq
- event time ahead of its Kafka timestamp by more than the tolerance (5 s): 10 s, 10 min, 1 day
  -> dlq as "future"; > 10 years back -> dlq; more than the watermark delay (5 s) behind its
  Kafka timestamp (1 min, 1 h) -> late.<topic>
- idle partitions (3 of the 4 partitions of a topic get nothing) -> the watermark advances
- exact duplicates -> deduplicated by the jobs before any window: the first copy is accepted,
  the second goes to dup.<topic> (counted there, flinkpulse.quality)
- a schema change breaking compatibility -> rejected up front (registry 409, schemas check)
"""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from flink_jobs import JOBS
from flinkpulse.config import Config
from flinkpulse.flinkrest import FlinkRest, job_name
from flinkpulse.paths import ROOT
from flinkpulse.schemas import SCHEMA_DIR
from tests.demo_run import LATE, utc_epoch
from tests.pipeline_helpers import Reader, Writer, deployment

pytestmark = pytest.mark.integration

SEC = "iot.security-events"
PLAYER = "gaming.player-events"
SENSOR = "iot.sensor-readings"
WEB = "web.access-logs"
DAY_MS = 86_400_000
TIMEOUT = 120


def _sec(i: str, t: int, home: str = "home-bad", room: str = "hall") -> dict[str, Any]:
    return {
        "event_id": i,
        "home_id": home,
        "device_id": "door-1",
        "room": room,
        "kind": "DOOR_CLOSE",
        "event_time": t,
    }


class Pipe:
    def __init__(self, cfg: Config, w: Writer, t0: int) -> None:
        self.cfg, self.w, self.t0 = cfg, w, t0
        self.readers: dict[str, Reader] = {}

    def reader(self, logical: str, avro: bool = False) -> Reader:
        if logical not in self.readers:
            self.readers[logical] = Reader(self.cfg, logical, avro=avro)
        return self.readers[logical]

    def side(self, kind: str, logical: str, expect: int) -> tuple[Counter[str], list[Any]]:
        """Cases of the records in dlq./late.<topic> (by source offset), after it settles."""
        r = self.reader(f"{kind}.{logical}")
        if expect:
            r.until(lambda r: len(r.msgs) >= expect, TIMEOUT, f"{expect} {kind} records")
        r.settle(3)
        out: Counter[str] = Counter()
        for m in r.msgs:
            h = r.headers(m)
            key = (h["source.topic"], int(h["source.partition"]), int(h["source.offset"]))
            out[self.w.cases.get(key, "?")] += 1
        return out, r.msgs


def malformed(w: Writer, t0: int) -> list[tuple[str, bytes]]:
    """(case, value) of the malformed security events: the same bytes reach the jobs (source
    topic) and the loader (result topic), and must get the same reason in both dlq topics."""
    enc = w.encoder(SEC)
    good = enc(_sec("magic", t0))
    return [
        ("garbage bytes", b"plain garbage, not Avro"),
        ("garbage bytes", enc.header + b"\xff\xff\xff\xff\xff\xff\xff"),
        ("wrong magic byte", b"\x01" + good[1:]),
        ("unknown schema id", b"\x00" + struct.pack(">I", 999_999) + good[5:]),
        ("truncated", good[:-3]),
        ("trailing bytes", good + b"\x00\x00"),
    ]


def _write_security(w: Writer, t0: int) -> None:
    for i in range(5):
        w.avro(SEC, "valid", _sec(f"valid-{i}", t0 + i))
    for case, value in malformed(w, t0):
        w.send(SEC, case, b"home-bad", value, timestamp=t0)
    reading = {
        "device_id": "dev-x", "home_id": "home-bad", "room": "hall", "sensor_type": "POWER",
        "value": 5.0, "unit": "W", "appliance": None, "event_time": t0,
    }  # fmt: skip
    w.send(SEC, "record of another type", b"home-bad", w.encoder(SENSOR)(reading), timestamp=t0)
    w.avro(SEC, "null key", _sec("nullkey-0", t0 + 10), key=None)
    w.avro(SEC, "2 MB record", _sec("big-0", t0 + 11, room="x" * 2_000_000))
    for case, ahead in (("10 s", 10_000), ("10 min", 600_000), ("1 day", DAY_MS)):
        tag = case.replace(" ", "")
        w.avro(SEC, f"event time {case} ahead", _sec(f"f{tag}-0", t0 + 20 + ahead), ts=t0 + 20)
    w.avro(SEC, "event time 11 years back", _sec("past-0", t0 - 11 * 365 * DAY_MS), ts=t0)
    dup = w.encoder(SEC)(_sec("dup-0", t0 + 12))
    w.send(SEC, "exact duplicate", b"home-bad", dup, timestamp=t0 + 12)
    w.send(SEC, "exact duplicate", b"home-bad", dup, timestamp=t0 + 12)


def _write_windowed(w: Writer, t0: int, tag: str) -> None:
    base = {
        "match_id": "m-bad", "team": "red", "target_player_id": "p-victim", "headshot": False,
        "weapon": "rifle", "platform": None,
    }  # fmt: skip
    pl = f"p-{tag}"
    for case, et, dmg in [
        ("negative damage", "KILL", -50.0),
        ("negative damage", "ASSIST", 30.0),
        ("NaN/inf damage", "DAMAGE", math.nan),
        ("NaN/inf damage", "DAMAGE", math.inf),
    ]:
        rec = {**base, "event_id": uuid.uuid4().hex, "player_id": pl, "event_type": et,
               "damage": dmg, "event_time": t0 + 1}  # fmt: skip
        w.avro(PLAYER, case, rec)

    dev = f"temp-{tag}"
    reading = {"home_id": "home-bad", "room": "hall", "sensor_type": "TEMPERATURE",
               "unit": "C", "appliance": None}  # fmt: skip
    for case, v in [
        ("valid", 21.5),
        ("NaN/inf temperature", math.nan),
        ("NaN/inf temperature", math.inf),
        ("NaN/inf temperature", -math.inf),
    ]:
        w.avro(SENSOR, case, {**reading, "device_id": dev, "value": v, "event_time": t0 + 1})

    log = {"client_ip": "10.9.9.9", "user_id": None, "session_id": "s", "method": "GET",
           "bytes": 100, "latency_ms": 12.0, "user_agent": "curl/8", "referrer": None}  # fmt: skip
    path = f"/bad-input-{tag}"
    for case, st in [("valid", 200), ("status 999", 999)]:
        w.avro(WEB, case, {**log, "event_id": uuid.uuid4().hex, "path": path, "status": st,
                           "event_time": t0 + 1})  # fmt: skip


def _write_pushers(w: Writer, t0: int) -> None:
    """One record per windowed topic 10 minutes ahead: closes every window holding t0. Sent
    once the scripted records were read: a partition that wakes from idleness with older
    records than another one's is behind the watermark (see flink_jobs/common.py)."""
    ahead = t0 + 600_000
    w.avro(PLAYER, "pusher", {
        "match_id": "m-bad", "team": "red", "target_player_id": None, "headshot": False,
        "weapon": "rifle", "platform": None, "event_id": "push", "player_id": "p-push",
        "event_type": "SPAWN", "damage": 0.0, "event_time": ahead})  # fmt: skip
    w.avro(SENSOR, "pusher", {
        "home_id": "home-bad", "room": "hall", "sensor_type": "TEMPERATURE", "unit": "C",
        "appliance": None, "device_id": "push", "value": 1.0, "event_time": ahead})  # fmt: skip
    w.avro(WEB, "pusher", {
        "client_ip": "10.9.9.9", "user_id": None, "session_id": "s", "method": "GET",
        "bytes": 100, "latency_ms": 12.0, "user_agent": "curl/8", "referrer": None,
        "event_id": "push", "path": "/push", "status": 200, "event_time": ahead})  # fmt: skip


@pytest.fixture(scope="module")
def pipe(ensure_stack: Callable[..., Config], base_cfg: Config) -> Iterator[Pipe]:
    ensure_stack("kafka", "registry", "flink")
    prefix = f"bad{uuid.uuid4().hex[:6]}"
    with deployment(base_cfg, prefix, list(JOBS)) as cfg:
        # a simulated clock 15 minutes back: the pusher (t0 + 10 min) is still in the past
        t0 = int(time.time() * 1000) - 15 * 60_000
        w = Writer(cfg)
        p = Pipe(cfg, w, t0)
        _write_security(w, t0)
        _write_windowed(w, t0, prefix)
        w.flush()
        # each windowed case's bad records share the key (partition) of its valid ones and
        # follow them: once they are dead-lettered, the valid ones were read
        for logical, n in ((PLAYER, 2), (SENSOR, 3), (WEB, 1)):
            p.reader(f"dlq.{logical}").until(lambda r, n=n: len(r.msgs) >= n, TIMEOUT, "dlq")
        # every accepted security event out (the null-key one is on another partition; of the
        # exact duplicate only the first copy): only then the ones that reached Kafka late,
        # which lift their partition's clock
        p.reader("results.security-events", avro=True).until(
            lambda r: len(r.values) >= 8, TIMEOUT, "the 8 accepted security events"
        )
        late = ((60_000, "1 min", "skew-0", t0 + 21), (3_600_000, "1 h", "late-0", t0 - 3_600_000))
        for after, what, event_id, t in late:
            w.avro(
                SEC, f"reached Kafka {what} after its event time", _sec(event_id, t), ts=t + after
            )
        _write_pushers(w, t0)
        w.flush()
        yield p
        for r in p.readers.values():
            r.close()
        rest = FlinkRest(cfg)
        for job in JOBS:  # never a crashed job
            (j,) = rest.running(job_name(cfg, job))
            assert j["state"] == "RUNNING", f"{job} is {j['state']}"


SEC_EXPECT = {
    "valid": ("accepted 1:1", "accepted"),
    "garbage bytes": ("dead-lettered: wrong magic byte / cannot decode", "dlq"),
    "wrong magic byte": ("dead-lettered: wrong magic byte", "dlq"),
    "unknown schema id": ("dead-lettered: unknown schema id", "dlq"),
    "truncated": ("dead-lettered: the record ends early", "dlq"),
    "trailing bytes": ("dead-lettered: trailing bytes after the record", "dlq"),
    "record of another type": ("dead-lettered: cannot decode (schema mismatch)", "dlq"),
    "null key": ("accepted (key unused; results keyed by home_id)", "accepted"),
    "2 MB record": (
        "accepted, 2 MB result written (broker limit 4 MB; a default client refuses it)",
        "accepted",
    ),
    "event time 10 s ahead": ('dead-lettered as "future" (tolerance 5 s)', "dlq"),
    "event time 10 min ahead": ('dead-lettered as "future" (tolerance 5 s)', "dlq"),
    "event time 1 day ahead": ('dead-lettered as "future" (tolerance 5 s)', "dlq"),
    "reached Kafka 1 min after its event time": ("late.<topic> (over the 5 s delay)", "late"),
    "event time 11 years back": ("dead-lettered: more than 10 years in the past", "dlq"),
    "exact duplicate": ("first accepted, the copy to dup.<topic> (deduplicated)", "dedup"),
    "reached Kafka 1 h after its event time": ("late.<topic> (over the 5 s delay)", "late"),
}


def reasons(w: Writer, t0: int) -> dict[str, set[str]]:
    """case -> the exact dead-letter reasons of its records (flinkpulse.avro.Reason)."""
    sid = int.from_bytes(w.encoder(SEC).header[1:5], "big")
    other = int.from_bytes(w.encoder(SENSOR).header[1:5], "big")
    past = datetime(1970, 1, 1) + timedelta(milliseconds=t0 - 11 * 365 * DAY_MS)
    return {
        "garbage bytes": {
            "wrong magic byte 112 (expected 0: not Confluent Avro)",
            f"cannot decode with schema id {sid}: the record ends early (truncated)",
        },
        "wrong magic byte": {"wrong magic byte 1 (expected 0: not Confluent Avro)"},
        "unknown schema id": {"unknown schema id 999999"},
        "truncated": {f"cannot decode with schema id {sid}: the record ends early (truncated)"},
        "trailing bytes": {
            f"cannot decode with schema id {sid}: 2 trailing bytes after the record"
        },
        "record of another type": {
            f"cannot decode with schema id {other}: written as flinkpulse.iot.SensorReading, "
            "not readable as flinkpulse.iot.SecurityEvent"
        },
        "event time 11 years back": {
            f"invalid value in field event_time: {past.isoformat()} is more than 10 years in "
            "the past"
        },
    }


#: job-only kind: judged in SQL against the record's Kafka timestamp (flink_jobs/common.py)
FUTURE = re.compile(
    r"future: event_time \S+ \S+ is more than 5 s ahead of the Kafka timestamp \S+ \S+"
)


def _case_of_event(event_id: str) -> str:
    return {
        "valid": "valid", "nullkey": "null key", "big": "2 MB record", "dup": "exact duplicate",
        "f10s": "event time 10 s ahead", "f10min": "event time 10 min ahead",
        "f1day": "event time 1 day ahead", "skew": "reached Kafka 1 min after its event time",
        "past": "event time 11 years back",
        "late": "reached Kafka 1 h after its event time",
    }[event_id.split("-")[0]]  # fmt: skip


def test_security_events_each_case_reconciled(pipe: Pipe, reliability: Any) -> None:
    produced = pipe.w.produced[SEC]
    want_dlq = sum(n for c, n in produced.items() if SEC_EXPECT[c][1] == "dlq")
    want_acc = sum(n for c, n in produced.items() if SEC_EXPECT[c][1] == "accepted")
    want_dup = sum(n - 1 for c, n in produced.items() if SEC_EXPECT[c][1] == "dedup")
    want_acc += sum(1 for c in produced if SEC_EXPECT[c][1] == "dedup")
    dup, _ = pipe.side("dup", SEC, want_dup)
    dlq, dlq_msgs = pipe.side("dlq", SEC, want_dlq)
    want_late = sum(n for c, n in produced.items() if SEC_EXPECT[c][1] == "late")
    late, late_msgs = pipe.side("late", SEC, want_late)
    res = pipe.reader("results.security-events", avro=True)
    res.until(lambda r: len(r.values) >= want_acc, TIMEOUT, f"{want_acc} accepted events")
    res.settle(3)
    accepted = Counter(_case_of_event(v["event_id"]) for v in res.values)

    # the exact reason of each kind in the headers, raw bytes kept
    want_reasons = reasons(pipe.w, pipe.t0)
    reader = pipe.reader(f"dlq.{SEC}")
    for m in dlq_msgs:
        h = reader.headers(m)
        case = pipe.w.cases[
            (h["source.topic"], int(h["source.partition"]), int(h["source.offset"]))
        ]
        if case.startswith("event time") and case.endswith("ahead"):
            assert FUTURE.fullmatch(h["error"]), (case, h["error"])
        else:
            assert h["error"] in want_reasons[case], (case, h["error"])
    # the late ones name their event time and Kafka timestamp, and the watermark then when
    # there was one (t0 is in ms)
    times = {"1 min": (pipe.t0 + 21, 60_000), "1 h": (pipe.t0 - 3_600_000, 3_600_000)}
    reader = pipe.reader(f"late.{SEC}")
    for m in late_msgs:
        h = reader.headers(m)
        case = pipe.w.cases[
            (h["source.topic"], int(h["source.partition"]), int(h["source.offset"]))
        ]
        event, after = next(v for k, v in times.items() if f" {k} after" in case)
        hit = LATE.fullmatch(h["error"])
        assert hit, (case, h["error"])
        assert round(utc_epoch(hit["event"]) * 1000) == event, (case, h["error"])
        assert round(utc_epoch(hit["kafka"]) * 1000) == event + after, (case, h["error"])
        assert hit["watermark"] is None or utc_epoch(hit["watermark"]) > 0, h["error"]
    # a client with librdkafka's default limits refuses it before it reaches the broker
    from confluent_kafka import KafkaException, Producer

    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE|too large"):
        Producer(pipe.cfg.kafka.client_conf()).produce(
            pipe.cfg.kafka.topic(SEC), value=b"x" * 2_000_000
        )
    big = [v for v in res.values if v["event_id"] == "big-0"]
    assert len(big) == 1 and len(big[0]["room"]) == 2_000_000
    assert [v["event_id"] for v in res.values if v["event_id"].startswith("dup")] == ["dup-0"]

    for case, n in produced.items():
        expected, kind = SEC_EXPECT[case]
        got = {"accepted": accepted[case], "dlq": dlq[case], "late": late[case]}
        got["dup"] = dup[case]
        if kind == "dedup":
            assert (got["accepted"], got["dup"], sum(got.values())) == (1, n - 1, n), (case, got)
        else:
            assert got[kind] == n and sum(got.values()) == n, (case, n, got)
        reliability(
            "bad input",
            f"{SEC}: {case}",
            expected,
            {"produced": n, **got},
            lost=n - sum(got.values()),
            duplicated=0,
        )
    assert sum(produced.values()) == (
        sum(accepted.values()) + sum(dlq.values()) + sum(late.values()) + sum(dup.values())
    )
    assert "?" not in dlq and "?" not in late and "?" not in dup
    # every record of this topic has the key home-bad: one partition of the topic's
    # cfg.kafka.partitions carries data, the others stay idle and must not hold the watermark
    idle = pipe.cfg.kafka.partitions - 1
    assert idle >= 1
    reliability(
        "bad input",
        f"{SEC}: idle partitions ({idle} of {pipe.cfg.kafka.partitions} get no record)",
        "idle after 10 s, the watermark advances: the late record is judged and every valid "
        "one accepted",
        {"valid produced": produced["valid"], "accepted": accepted["valid"]},
        lost=produced["valid"] - accepted["valid"],
        duplicated=0,
    )


def test_loader_dead_letters_each_kind_with_the_jobs_reason(
    pipe: Pipe, ensure_stack: Callable[..., Config], reliability: Any
) -> None:
    """The malformed security events, sent as they are to results.security-events, reach the
    loader's dlq with the very reasons the job gave them; a value the table cannot store gets
    the same kind of reason as a value a job refuses (`invalid value in field ...`)."""
    from flinkpulse.bench.records import Encoder, flink_schema, register
    from flinkpulse.clickhouse.migrate import client
    from flinkpulse.loader.core import Loader

    ensure_stack("clickhouse")
    result = "results.security-events"
    db = pipe.cfg.kafka.topic_prefix.rstrip(".")
    cfg = pipe.cfg.derive(clickhouse={"database": db})
    bad = malformed(pipe.w, pipe.t0)
    for case, value in bad:
        pipe.w.send(result, case, b"home-bad", value)
    # `room` written as an int: decodes, but the table's String column cannot take it
    odd = flink_schema([("event_id", "string", False), ("room", "int", False)])
    topic = cfg.kafka.topic(result)
    enc = Encoder(register(cfg.registry.url, f"{topic}-odd-value", odd), odd)
    pipe.w.send(result, "room as a number", b"home-bad", enc({"event_id": "odd-0", "room": 5}))
    pipe.w.flush()
    want = reasons(pipe.w, pipe.t0)
    want["room as a number"] = {
        "invalid value in field room: cannot store 5 as string: Expected bytes, got a 'int' object"
    }
    mine = {k for k, c in pipe.w.cases.items() if k[0] == topic}
    assert len(mine) == len(bad) + 1
    # readable (read_committed: after the job's open transaction commits) before the loader runs
    raw = Reader(cfg, result)  # not the fixture's (Avro-decoding) reader of that topic
    raw.until(
        lambda r: mine <= {(m.topic(), m.partition(), m.offset()) for m in r.msgs},
        TIMEOUT,
        "the malformed records",
    )
    raw.close()
    try:
        stats = Loader(cfg, topics=[result]).run(once=True)
        dead, msgs = pipe.side("dlq", result, len(bad) + 1)
        reader = pipe.reader(f"dlq.{result}")
        got: dict[str, set[str]] = {}
        for m in msgs:
            h = reader.headers(m)
            case = pipe.w.cases[
                (h["source.topic"], int(h["source.partition"]), int(h["source.offset"]))
            ]
            assert h["error"] in want[case], (case, h["error"])
            got.setdefault(case, set()).add(h["error"])
        assert got == {case: want[case] for case in dead}
        assert dead == Counter(case for case, _ in bad) + Counter({"room as a number": 1})
        assert stats.dead_letters == len(bad) + 1
    finally:
        ch = client(cfg)
        ch.command(f"DROP DATABASE IF EXISTS `{db}`")
        ch.close()
    reliability(
        "bad input",
        f"{result}: malformed records (loader)",
        "dead-lettered by the loader with the same reason as by the jobs",
        {"produced": len(bad) + 1, "dlq": sum(dead.values())},
        lost=len(bad) + 1 - sum(dead.values()),
        duplicated=0,
    )


def _windowed_case(
    pipe: Pipe,
    reliability: Any,
    logical: str,
    result: str,
    mine: Callable[[dict[str, Any]], bool],
    check: Callable[[list[dict[str, Any]]], int],
    cases: dict[str, str],
    n_dlq: int,
    want_reasons: Counter[str],
) -> None:
    """Reconcile a windowed topic: dlq by offset, accepted via the closed windows' counts."""
    produced = pipe.w.produced[logical]
    dlq, msgs = pipe.side("dlq", logical, n_dlq)
    late, _ = pipe.side("late", logical, 0)
    res = pipe.reader(result, avro=True)
    res.until(lambda r: any(mine(v) for v in r.values), TIMEOUT, "the scripted window")
    res.settle(3)
    accepted_valid = check([v for v in res.values if mine(v)])
    reader = pipe.reader(f"dlq.{logical}")
    assert Counter(reader.headers(m)["error"] for m in msgs) == want_reasons
    for case, n in produced.items():
        # the pusher's effect: the windows above closed, the watermark passed them
        acc = 1 if case == "pusher" else accepted_valid if cases[case] == "accepted" else 0
        got = {"accepted": acc, "dlq": dlq[case], "late": late[case]}
        assert sum(got.values()) == n, (case, n, got)
        if case != "pusher":
            reliability(
                "bad input",
                f"{logical}: {case}",
                cases[f"{case}:doc"],
                {"produced": n, **got},
                lost=n - sum(got.values()),
                duplicated=0,
            )


def test_player_events_negative_damage_clamped_nan_dead_lettered(
    pipe: Pipe, reliability: Any
) -> None:
    pl = f"p-{pipe.cfg.kafka.topic_prefix.rstrip('.')}"

    def check(rows: list[dict[str, Any]]) -> int:
        full = [r for r in rows if r["kills"] + r["assists"] == 2]
        assert full, rows
        assert all(r["damage"] == 30.0 for r in full), full  # -50 clamped to 0, + 30
        return 2

    _windowed_case(
        pipe, reliability, PLAYER, "results.player-stats", lambda v: v["player_id"] == pl, check,
        {"negative damage": "accepted", "negative damage:doc": "accepted, damage clamped to 0",
         "NaN/inf damage": "dlq", "NaN/inf damage:doc": "dead-lettered: not a finite number"},
        2, Counter({"invalid value in field damage: nan is not a finite number": 1,
                    "invalid value in field damage: inf is not a finite number": 1}),
    )  # fmt: skip


def test_sensor_nan_inf_temperature_dead_lettered(pipe: Pipe, reliability: Any) -> None:
    dev = f"temp-{pipe.cfg.kafka.topic_prefix.rstrip('.')}"

    def check(rows: list[dict[str, Any]]) -> int:
        assert all(r["samples"] == 1 and r["avg_value"] == 21.5 for r in rows), rows
        return 1

    _windowed_case(
        pipe, reliability, SENSOR, "results.device-stats", lambda v: v["device_id"] == dev, check,
        {"valid": "accepted", "valid:doc": "accepted (1 sample in its windows)",
         "NaN/inf temperature": "dlq",
         "NaN/inf temperature:doc": "dead-lettered: value is not a finite number"},
        3, Counter(f"invalid value in field value: {v} is not a finite number"
                   for v in ("nan", "inf", "-inf")),
    )  # fmt: skip


def _dlq_cli(cfg: Config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flinkpulse", "--topic-prefix", cfg.kafka.topic_prefix, "dlq",
         *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def test_dlq_command_lists_what_the_jobs_set_aside_with_each_reason(pipe: Pipe) -> None:
    """`flinkpulse dlq` shows the same dead letters and late records of the security events
    that the reconciliation reads from Kafka: each one's origin and reason, the late ones'
    values decoded, a dead letter's bytes intact; `--since now` shows none of them."""
    produced = pipe.w.produced[SEC]
    want_n = {
        kind: sum(n for c, n in produced.items() if SEC_EXPECT[c][1] == kind)
        for kind in ("dlq", "late")
    }
    want = []
    for kind in ("dlq", "late"):
        _, msgs = pipe.side(kind, SEC, want_n[kind])
        reader = pipe.reader(f"{kind}.{SEC}")
        for m in msgs:
            h = reader.headers(m)
            origin = f"{h['source.topic']}[{h['source.partition']}]@{h['source.offset']}"
            want.append((kind, origin, h["error"]))
    assert len(want) == want_n["dlq"] + want_n["late"] > 2

    out = _dlq_cli(pipe.cfg, SEC, "--kind", "dlq", "--kind", "late", "--json")
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted((j["kind"], j["origin"], j["reason"]) for j in got) == sorted(want)
    assert sorted(j["value"]["event_id"] for j in got if j["kind"] == "late") == [
        "late-0",
        "skew-0",
    ]
    garbage = [j for j in got if j["value_base64"] == "cGxhaW4gZ2FyYmFnZSwgbm90IEF2cm8="]
    assert len(garbage) == 1 and garbage[0]["value"] is None  # b"plain garbage, not Avro"

    out = _dlq_cli(pipe.cfg, SEC)  # the default kind: dead letters, a line each
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == want_n["dlq"] and out.stderr.endswith(f"{want_n['dlq']} record(s)\n")
    assert sorted(ln.split(maxsplit=3)[2:] for ln in lines) == sorted(
        ["dlq", f"{origin}  key=home-bad  {reason}"]
        for kind, origin, reason in want
        if kind == "dlq"
    )

    out = _dlq_cli(pipe.cfg, SEC, "--kind", "late", "--since", "now")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "0 record(s)\n")


def test_access_log_status_999_dead_lettered(pipe: Pipe, reliability: Any) -> None:
    path = f"/bad-input-{pipe.cfg.kafka.topic_prefix.rstrip('.')}"

    def check(rows: list[dict[str, Any]]) -> int:
        assert all(r["requests"] == 1 and r["status"] == 200 for r in rows), rows
        return 1

    _windowed_case(
        pipe, reliability, WEB, "results.web-traffic", lambda v: v["path"] == path, check,
        {"valid": "accepted", "valid:doc": "accepted (1 request in its windows)",
         "status 999": "dlq", "status 999:doc": "dead-lettered: not an HTTP status"},
        1, Counter({"invalid value in field status: 999 is not an HTTP status (100..599)": 1}),
    )  # fmt: skip


def test_incompatible_schema_change_rejected_up_front(
    pipe: Pipe, reliability: Any, tmp_path: Path
) -> None:
    """v2 of SecurityEvent adds a required field without default: BACKWARD-incompatible."""
    subject = f"{pipe.cfg.kafka.topic(SEC)}-value"
    schemas = tmp_path / "avro_schemas"
    shutil.copytree(SCHEMA_DIR, schemas)
    d = schemas / "flinkpulse.iot.SecurityEvent"
    v1 = json.loads((d / "v1.avsc").read_text())
    v1["fields"].append({"name": "zone", "type": "string"})
    (d / "v2.avsc").write_text(json.dumps(v1))
    r = requests.post(
        f"{pipe.cfg.registry.url}/subjects/{subject}/versions",
        json={"schema": json.dumps(v1)},
        timeout=10,
    )
    assert r.status_code == 409, r.text
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "--set",
         f"kafka.topic_prefix={pipe.cfg.kafka.topic_prefix}", "schemas", "check",
         "--schema-dir", str(schemas)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL" in out.stdout and "SecurityEvent" in out.stdout
    versions = requests.get(f"{pipe.cfg.registry.url}/subjects/{subject}/versions", timeout=10)
    assert versions.json() == [1]
    reliability(
        "bad input",
        f"{SEC}: schema change breaking compatibility",
        "rejected up front (registry 409, `schemas check` exit 1)",
        {"registered": 0, "registry": r.status_code, "check_exit": out.returncode},
        lost=0,
        duplicated=0,
    )
