"""Data quality per source topic: how many records were late, dead-lettered, from the future or
copies of an event already seen (duplicates).

Counted from Kafka itself (end offsets of `<topic>`; the records of `late.<topic>`, `dup.<topic>`
and `dlq.<topic>`, read with the reason header of each dead letter), so it needs no job to be running and agrees with what a
consumer of those topics sees. `flinkpulse stack status` prints it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from flinkpulse import topics
from flinkpulse.config import Config

#: side-topic records read per topic (newest first); beyond it, counts are scaled from offsets
#: (the loader samples this every loader.quality_interval_s: keep it cheap)
MAX_SCAN = 50_000


@dataclass(frozen=True)
class TopicQuality:
    """Counts of one source topic. `dead_lettered` and `future` do not overlap: both are in
    dlq.<topic>, `future` the dead letters whose reason starts with "future:"."""

    topic: str
    records: int
    late: int
    dead_lettered: int
    future: int
    #: later copies of an on-time event, dropped by the jobs (dup.<topic>)
    duplicates: int = 0

    def share(self, n: int) -> str:
        return f"{n:,} ({100.0 * n / self.records:.2f} %)" if self.records else f"{n:,}"


def _counts(
    consumer: Any, topic: str, md: dict[str, Any]
) -> tuple[int, list[tuple[int, int, int]]]:
    """Records in `topic` (high - low, summed over partitions) and each partition's range."""
    from confluent_kafka import TopicPartition

    parts = []
    total = 0
    for p in sorted(md[topic].partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high - low
        parts.append((p, low, high))
    return total, parts


def _scan(consumer: Any, topic: str, parts: list[tuple[int, int, int]]) -> tuple[int, int]:
    """(records, of which "future:") in a side topic, read_committed. The jobs write side
    topics in transactions, whose commit markers take offsets too: offsets overcount them, so
    they are read (the newest MAX_SCAN; beyond that, counts are scaled from the offsets)."""
    from confluent_kafka import TopicPartition

    span = sum(h - lo for _, lo, h in parts)
    if not span:
        return 0, 0
    per = max(1, MAX_SCAN // len(parts))
    assign = [TopicPartition(topic, p, max(lo, h - per)) for p, lo, h in parts if h > lo]
    want = {(topic, p): h for p, lo, h in parts if h > lo}
    consumer.assign(assign)
    seen = future = 0
    deadline = time.monotonic() + 30
    while want and time.monotonic() < deadline:
        for m in consumer.consume(1000, 0.5):
            if m.error():
                continue
            seen += 1
            reason = dict(m.headers() or []).get("error", b"")
            future += reason.startswith(b"future:")
        # a partition is done once our position is at its end (markers included)
        for tp in consumer.position([TopicPartition(topic, p) for _t, p in want]):
            if tp.offset >= want.get((topic, tp.partition), 0):
                want.pop((topic, tp.partition), None)
    consumer.unassign()
    scanned = sum(h - max(lo, h - per) for _, lo, h in parts)
    if scanned >= span:
        return seen, future
    scale = span / scanned  # a long topic: the newest part stands for the rest
    return round(seen * scale), round(future * scale)


def source_quality(cfg: Config) -> list[TopicQuality]:
    """One row per source topic that exists (read_committed: what the jobs committed)."""
    from confluent_kafka import Consumer

    c = Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": f"flinkpulse-status-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "log_level": 0,
        }
    )
    try:
        md = topics.existing_topics(
            c,
            [
                cfg.kafka.topic(t)
                for logical in topics.SOURCE_TOPICS
                for t in (logical, f"late.{logical}", topics.dup_topic(logical), f"dlq.{logical}")
            ],
        )
        rows = []
        for logical in topics.SOURCE_TOPICS:
            name = cfg.kafka.topic(logical)
            if name not in md:
                continue
            n, _ = _counts(c, name, md)
            late = dlq = future = dups = 0
            if cfg.kafka.topic(f"late.{logical}") in md:
                _, parts = _counts(c, cfg.kafka.topic(f"late.{logical}"), md)
                late, _ = _scan(c, cfg.kafka.topic(f"late.{logical}"), parts)
            if cfg.kafka.topic(topics.dup_topic(logical)) in md:
                _, parts = _counts(c, cfg.kafka.topic(topics.dup_topic(logical)), md)
                dups, _ = _scan(c, cfg.kafka.topic(topics.dup_topic(logical)), parts)
            if cfg.kafka.topic(f"dlq.{logical}") in md:
                _, parts = _counts(c, cfg.kafka.topic(f"dlq.{logical}"), md)
                dlq, future = _scan(c, cfg.kafka.topic(f"dlq.{logical}"), parts)
            rows.append(TopicQuality(logical, n, late, dlq - future, future, dups))
        return rows
    finally:
        c.close()


def render(rows: list[TopicQuality]) -> str:
    """The table `stack status` prints under the components."""
    head = ["SOURCE TOPIC", "RECORDS", "LATE", "DEAD-LETTERED", "FUTURE (DEAD-LETTERED)"]
    head.append("DUPLICATES")
    body = [
        [r.topic, f"{r.records:,}", r.share(r.late), r.share(r.dead_lettered), r.share(r.future)]
        + [r.share(r.duplicates)]
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)).rstrip()
        for x in [head, *body]
    )


def reason_kind(reason: str) -> str:
    """A dead-letter reason without its particulars (numbers, quoted values, the decoder's
    detail), so that reasons of one kind count together: "cannot decode with schema id N"."""
    if reason.startswith("future:"):
        return "future: event time too far ahead of its Kafka timestamp"
    kind = re.sub(r"'[^']*'|\"[^\"]*\"", "…", re.sub(r"\d+(?:\.\d+)?", "N", reason.strip()))
    head, sep, _ = kind.partition(": ")
    if sep and head.count("(") == head.count(")"):
        kind = head
    return kind[:100] or "(no reason)"


def dead_letter_reasons(cfg: Config, start_ms: int, end_ms: int) -> list[tuple[str, str, int]]:
    """(source topic, reason kind, records) of the dead letters whose Kafka timestamp is in
    [start_ms, end_ms), per source topic that has a dlq.<topic>, the most frequent first."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": f"flinkpulse-report-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "log_level": 0,
        }
    )
    counts: dict[tuple[str, str], int] = {}
    try:
        md = topics.existing_topics(c, [cfg.kafka.topic(f"dlq.{t}") for t in topics.SOURCE_TOPICS])
        for logical in topics.SOURCE_TOPICS:
            dlq = cfg.kafka.topic(f"dlq.{logical}")
            if dlq not in md:
                continue
            parts = sorted(md[dlq].partitions)
            starts = c.offsets_for_times([TopicPartition(dlq, p, start_ms) for p in parts], 10)
            ends = c.offsets_for_times([TopicPartition(dlq, p, end_ms) for p in parts], 10)
            want: dict[int, int] = {}
            assign = []
            for s, e in zip(starts, ends, strict=True):
                _, high = c.get_watermark_offsets(TopicPartition(dlq, s.partition), timeout=10)
                first = s.offset if s.offset >= 0 else high
                stop = e.offset if e.offset >= 0 else high
                if stop > first:
                    want[s.partition] = stop
                    assign.append(TopicPartition(dlq, s.partition, first))
            if not assign:
                continue
            c.assign(assign)
            deadline = time.monotonic() + 30
            while want and time.monotonic() < deadline:
                for m in c.consume(1000, 0.5):
                    p, off = int(m.partition() or 0), int(m.offset() or 0)
                    if m.error() or p not in want or off >= want[p]:
                        continue
                    if start_ms <= m.timestamp()[1] < end_ms:
                        raw = dict(m.headers() or []).get("error") or b""
                        reason = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
                        key = (logical, reason_kind(reason))
                        counts[key] = counts.get(key, 0) + 1
                for tp in c.position([TopicPartition(dlq, p) for p in want]):
                    if tp.offset >= want.get(tp.partition, 0):
                        want.pop(tp.partition, None)
            c.unassign()
    finally:
        c.close()
    return sorted(((t, r, n) for (t, r), n in counts.items()), key=lambda x: (x[0], -x[2], x[1]))
