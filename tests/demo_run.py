"""One `flinkpulse demo` per test session, shared by the tests that look at its results.

The Superset e2e (tests/e2e/test_superset.py) checks the dashboards on its data; the event-time
acceptance (tests/integration/test_demo_event_time.py) checks its late and dead-letter topics.
Each used to run a demo of its own (~5 and ~3 min). The run is `flinkpulse demo` as a user runs
it (a subprocess, its defaults: every domain at 1,500 events/s for two minutes, one scripted
incident per alert rule) on the session stack's default topics and database, the ones the
bundle's datasets read (tests/e2e/superset_data.py). Before the fixture returns it waits until
every job has committed every source record and reads the end offsets of the source, late.* and
dlq.* topics; the run's share is the difference to the offsets before it, so what an earlier
session left on a reused stack does not count. Then it cancels the jobs the demo submitted: left
running, they held four slots and CPU through the rest of the session (the failover test found
no room). The data stays in Kafka and ClickHouse for the tests that read it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from flink_jobs import JOBS
from flink_jobs.common import SOURCE_TOPICS, dlq_topic, late_topic
from flinkpulse.clock import ClockStep
from flinkpulse.config import Config
from flinkpulse.flinkrest import FlinkRest, job_name
from tests.conftest import TEST_STACK
from tests.e2e import superset_data

#: after the demo, how long the jobs may take to commit every source record
CATCH_UP_S = 600
#: the components `flinkpulse demo` uses and the session starts (it would start them itself)
COMPONENTS = ["kafka", "registry", "clickhouse", "flink", "loader", "superset"]


def end_offsets(c: Any, topic: str) -> list[int]:
    """High watermark of each partition of `topic` ([] if it does not exist)."""
    md = c.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        return []
    return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions]


def topic_ends(cfg: Config, c: Any) -> dict[str, list[int]]:
    """End offsets of every source topic and of its late.* and dlq.* topics, by topic name."""
    names = [f(t) for t in SOURCE_TOPICS for f in (lambda t: t, late_topic, dlq_topic)]
    return {cfg.kafka.topic(n): end_offsets(c, cfg.kafka.topic(n)) for n in names}


def uncommitted(cfg: Config, c: Any) -> dict[str, int]:
    """Per source topic, the records some job reading it has not committed yet (a job that
    reads a topic commits offsets for it at every checkpoint; the others never do)."""
    out = {}
    for logical in SOURCE_TOPICS:
        topic = cfg.kafka.topic(logical)
        ends = end_offsets(c, topic)
        behind = 0
        for job in JOBS:
            g = Consumer({**cfg.kafka.client_conf(), "group.id": f"flinkpulse-{job}"})
            try:
                tps = g.committed([TopicPartition(topic, p) for p in range(len(ends))], timeout=10)
            finally:
                g.close()
            if all(tp.offset < 0 for tp in tps):
                continue  # this job does not read the topic (or has not checkpointed yet)
            behind = max(
                behind, sum(e - max(tp.offset, 0) for e, tp in zip(ends, tps, strict=True))
            )
        out[logical] = behind
    return out


def headers(
    cfg: Config, topic: str, start: list[int], limit: int | None = None
) -> list[dict[str, str]]:
    """The headers (`error`: why a record was dead-lettered, late, ...; `source.partition`, ...)
    of the committed records of `topic` after `start` (end offsets per partition): the first
    `limit`, or all."""
    c = Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": f"reasons-{time.time_ns()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    out: list[dict[str, str]] = []
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        at = dict(enumerate(start))
        c.assign([TopicPartition(topic, p, at.get(p, 0)) for p in md.partitions])
        while limit is None or len(out) < limit:
            msgs = c.consume(1000 if limit is None else limit - len(out), 10.0)
            if not msgs:
                break
            out += [_text(m.headers()) for m in msgs if not m.error()]
    finally:
        c.close()
    return out


def _text(hs: Any) -> dict[str, str]:
    """A record's headers as text (a header without a value: "")."""
    return {k: v.decode() if isinstance(v, bytes) else (v or "") for k, v in hs or []}


def reasons(cfg: Config, topic: str, start: list[int], limit: int | None = None) -> list[str]:
    """The `error` headers of the committed records of `topic` after `start` (headers)."""
    return [h.get("error", "") for h in headers(cfg, topic, start, limit)]


#: `sent N records (topic=n, ...) in ...; delivered N, delivery errors N, invalid (not sent) N,
#: malformed on purpose N[; wall clock stepped +26.0 s at 2026-12-05T03:16:07.580Z, ...]`
SUMMARY = re.compile(
    r"sent (?P<sent>[\d,]+) records \((?P<topics>[^)]*)\).*delivery errors (?P<failed>[\d,]+), "
    r"invalid \(not sent\) (?P<invalid>[\d,]+), malformed on purpose (?P<bad>[\d,]+)"
    r"(?:; wall clock stepped (?P<steps>.*))?"
)
STEP = re.compile(r"(?P<size>[-+][\d.]+) s at (?P<at>[\dT:.-]+)Z")
#: `late: <event time> reached Kafka at <Kafka timestamp>[, watermark <its watermark>]`
#: (flink_jobs.common, late.* headers)
LATE = re.compile(
    r"late: (?P<event>[\d :.-]+) reached Kafka at (?P<kafka>[\d :.-]+?)"
    r"(?:, watermark (?P<watermark>[\d :.-]+))?$"
)
#: slack (s) of a clock step's bounds: it is seen at the producer's next check of the clocks
STEP_SLACK_S = 1.0


def utc_epoch(text: str) -> float:
    """Seconds since the epoch of a UTC time written `2026-12-05 03:16:07.580` (or with a T)."""
    return datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=UTC).timestamp()


def explained_by_step(steps: list[ClockStep], event: float, kafka: float, delay: float) -> bool:
    """Whether a late record (event time, Kafka timestamp; epoch s) is one a step of the
    producer's wall clock made late (flinkpulse.clock.ClockStep): after a forward step, an event
    stamped before it (or scheduled in the skipped span) that reached Kafka as the step ended;
    after a backward step, one whose Kafka timestamp lies in the span the clock went back over,
    behind the watermark the earlier timestamps set."""
    for s in steps:
        end = s.at + s.size
        if s.size > 0:
            if s.at - delay <= event < end and end - STEP_SLACK_S <= kafka <= end + delay:
                return True
        elif end - STEP_SLACK_S <= kafka <= s.at + STEP_SLACK_S:
            return True
    return False


@dataclass(frozen=True)
class Late:
    """One record of a late.* topic: its times (epoch s) and where it came from."""

    event: float
    kafka: float
    #: the watermark it was behind (None: late by its Kafka timestamp alone, no watermark yet)
    watermark: float | None
    #: its partition of the source topic
    partition: int


def late_records(cfg: Config, topic: str, start: list[int]) -> list[Late]:
    """Every record of late.* `topic` after `start`, from its headers (committed records only)."""
    out = []
    for h in headers(cfg, topic, start):
        hit = LATE.search(h.get("error", ""))
        assert hit, f"{topic}: a late record without its reason: {h!r}"
        wm = hit["watermark"]
        out.append(
            Late(
                utc_epoch(hit["event"]),
                utc_epoch(hit["kafka"]),
                utc_epoch(wm) if wm else None,
                int(h.get("source.partition", -1)),
            )
        )
    return out


def produced(line: str) -> dict[str, Any]:
    """The numbers of the demo's `produced:` line (the producer's summary)."""
    m = SUMMARY.search(line)
    assert m, f"no producer summary in {line!r}"

    def n(s: str) -> int:
        return int(s.replace(",", ""))

    topics = dict(kv.split("=") for kv in m["topics"].split(", ") if kv)
    steps = [
        ClockStep(at=utc_epoch(s["at"]), size=float(s["size"]))
        for s in STEP.finditer(m["steps"] or "")
    ]
    return {
        "sent": n(m["sent"]),
        "failed": n(m["failed"]),
        "invalid": n(m["invalid"]),
        "bad": n(m["bad"]),
        "per_topic": {t: n(v) for t, v in topics.items()},
        "clock_steps": steps,
    }


@pytest.fixture(scope="session")
def demo_run(ensure_stack: Any) -> superset_data.Run:
    cfg: Config = ensure_stack(*COMPONENTS)
    assert not cfg.kafka.topic_prefix, "the bundle reads the default topics' tables"
    superset_data.prepare(cfg)
    since = datetime.now(UTC) - timedelta(seconds=1)
    env = {**os.environ, **{f"FLINKPULSE_STACK__{k.upper()}": str(v) for k, v in TEST_STACK.items()
                            if f"FLINKPULSE_STACK__{k.upper()}" not in os.environ}}  # fmt: skip
    argv = [sys.executable, "-m", "flinkpulse", "demo", "--timeout", "150"]
    rest = FlinkRest(cfg)
    before = {job: bool(rest.running(job_name(cfg, job))) for job in JOBS}
    c = Consumer({**cfg.kafka.client_conf(), "group.id": f"offsets-{time.time_ns()}"})
    try:
        start = topic_ends(cfg, c)
        # on a state directory an earlier session left, the demo starts the jobs it has to
        # submit at its own run, not at those sessions' input (`flinkpulse demo`, docs/jobs.md)
        run = superset_data.run_pipeline(cfg, since, argv, env, timeout=150)
        t0 = time.monotonic()
        run.behind = uncommitted(cfg, c)
        while any(run.behind.values()) and time.monotonic() < t0 + CATCH_UP_S:
            time.sleep(2)
            run.behind = uncommitted(cfg, c)
        run.seconds["commit_wait"] = round(time.monotonic() - t0, 1)
        end = topic_ends(cfg, c)
    finally:  # also when the demo or a wait failed: the jobs must not hold slots all session
        c.close()
        failures: dict[str, list[str]] = {}
        for job, was_running in before.items():
            running: list[dict[str, Any]] = []
            try:  # one REST answer per job; Flink gone must not mask the first error
                running = rest.running(job_name(cfg, job))
                failures[job] = [
                    f"{datetime.fromtimestamp(ms / 1000, UTC):%H:%M:%S.%f} {cause}"
                    for j in running
                    for ms, cause in rest.failures(j["jid"], since.timestamp() * 1000)
                ]
            except Exception as e:  # noqa: BLE001 - reported in run.failures
                failures[job] = [f"unknown ({e})"]
            if not was_running:
                for j in running:
                    with contextlib.suppress(Exception):
                        rest.cancel(j["jid"])
    run.records = {t: sum(end[t]) - sum(start[t]) for t in end}
    run.failures = failures
    run.start_offsets = start
    print(
        f"demo: {run.produced}; fresh rows {run.fresh}; {run.seconds}; ready {run.ready}; "
        f"job failures {run.failures}"
    )
    return run
