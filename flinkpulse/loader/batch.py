"""Batch building: Kafka records of one (topic, partition) -> one :class:`Insert`.

Two variants behind one small interface (:class:`Batch`: ``add``-ed records, ``offsets``,
``build`` -> the insert and the dead letters):

* :class:`ArrowBatch` — records decoded in Python (fastavro), typed into one Arrow table
  (:func:`flinkpulse.loader.columns.build`); records that cannot be decoded or stored are its
  dead letters;
* :class:`StagedBatch` — records of one schema id ClickHouse decodes itself, concatenated into
  one Avro container (:mod:`flinkpulse.loader.fast`); it never has dead letters (a refused
  batch is replayed through the Arrow variant).

:class:`Router` decides per record which variant takes it; :class:`Batcher` keeps the open
batch of each partition and hands full or due ones to its sink.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from flinkpulse.loader.avro import DecodeError, Decoder, RegistryUnavailable
from flinkpulse.loader.columns import TableSpec, build
from flinkpulse.loader.exactly_once import Key
from flinkpulse.loader.fast import Plan, plan

log = logging.getLogger("flinkpulse.loader")

#: (Kafka message, reason) of a record that goes to dlq.<topic>
DeadLetter = tuple[Any, str]


@dataclass
class Insert:
    """One INSERT: rows of one (topic, partition), offsets first..last, either an Arrow table
    (`table`) or an Avro container ClickHouse decodes (`body` with its `plan`)."""

    topic: str
    partition: int
    spec: TableSpec
    first: int
    last: int
    rows: int
    table: Any = None  # pyarrow.Table (Arrow variant)
    body: bytes | None = None  # Avro container (staged variant)
    plan: Plan | None = None
    #: the offsets of the rows, ascending (exactly_once.Ledger checks them)
    offsets: list[int] = field(default_factory=list)

    @property
    def key(self) -> Key:
        return (self.topic, self.partition)

    @property
    def staged(self) -> bool:
        return self.body is not None


@dataclass
class Batch:
    """Buffered records of one (topic, partition), a contiguous run in offset order."""

    topic: str
    partition: int
    table: str
    #: offsets of the records that become rows (dead letters excluded)
    offsets: list[int] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)

    #: the schema id ClickHouse decodes by, None: decoded in Python
    sid: int | None = None

    @property
    def key(self) -> Key:
        return (self.topic, self.partition)

    def dead_offsets(self) -> list[int]:
        """Offsets of the records already known to go to the DLQ."""
        return []

    def empty(self) -> bool:
        return not self.offsets and not self.dead_offsets()

    def first(self) -> int:
        """The batch's first offset (row or dead letter)."""
        return min([*self.offsets[:1], *self.dead_offsets()[:1]])

    def build(self, spec: TableSpec) -> tuple[Insert | None, list[DeadLetter]]:
        """The insert of this batch (None: no rows) and its dead letters."""
        raise NotImplementedError


@dataclass
class ArrowBatch(Batch):
    """Records decoded in Python; built into one Arrow table."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    msgs: list[Any] = field(default_factory=list)  # the Kafka messages of `rows`
    dead: list[DeadLetter] = field(default_factory=list)

    def add(self, msg: Any, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.msgs.append(msg)
        self.offsets.append(msg.offset())

    def dead_offsets(self) -> list[int]:
        return [m.offset() for m, _ in self.dead]

    def build(self, spec: TableSpec) -> tuple[Insert | None, list[DeadLetter]]:
        dead = list(self.dead)
        if not self.rows:
            return None, dead
        table, bad = build(spec, self.topic, self.partition, self.rows, self.offsets)
        dead += [(self.msgs[i], reason) for i, reason in sorted(bad.items())]
        if not table.num_rows:
            return None, dead
        offs = table.column("_offset").to_pylist()
        ins = Insert(self.topic, self.partition, spec, offs[0], offs[-1], len(offs), table)
        ins.offsets = offs
        return ins, dead


@dataclass
class StagedBatch(Batch):
    """Records of one schema id left to ClickHouse to decode (Confluent-framed values)."""

    raw: list[bytes] = field(default_factory=list)
    plan: Plan | None = None

    def add_values(self, values: list[bytes], offsets: list[int]) -> None:
        self.raw += values
        self.offsets += offsets

    def build(self, spec: TableSpec) -> tuple[Insert | None, list[DeadLetter]]:
        if not self.raw:
            return None, []
        assert self.plan is not None
        first, last, n = self.offsets[0], self.offsets[-1], len(self.offsets)
        body = self.plan.container(self.raw, self.offsets)
        ins = Insert(self.topic, self.partition, spec, first, last, n, body=body, plan=self.plan)
        ins.offsets = self.offsets
        return ins, []


class Router:
    """Per record: the schema id ClickHouse is to decode it by (a staged batch), or None
    (decoded in Python). ClickHouse decodes where every field of the writer schema converts
    as in Python (:func:`flinkpulse.loader.fast.plan`), unless `enabled` is off or the record's
    offset is in a replay after a refused staged batch."""

    def __init__(self, decoder: Decoder, enabled: bool = True) -> None:
        self.decoder = decoder
        self.enabled = enabled
        self.specs: dict[str, TableSpec] = {}
        #: (table, schema id) -> plan, None: Python decodes
        self.plans: dict[tuple[str, int], Plan | None] = {}
        #: (topic, first 5 bytes of a value) -> schema id to stage, None: decode in Python
        self.sids: dict[tuple[str, bytes], int | None] = {}
        #: (topic, partition) -> decode offsets up to this in Python (a staged insert failed)
        self.slow_until: dict[Key, int] = {}

    def reset(self, specs: dict[str, TableSpec]) -> None:
        """New table specs (after a resume): forget every decision."""
        self.specs = specs
        self.plans.clear()
        self.sids.clear()

    def replay_in_python(self, key: Key, last: int) -> None:
        """A staged batch up to `last` was refused: decode its offsets in Python on replay."""
        self.slow_until[key] = max(self.slow_until.get(key, -1), last)

    def in_replay(self, key: Key, offset: int) -> bool:
        return offset <= self.slow_until.get(key, -1)

    def sid(self, topic: str, table: str, value: bytes) -> int | None:
        """The schema id if ClickHouse is to decode `value`, else None (Python decodes)."""
        header = value[:5]
        sid = self.sids.get((topic, header), -1)
        if sid != -1:
            return sid
        if len(value) < 6 or value[0] != 0:
            self.sids[(topic, header)] = None
            return None
        sid = int.from_bytes(header[1:], "big")
        p = self.plans.get((table, sid), False)
        if p is False:
            try:
                self.decoder.schema(sid)
            except (DecodeError, RegistryUnavailable):
                return None  # the Python path reports it (dead letter, or retry); not cached
            p = plan(self.decoder.raw.get(sid), self.specs[table].ch_types)
            self.plans[(table, sid)] = p
        self.sids[(topic, header)] = sid if p is not None else None
        return sid if p is not None else None

    def plan_of(self, table: str, sid: int) -> Plan:
        p = self.plans[(table, sid)]
        assert p is not None
        return p


class Batcher:
    """The open batch of every (topic, partition): records in, full or due batches out to
    `flush_to` (at most `batch_rows` rows, at most `flush_interval` seconds old).

    A batch holds records decoded one way only: where the way changes (:class:`Router`), the
    open batch is flushed first, so batches of a partition stay in offset order.
    """

    def __init__(
        self,
        router: Router,
        tables: dict[str, str],
        batch_rows: int,
        flush_interval: float,
        flush_to: Callable[[Batch], None],
        failed: Callable[[], bool],
        registry_down: Callable[[BaseException], None],
    ) -> None:
        self.router = router
        self.tables = tables  # physical topic -> table
        self.batch_rows = max(1, batch_rows)
        self.flush_interval = max(0.01, flush_interval)
        self._flush_to = flush_to
        self._failed = failed
        self._registry_down = registry_down
        self.open: dict[Key, Batch] = {}
        #: rows buffered in open batches
        self.buffered = 0

    # -- records in -----------------------------------------------------------------------------

    def handle(self, msgs: list[Any]) -> None:
        """A list of consumed messages (any partitions, each partition's in offset order)."""
        if not self.router.enabled or any(m.error() is not None for m in msgs):
            self._handle_each(msgs)
        else:  # runs of one partition, each as a whole where ClickHouse is to decode it all
            keys = zip([m.topic() for m in msgs], [m.partition() for m in msgs], strict=True)
            i = 0
            for key, grp in groupby(keys):
                n = sum(1 for _ in grp)
                self._handle_run(key, msgs[i : i + n])
                i += n
                if self._failed():
                    return
        if self.buffered >= self.batch_rows:
            self.flush_all()

    def _handle_run(self, key: Key, msgs: list[Any]) -> None:
        """Consecutive records of one partition: staged as a whole if they can all be."""
        values = [m.value() for m in msgs]
        headers = {v[:5] for v in values if v is not None}
        sid = None
        if len(headers) == 1 and None not in values:
            sid = self.router.sid(key[0], self.tables[key[0]], values[0])
        offsets = [m.offset() for m in msgs]
        if sid is None or self.router.in_replay(key, offsets[0]):
            self._handle_each(msgs)
            return
        i, n = 0, len(values)
        while i < n and not self._failed():
            batch = self._batch_for(key, sid)
            assert isinstance(batch, StagedBatch)
            j = min(n, i + self.batch_rows - len(batch.offsets))
            batch.add_values(values[i:j], offsets[i:j])
            self.buffered += j - i
            if len(batch.offsets) >= self.batch_rows:
                self.flush(key)
            i = j

    def _handle_each(self, msgs: list[Any]) -> None:
        from confluent_kafka import KafkaError

        decode = self.router.decoder.decode
        router, enabled = self.router, self.router.enabled
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("Kafka: %s", err)
                continue
            topic = m.topic()
            key = (topic, m.partition())
            value, offset = m.value(), m.offset()
            sid = None
            if enabled and value is not None:
                sid = router.sid(topic, self.tables[topic], value)
                if sid is not None and router.in_replay(key, offset):
                    sid = None
            batch = self._batch_for(key, sid)
            if isinstance(batch, StagedBatch):
                batch.add_values([value], [offset])
            else:
                assert isinstance(batch, ArrowBatch)
                try:
                    row = decode(value)
                except DecodeError as e:
                    batch.dead.append((m, str(e)))
                    continue
                except RegistryUnavailable as e:
                    self._registry_down(e)
                    return
                batch.add(m, row)
            self.buffered += 1
            if len(batch.offsets) >= self.batch_rows:
                self.flush(key)

    def _batch_for(self, key: Key, sid: int | None) -> Batch:
        """The open batch of `key` for records decoded by `sid` (None: Python); a batch ends
        where the way of decoding changes."""
        batch = self.open.get(key)
        if batch is not None and batch.sid != sid:
            if not batch.empty():
                self.flush(key)
            batch = None
        if batch is None:
            topic, table = key[0], self.tables[key[0]]
            if sid is None:
                batch = ArrowBatch(topic, key[1], table)
            else:
                batch = StagedBatch(topic, key[1], table, sid=sid)
                batch.plan = self.router.plan_of(table, sid)
            self.open[key] = batch
        elif batch.empty():
            batch.since = time.monotonic()
        return batch

    # -- batches out ----------------------------------------------------------------------------

    def flush_due(self, now: float) -> None:
        for key, batch in list(self.open.items()):
            if not batch.empty() and now - batch.since >= self.flush_interval:
                self.flush(key)

    def flush_all(self) -> None:
        for key in list(self.open):
            self.flush(key)

    def flush(self, key: Key) -> None:
        """Close the open batch of `key` and hand it on (dropped if an insert failed)."""
        batch = self.open.pop(key, None)
        if batch is None or self._failed():
            return
        self.buffered -= len(batch.offsets)
        self._flush_to(batch)

    def buffered_of(self, key: Key) -> int:
        batch = self.open.get(key)
        return len(batch.offsets) if batch is not None else 0

    def drop(self) -> int:
        """Forget every open batch (Kafka keeps the records); the rows dropped."""
        dropped = self.buffered
        self.open.clear()
        self.buffered = 0
        return dropped

    def idle(self) -> bool:
        return self.buffered == 0 and not self.open
