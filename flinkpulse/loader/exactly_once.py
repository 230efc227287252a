"""Why the loader loads every record exactly once, across crashes — and the code that checks it.

Every row carries ``_topic``, ``_partition``, ``_offset``: where it was read from. The loader
never trusts Kafka's committed offsets (:func:`consumer_conf` turns committing off); on start
and after any error it asks ClickHouse for ``max(_offset)`` per (topic, partition)
(:func:`resume_positions`) and consumes from ``max + 1`` (from the beginning when the table
holds nothing of that partition). Why no record is lost or loaded twice:

1. *Unit of write.* An insert holds the rows of ONE (topic, partition), a contiguous run of
   that partition's records in offset order, into the ONE table of that topic. Inserts of one
   partition are issued one after another by a single thread, the next only after the
   previous one was acknowledged. (:meth:`Ledger.check_insert`: every insert starts after
   everything queued before it of its partition since the resume, its offsets ascending.)
2. *Prefix invariant.* For every (topic, partition), the rows in ClickHouse are exactly the
   loadable records with offset <= M, where M = max(_offset). It holds initially (empty), and
   an insert keeps it: it adds the records of (M, M'] (all of them, in order) and nothing else.
   (A batch ClickHouse decodes is staged in a session's temporary table first; the write is
   the one ``INSERT ... SELECT`` from it, refused as a whole if any record is malformed.)
   If an insert dies half-way, ClickHouse has committed either nothing, or all of it (one
   insert of < max_insert_block_size rows into an unpartitioned MergeTree is one part,
   committed atomically), or -- should a server split it into several blocks -- its first
   blocks, i.e. again a prefix in offset order. The tables have no PARTITION BY on purpose:
   partitioning would cut one insert into parts per partition key, in another order.
3. *Resume.* After a crash (of the loader, of ClickHouse, of the network) the loader reads M
   and consumes from M + 1: records <= M are in, records > M are not (by 2), so each record
   ends up in the table exactly once. Offsets not in the table below M are records that are
   not rows: transaction markers, aborted records (read_committed never delivers them),
   dead-lettered records and, in a compacted topic (iot.devices), records the log cleaner
   removed before the loader read them. The "commit" of a record's position is its row: the two cannot
   part. (:meth:`Ledger.resumed` restarts the checks of 1 from M + 1.)
   Offsets are a topic's: a topic deleted and created again (or a Kafka whose data was reset)
   starts over at 0 under the same name. Before it resumes, the loader compares the topic ID
   recorded for each topic it holds rows of (``loader_topics``: :func:`recorded_topic_ids`)
   with Kafka's, and each M with the partition's end; either mismatch stops it with how to
   start over (TopicRecreated, PositionAhead) instead of skipping the new topic's records.
   A running loader compares the IDs again every few seconds, and before it refuses an
   overlap (a consumer Kafka reset to the start of a shorter new topic).
4. *In-flight inserts.* An insert whose outcome the loader did not see (timeout, kill -9) may
   still be running in ClickHouse when the loader resumes; reading M then would let it load
   the same records again. Every insert has a query id made by :func:`insert_query_id`,
   starting with :func:`query_id_prefix` of the database; the loader resumes only once
   ``system.processes`` shows no query with that prefix running.
5. *Dead letters* are produced and flushed (acknowledged by Kafka) before the insert of the
   batch they belong to, so a record is never skipped without its dead letter
   (:meth:`Ledger.check_insert` refuses an insert whose batch has unacknowledged dead letters).
   A staged batch has none: if ClickHouse refuses it, the loader resumes (3) and decodes that
   batch's offsets in Python, which finds the bad records and dead-letters them first. A
   crash between the two re-sends the dead letter on replay: the DLQ is at-least-once
   (duplicates carry the same ``source.offset`` header).

Assumptions: one loader per ClickHouse database (two would both resume from the same M), and
Kafka retention longer than the longest outage (the loader warns if records it needs are gone).

The checks run in the loader on every batch (an :class:`InvariantViolation` is a bug: the
loader stops instead of loading wrong rows); tests/unit/test_loader_unit.py drives them with
histories that break each point.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: (physical topic, partition)
Key = tuple[str, int]

#: consumer settings the argument rests on (point 3: positions come from ClickHouse only)
_NEVER_COMMIT = {"enable.auto.commit": False, "enable.auto.offset.store": False}


class InvariantViolation(AssertionError):
    """The loader was about to break a point of the exactly-once argument (a bug)."""


def query_id_prefix(database: str) -> str:
    """The prefix of every query id (and session id) of the loader of `database` (point 4)."""
    return f"fpload-{database}-"


def insert_query_id(database: str, topic: str, partition: int, first: int, last: int) -> str:
    """The query id of one statement writing offsets first..last of (topic, partition): unique
    per attempt, and found by :func:`query_id_prefix` in ``system.processes`` (point 4)."""
    return f"{query_id_prefix(database)}{topic}-{partition}-{first}-{last}-{uuid.uuid4().hex[:8]}"


def session_id(database: str) -> str:
    """A fresh ClickHouse session id of the loader of `database` (its stage tables live there)."""
    return f"{query_id_prefix(database)}{uuid.uuid4().hex}"


def consumer_conf(database: str) -> dict[str, Any]:
    """The Kafka consumer settings of the loader: positions are never committed to nor read
    from Kafka (point 3), only committed records are read (point 3: aborted ones never)."""
    return {
        "group.id": f"flinkpulse-loader-{database}",  # required by librdkafka, never used
        **_NEVER_COMMIT,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    }


def check_consumer_conf(conf: Mapping[str, Any]) -> None:
    """InvariantViolation unless `conf` keeps Kafka's committed offsets out of the loader."""
    for k, v in _NEVER_COMMIT.items():
        if conf.get(k) is not v:
            raise InvariantViolation(f"consumer setting {k} must be {v}, is {conf.get(k)!r}")
    if conf.get("isolation.level") != "read_committed":
        raise InvariantViolation("the loader must read committed records only")


def resume_positions(ch: Any, tables: Mapping[str, str]) -> dict[Key, int]:
    """(topic, partition) -> max(_offset) + 1 as held in ClickHouse (point 3).

    tables: physical topic -> qualified table name.
    """
    out: dict[Key, int] = {}
    for topic, qualified in tables.items():
        rows = ch.query(
            f"SELECT _partition, max(_offset) FROM {qualified} "
            "WHERE _topic = {t:String} GROUP BY _partition",
            parameters={"t": topic},
        ).result_rows
        for p, mx in rows:
            out[(topic, int(p))] = int(mx) + 1
    return out


@dataclass
class Ledger:
    """What the main thread handed to inserts since the last resume, per partition: the
    executable form of points 1, 3 and 5."""

    #: (topic, partition) -> the highest offset queued for insert (or dead-lettered) so far
    last: dict[Key, int] = field(default_factory=dict)
    #: (topic, partition) -> offsets dead-lettered and acknowledged, not yet covered by an insert
    acked: dict[Key, set[int]] = field(default_factory=dict)

    def resumed(self, start: Mapping[Key, int], partitions: Iterable[Key]) -> None:
        """Consumption restarts at `start` (absent: the beginning); forget what was queued."""
        self.last = {k: start.get(k, 0) - 1 for k in partitions}
        self.acked.clear()

    def overlaps(self, key: Key, first: int) -> bool:
        """A batch of `key` from offset `first` would cover what was queued already (point 1:
        an insert refused by :meth:`check_insert`)."""
        return key in self.last and first <= self.last[key]

    def dead_letters_acked(self, key: Key, offsets: Iterable[int]) -> None:
        """Kafka acknowledged the dead letters of these offsets (point 5)."""
        self.acked.setdefault(key, set()).update(offsets)

    def check_insert(
        self, key: Key, first: int, offsets: list[int], dead: Iterable[int] = ()
    ) -> None:
        """An insert of `offsets` (rows), whose batch began at `first` and dead-lettered `dead`,
        may be queued: InvariantViolation otherwise. Records it as queued."""
        if key not in self.last:
            raise InvariantViolation(f"{key}: insert before the partition was resumed")
        if first <= self.last[key]:
            raise InvariantViolation(
                f"{key}: batch from offset {first} overlaps what was queued (up to "
                f"{self.last[key]}): it would be loaded twice"
            )
        if any(b <= a for a, b in zip(offsets, offsets[1:], strict=False)):
            raise InvariantViolation(f"{key}: offsets of one insert out of order")
        if offsets and offsets[0] < first:
            raise InvariantViolation(f"{key}: rows before the batch's first offset")
        missing = set(dead) - self.acked.get(key, set())
        if missing:
            raise InvariantViolation(
                f"{key}: insert before the dead letters of {sorted(missing)} were acknowledged"
            )
        top = max([*offsets, *dead], default=first - 1)
        self.last[key] = max(self.last[key], top)
        if key in self.acked:
            self.acked[key] = {o for o in self.acked[key] if o > top}


#: per database: the Kafka topic ID of each topic whose records it holds (point 3)
TOPIC_IDS_TABLE = "loader_topics"


def recorded_topic_ids(ch: Any, database: str) -> dict[str, str] | None:
    """Topic -> the Kafka topic ID recorded for it (point 3); None without the table (a
    database not migrated since it was added): nothing to compare."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    try:
        rows = ch.query(
            f"SELECT topic, argMax(topic_id, recorded_at) FROM `{database}`.{TOPIC_IDS_TABLE} "
            "GROUP BY topic"
        ).result_rows
    except DatabaseError as e:
        if getattr(e, "name", None) == "UNKNOWN_TABLE":
            return None
        raise
    return {str(t): str(i) for t, i in rows}


def record_topic_ids(ch: Any, database: str, ids: Mapping[str, str]) -> None:
    """Record each topic's current Kafka topic ID (done for topics the database holds no rows
    of, before any is loaded, so the IDs recorded are those of the rows' topics)."""
    if ids:
        ch.insert(
            f"`{database}`.{TOPIC_IDS_TABLE}",
            [[t, i] for t, i in sorted(ids.items())],
            column_names=["topic", "topic_id"],
        )
