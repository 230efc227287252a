"""Issue 14 acceptance: a fresh demo leaves < 0.1 % of any source topic in late.*.

The demo's produce phase (every domain on the live clock, each scripted incident spliced in at
its own time) runs for two minutes against the four jobs on a private topic prefix; once every
job has committed every source record, the share of each source topic in its late.* topic is
read from end offsets (an upper bound: on a transactional topic they also count commit markers).
Nothing is dead-lettered either: no record of the demo is malformed or ahead of its Kafka
timestamp.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from flink_jobs import JOBS
from flink_jobs.common import SOURCE_TOPICS, dlq_topic, late_topic
from flinkpulse import demo
from flinkpulse.config import Config
from tests.pipeline_helpers import deployment

pytestmark = pytest.mark.integration

SECONDS = 120
RATE = 1500
#: after producing, how long the jobs may take to commit every source record
CATCH_UP_S = 600


def end_offsets(c: Any, topic: str) -> list[int]:
    """High watermark of each partition of `topic` ([] if it does not exist)."""
    md = c.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        return []
    return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions]


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


def dlq_reasons(cfg: Config, topic: str, n: int = 5) -> list[str]:
    """The first few dead-letter reasons of a dlq topic (its `error` header)."""
    c = Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": f"dlq-{time.time_ns()}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        msgs = [m for m in c.consume(n, 10.0) if not m.error()]
    finally:
        c.close()
    return [dict(m.headers() or []).get("error", b"").decode() for m in msgs]


def test_fresh_demo_leaves_under_a_thousandth_of_any_source_in_late(
    ensure_stack: Any, base_cfg: Config, prefix: str
) -> None:
    ensure_stack("kafka", "registry", "flink")
    with deployment(base_cfg, prefix, list(JOBS)) as cfg:
        stats = demo.produce(cfg, seconds=SECONDS, rate=RATE, seed=20261130)
        assert stats.failed == 0 and stats.invalid == 0, stats.summary()
        c = Consumer({**cfg.kafka.client_conf(), "group.id": f"offsets-{prefix}"})
        try:
            deadline = time.monotonic() + CATCH_UP_S
            behind = uncommitted(cfg, c)
            while any(behind.values()) and time.monotonic() < deadline:
                time.sleep(5)
                behind = uncommitted(cfg, c)
            assert not any(behind.values()), f"jobs still behind after {CATCH_UP_S}s: {behind}"
            source = {t: sum(end_offsets(c, cfg.kafka.topic(t))) for t in SOURCE_TOPICS}
            late = {t: sum(end_offsets(c, cfg.kafka.topic(late_topic(t)))) for t in SOURCE_TOPICS}
            dead = {t: sum(end_offsets(c, cfg.kafka.topic(dlq_topic(t)))) for t in SOURCE_TOPICS}
        finally:
            c.close()
    assert sum(source.values()) == stats.sent
    assert all(source.values()), source
    share = {t: late[t] / source[t] for t in SOURCE_TOPICS}
    print(f"source {source}\nlate {late}\ndead-lettered {dead}")
    assert all(s < 0.001 for s in share.values()), f"late share per topic: {share} ({late})"
    reasons = {t: dlq_reasons(cfg, cfg.kafka.topic(dlq_topic(t))) for t, n in dead.items() if n}
    assert not any(dead.values()), f"dead-lettered: {dead}, e.g. {reasons}"
