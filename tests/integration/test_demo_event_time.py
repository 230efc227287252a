"""Issue 14 acceptance: a fresh demo leaves < 0.1 % of any source topic in late.*.

Reads the session's `flinkpulse demo` (tests/demo_run.py, shared with the Superset e2e): its
produce phase (every domain on the live clock for two minutes at 1,500 events/s, each scripted
incident spliced in at its own time) against the four jobs; once every job has committed every
source record, the share of each source topic in its late.* topic is read from end offsets (an
upper bound: on a transactional topic they also count commit markers). Nothing is dead-lettered
either: no record of the demo is malformed or ahead of its Kafka timestamp.

One thing outside the pipeline makes live records late: a step of the machine's wall clock (a
virtual machine resumed, an NTP step), which the producer reports in its summary. A topic over
the bound by its offsets has its late records read: those the step explains
(`explained_by_step`) are late as they should be, and only the rest count.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from flink_jobs.common import SOURCE_TOPICS, dlq_topic, late_topic
from flinkpulse.config import Config
from tests.demo_run import explained_by_step, late_records, produced, reasons
from tests.e2e import superset_data

pytestmark = pytest.mark.integration


def test_fresh_demo_leaves_under_a_thousandth_of_any_source_in_late(
    demo_run: superset_data.Run, base_cfg: Config
) -> None:
    stats = produced(demo_run.produced)
    assert stats["failed"] == 0 and stats["invalid"] == 0 and stats["bad"] == 0, stats
    assert not any(demo_run.behind.values()), f"jobs still behind: {demo_run.behind}"
    n = demo_run.records

    def topic(logical: str) -> str:
        return base_cfg.kafka.topic(logical)

    source = {t: n[topic(t)] for t in SOURCE_TOPICS}
    late = {t: n[topic(late_topic(t))] for t in SOURCE_TOPICS}
    dead = {t: n[topic(dlq_topic(t))] for t in SOURCE_TOPICS}
    # every record the demo sent landed on its topic, and nothing else did meanwhile
    assert {topic(t): k for t, k in source.items() if k} == stats["per_topic"]
    assert sum(source.values()) == stats["sent"]
    assert all(source.values()), source
    share = {t: late[t] / source[t] for t in SOURCE_TOPICS}
    steps = stats["clock_steps"]
    print(f"source {source}\nlate {late}\ndead-lettered {dead}\nwall clock steps {steps}")
    delay = base_cfg.flink.watermark_delay_s
    unexplained = {}
    for t in (t for t, s in share.items() if s >= 0.001):
        name = topic(late_topic(t))
        records = late_records(base_cfg, name, demo_run.start_offsets[name])
        rest = [r for r in records if not explained_by_step(steps, r.event, r.kafka, delay)]
        print(f"{t}: {len(records)} late, {len(records) - len(rest)} by a step of the clock")
        if len(rest) / source[t] >= 0.001:
            # more than the delay after its event time: the producer stamped it that early;
            # less: behind the watermark (a partition marked idle, docs/event-time.md)
            slow = [r for r in rest if r.kafka - r.event > delay]
            behind = [r for r in rest if r.kafka - r.event <= delay]
            parts = Counter(r.partition for r in behind)

            def hms(t: float) -> str:
                return f"{datetime.fromtimestamp(t, UTC):%H:%M:%S.%f}"[:-3]

            unexplained[t] = [
                f"{len(behind)} behind the watermark, {len(slow)} sent more than {delay:g} s "
                "after their event time",
                *(f"partition {p}: {k} behind, Kafka times "
                  f"{hms(min(r.kafka for r in behind if r.partition == p))}–"
                  f"{hms(max(r.kafka for r in behind if r.partition == p))}"
                  for p, k in sorted(parts.items())),
                *(f"event {hms(r.event)} reached Kafka {r.kafka - r.event:.3f} s later, "
                  f"partition {r.partition}, watermark "
                  f"{hms(r.watermark) if r.watermark is not None else 'none'}" for r in rest[:3]),
            ]  # fmt: skip
    assert not unexplained, (
        f"late share per topic: {share} ({late}), wall clock steps {steps}; "
        f"late for another reason, e.g. {unexplained}; the jobs' failures meanwhile "
        f"{demo_run.failures}"
    )
    why = {
        t: reasons(base_cfg, topic(dlq_topic(t)), demo_run.start_offsets[topic(dlq_topic(t))], 5)
        for t, k in dead.items()
        if k
    }
    assert not any(dead.values()), f"dead-lettered: {dead}, e.g. {why}"
