"""The exactly-once loader: result topics, ``alerts`` and raw security events -> ClickHouse.

Each topic feeds one table (``results.player-stats`` -> ``player_stats``, ``alerts`` ->
``alerts``, ...; :data:`TOPIC_TABLES`). Values are Avro in Confluent wire format with the
writer schema in the registry (cached by id). Rows are batched by size and time and inserted
with clickhouse-connect as the ``writer`` user: where ClickHouse converts every field of the
writer schema as Python would, ClickHouse decodes the batch itself (staged and checked,
:mod:`flinkpulse.loader.fast`); otherwise fastavro decodes and the batch goes as Arrow. Records that cannot be
decoded go to ``dlq.<topic>`` with headers ``error``, ``source.topic``, ``source.partition``,
``source.offset`` (as the Flink jobs do).

Exactly once, across crashes
----------------------------
Every row carries ``_topic``, ``_partition``, ``_offset``: where it was read from. The loader
never trusts Kafka's committed offsets; on start and after any error it asks ClickHouse for
``max(_offset)`` per (topic, partition) and consumes from ``max + 1`` (from the beginning when
the table holds nothing of that partition). Why no record is lost or loaded twice:

1. *Unit of write.* An insert holds the rows of ONE (topic, partition), a contiguous run of
   that partition's records in offset order, into the ONE table of that topic. Inserts of one
   partition are issued one after another by a single thread, the next only after the
   previous one was acknowledged.
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
   not rows: transaction markers, aborted records (read_committed never delivers them) and
   dead-lettered records.
4. *In-flight inserts.* An insert whose outcome the loader did not see (timeout, kill -9) may
   still be running in ClickHouse when the loader resumes; reading M then would let it load
   the same records again. Every insert has a query id ``fpload-<database>-...``; the loader
   resumes only once ``system.processes`` shows none of its inserts running.
5. *Dead letters* are produced and flushed (acknowledged by Kafka) before the insert of the
   batch they belong to, so a record is never skipped without its dead letter. A staged batch
   has none: if ClickHouse refuses it, the loader resumes (3) and decodes that batch's offsets
   in Python, which finds the bad records and dead-letters them first. A crash
   between the two re-sends the dead letter on replay: the DLQ is at-least-once (duplicates
   carry the same ``source.offset`` header).

Assumptions: one loader per ClickHouse database (two would both resume from the same M), and
Kafka retention longer than the longest outage (the loader warns if records it needs are gone).

Bounded memory: at most ``loader.batch_rows`` buffered rows plus two batches queued for the
insert thread, plus librdkafka's fetch queue (capped); when ClickHouse is down the loader
pauses consumption, drops its buffers (Kafka keeps the records), waits with exponential
backoff and resumes from what ClickHouse holds.
"""

from __future__ import annotations

from flinkpulse.topics import RESULT_TOPICS


def table_for(topic: str) -> str:
    """The ClickHouse table a logical result topic is loaded into."""
    return topic.removeprefix("results.").replace("-", "_").replace(".", "_")


#: logical topic -> table, every topic the loader consumes
TOPIC_TABLES: dict[str, str] = {t: table_for(t) for t in RESULT_TOPICS}
