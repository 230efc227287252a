"""The exactly-once loader: result topics, ``alerts``, raw security events and the device
assignments -> ClickHouse.

Each topic feeds one table (``results.player-stats`` -> ``player_stats``, ``alerts`` ->
``alerts``, ``iot.devices`` -> ``device_assignments``, ...; :data:`TOPIC_TABLES`, from the
topology). Values are Avro in Confluent wire format with the
writer schema in the registry (cached by id). Rows are batched by size and time and inserted
with clickhouse-connect as the ``writer`` user: where ClickHouse converts every field of the
writer schema as Python would, ClickHouse decodes the batch itself (staged and checked,
:mod:`flinkpulse.loader.fast`); otherwise fastavro decodes and the batch goes as Arrow. Records that cannot be
decoded go to ``dlq.<topic>`` with headers ``error``, ``source.topic``, ``source.partition``,
``source.offset`` (as the Flink jobs do).

Exactly once, across crashes: every row carries the (topic, partition, offset) it was read
from, and the loader resumes from ``max(_offset) + 1`` as held in ClickHouse, never from
Kafka's committed offsets. The argument, point by point, and the checks that enforce it on
every batch are in :mod:`flinkpulse.loader.exactly_once`.

Units, each readable alone: :mod:`~flinkpulse.loader.batch` (records -> Arrow or staged-Avro
batches -> inserts), :mod:`~flinkpulse.loader.insert` (the insert thread),
:mod:`~flinkpulse.loader.status` (counters, lag, status file), :mod:`~flinkpulse.loader.errors`
(typed errors), wired by :mod:`~flinkpulse.loader.core`.

Bounded memory: at most ``loader.batch_rows`` buffered rows plus two batches queued for the
insert thread, plus librdkafka's fetch queue (capped); when ClickHouse is down the loader
pauses consumption, drops its buffers (Kafka keeps the records), waits with exponential
backoff and resumes from what ClickHouse holds.
"""

from __future__ import annotations

from flinkpulse.topics import TOPOLOGY

#: logical topic -> table, every topic the loader consumes: the result topics (each into the
#: table of its Flink view's name) and the reference topics whose every version ClickHouse keeps
TOPIC_TABLES: dict[str, str] = {t.name: t.table for t in TOPOLOGY if t.table}
