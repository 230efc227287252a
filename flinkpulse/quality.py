"""Data quality per source topic: how many records were late, dead-lettered, from the future or
copies of an event already seen (duplicates).

Counted from Kafka itself (end offsets of `<topic>`; the records of `late.<topic>`, `dup.<topic>`
and `dlq.<topic>`, read with the reason header of each dead letter), so it needs no job to be
running and agrees with what a consumer of those topics sees. `flinkpulse stack status` prints
it; `flinkpulse dlq` lists the records themselves (`side_records`).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flinkpulse import topics
from flinkpulse.config import Config

#: side-topic records read per topic (newest first); beyond it, counts are scaled from offsets
#: (the loader samples this every loader.quality_interval_s: keep it cheap)
MAX_SCAN = 50_000
#: the side topics of a topic, by kind: records the pipeline set aside instead of using them
SIDE_KINDS = {"dlq": topics.dlq_topic, "late": topics.late_topic, "dup": topics.dup_topic}
#: Kafka's answers while a partition's leader is being elected (a topic just created, a broker
#: restarting): a count asks again for up to SETTLE_S seconds instead of failing
SETTLING = frozenset({"NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART"})
SETTLE_S = 5.0

T = TypeVar("T")


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


def _settled(read: Callable[[], T], settle_s: float = SETTLE_S) -> T:
    """`read()`, again every half second for up to `settle_s` while Kafka answers that a
    partition's leader is not known yet (SETTLING); any other error at once."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + settle_s
    while True:
        try:
            return read()
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if getattr(err, "name", lambda: "")() not in SETTLING or time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def _consumer(cfg: Config, purpose: str) -> Any:
    """A consumer that reads what the jobs committed (read_committed), commits nothing and
    joins a group of its own (`purpose` names it)."""
    from confluent_kafka import Consumer

    return Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": f"flinkpulse-{purpose}-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "log_level": 0,
        }
    )


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


def source_quality(cfg: Config, settle_s: float = SETTLE_S) -> list[TopicQuality]:
    """One row per source topic that exists (read_committed: what the jobs committed). A
    partition without a leader yet (a topic just created) is asked again for up to `settle_s`."""
    return _settled(lambda: _source_quality(cfg), settle_s)


def _source_quality(cfg: Config) -> list[TopicQuality]:
    c = _consumer(cfg, "status")
    try:
        md = topics.existing_topics(
            c,
            [
                cfg.kafka.topic(t)
                for logical in topics.SOURCE_TOPICS
                for t in (logical, *(side(logical) for side in SIDE_KINDS.values()))
            ],
        )

        def side_counts(kind: str, logical: str) -> tuple[int, int]:
            """(records, of them from the future) of `logical`'s side topic of `kind`."""
            name = cfg.kafka.topic(SIDE_KINDS[kind](logical))
            if name not in md:
                return 0, 0
            _, parts = _counts(c, name, md)
            return _scan(c, name, parts)

        rows = []
        for logical in topics.SOURCE_TOPICS:
            name = cfg.kafka.topic(logical)
            if name not in md:
                continue
            n, _ = _counts(c, name, md)
            late, _ = side_counts("late", logical)
            dups, _ = side_counts("dup", logical)
            dlq, future = side_counts("dlq", logical)
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
    counts: dict[tuple[str, str], int] = {}
    for rec in side_records(cfg, ["dlq"], topics.SOURCE_TOPICS, since_ms=start_ms, until_ms=end_ms):
        if start_ms <= rec.timestamp_ms < end_ms:
            key = (rec.source, reason_kind(rec.reason))
            counts[key] = counts.get(key, 0) + 1
    return sorted(((t, r, n) for (t, r), n in counts.items()), key=lambda x: (x[0], -x[2], x[1]))


#: a bounded read of side topics ends when nothing came for this long (s), even if a partition's
#: position has not reached the end it had at the start
BOUNDED_QUIET_S = 10.0
#: while following, how often (s) to look for side topics created since it started
FOLLOW_LOOK_S = 5.0


@dataclass(frozen=True)
class SideRecord:
    """One record of a side topic (`dlq.`, `late.` or `dup.<topic>`): the original key and
    bytes, and the headers that say why (`error`) and where it came from (`source.*`)."""

    kind: str
    #: the logical topic it was set aside from
    source: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.headers.get("error", "")

    @property
    def origin(self) -> str:
        """Where the original record was: `topic[partition]@offset`; only the topic for one the
        ingest tier refused before it reached Kafka."""
        h = self.headers
        topic = h.get("source.topic", self.source)
        if "source.partition" in h and "source.offset" in h:
            return f"{topic}[{h['source.partition']}]@{h['source.offset']}"
        return topic


def side_topics(kinds: list[str], sources: list[str] | None = None) -> list[tuple[str, str]]:
    """(kind, logical source topic) of every side topic of `kinds` in the topology, only of
    `sources` if given."""
    out = []
    for t in topics.TOPOLOGY:
        if t.kind in kinds:
            source = t.name.removeprefix(f"{t.kind}.")
            if sources is None or source in sources:
                out.append((t.kind, source))
    return out


def side_records(
    cfg: Config,
    kinds: list[str],
    sources: list[str] | None = None,
    since_ms: int | None = None,
    follow: bool = False,
    idle_timeout: float | None = None,
    stop: Callable[[], bool] = lambda: False,
    until_ms: int | None = None,
) -> Iterator[SideRecord]:
    """The records of the side topics of `kinds` (of `sources`, default all), from `since_ms`
    (a Kafka timestamp; default the oldest) to the end each partition had when it started (or
    to the first record at or after `until_ms`), or on as they come with `follow` (until
    `idle_timeout` s pass without one, or `stop()`). Read committed: what the jobs'
    transactions committed."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    named = {cfg.kafka.topic(SIDE_KINDS[k](s)): (k, s) for k, s in side_topics(kinds, sources)}
    c = _consumer(cfg, "side-records")
    ends: dict[tuple[str, int], int] = {}
    pending: set[tuple[str, int]] = set()

    def place(md: dict[str, Any]) -> list[Any]:
        """Where to start reading each partition of the topics of `md` (and where a bounded
        read ends: `ends`, `pending`)."""
        assign = []
        for name, meta in md.items():
            parts = sorted(meta.partitions)
            starts = (
                c.offsets_for_times([TopicPartition(name, p, since_ms) for p in parts], 10)
                if since_ms is not None
                else [TopicPartition(name, p, OFFSET_BEGINNING) for p in parts]
            )
            stops = (
                c.offsets_for_times([TopicPartition(name, p, until_ms) for p in parts], 10)
                if until_ms is not None
                else starts
            )
            for tp, at in zip(starts, stops, strict=True):
                low, high = c.get_watermark_offsets(TopicPartition(name, tp.partition), timeout=10)
                # no record at or after since_ms: from the end
                first = low if tp.offset == OFFSET_BEGINNING else tp.offset
                first = first if first >= 0 else high
                assign.append(TopicPartition(name, tp.partition, first))
                # no record at or after until_ms: to the end
                end = at.offset if until_ms is not None and at.offset >= 0 else high
                ends[(name, tp.partition)] = end
                if end > first and not follow:
                    pending.add((name, tp.partition))
        return assign

    try:
        servers = cfg.kafka.bootstrap_servers
        assign = place(topics.existing_topics(c, list(named), servers=servers))
        if not assign and not follow:
            return
        c.assign(assign)
        placed = {tp.topic for tp in assign}
        last = looked = time.monotonic()
        while not stop() and (follow or pending):
            if follow and len(placed) < len(named) and time.monotonic() - looked > FOLLOW_LOOK_S:
                # a side topic created since (its source's first job submitted): read it too
                looked = time.monotonic()
                md = topics.existing_topics(
                    c, [n for n in named if n not in placed], servers=servers
                )
                if md:
                    c.incremental_assign(_settled(functools.partial(place, md)))
                    placed |= set(md)
            for m in c.consume(500, 0.5):
                if m.error():
                    continue
                where = (m.topic(), int(m.partition() or 0))
                if not follow and int(m.offset() or 0) >= ends[where]:
                    continue  # arrived after the start: a bounded read ends where it began
                last = time.monotonic()
                kind, source = named[m.topic()]
                yield SideRecord(
                    kind,
                    source,
                    m.topic(),
                    where[1],
                    int(m.offset() or 0),
                    m.timestamp()[1],
                    m.key(),
                    m.value(),
                    {k: (v or b"").decode(errors="replace") for k, v in m.headers() or []},
                )
            if follow:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                continue
            # a partition is done once the position reached its end (commit markers included);
            # one that only aborted records or markers keep from it ends after BOUNDED_QUIET_S
            for tp in c.position([TopicPartition(t, p) for t, p in pending]):
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    pending.discard((tp.topic, tp.partition))
            if time.monotonic() - last > BOUNDED_QUIET_S:
                return
    finally:
        c.close()
