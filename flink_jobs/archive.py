"""archive: every accepted source record and every dead letter, as files in the warehouse.

    <warehouse>/<prefix><table>/dt=YYYY-MM-DD/hour=HH/compacted-part-*   (Parquet, JSON lines or Avro)

Tables: one per source topic (its newest Avro schema's fields, nullable, plus the Kafka
provenance) partitioned by event time, and ``dead_letters`` (raw bytes, the reason, where from)
partitioned by the time the record reached Kafka. Files are committed on checkpoints (exactly
once), rolled by size and age, compacted per checkpoint. ClickHouse reads them through the
``archive_*`` views (flinkpulse/archive.py). Late records are archived too: they are accepted
records, only too late for the windows.
"""

from __future__ import annotations

import sys
from typing import Any

from flink_jobs import validation
from flink_jobs.common import (
    JobContext,
    Wire,
    connector_jars,
    decoded_source,
    raw_table,
    run_job,
    sink_schema,
)
from flinkpulse.archive import DEAD_LETTERS, SOURCE_TABLES, parquet_jars
from flinkpulse.config import Config
from flinkpulse.topics import dlq_topic

JOB = "archive"


def _partitions(time_col: str) -> str:
    return f"DATE_FORMAT({time_col}, 'yyyy-MM-dd') AS dt, DATE_FORMAT({time_col}, 'HH') AS `hour`"


def _file_sink(ctx: JobContext, table: str, query: Any) -> None:
    """A filesystem table `archive_<table>` shaped like `query`, partitioned by dt and hour."""
    from pyflink.table import TableDescriptor

    a = ctx.cfg.archive
    path = f"{a.warehouse_uri(ctx.cfg.stack.state_path())}/{ctx.cfg.kafka.topic_prefix}{table}"
    schema = sink_schema(query)
    desc = (
        TableDescriptor.for_connector("filesystem")
        .schema(schema)
        .partitioned_by("dt", "hour")
        .option("path", path)
        .format(a.format)
        .option("sink.rolling-policy.file-size", a.roll_size)
        .option("sink.rolling-policy.rollover-interval", f"{a.roll_interval_s} s")
        .option("sink.rolling-policy.check-interval", "5 s")
        .option("auto-compaction", "true")
        .option("compaction.file-size", a.compaction_size)
    )
    if a.format == "avro":
        desc = desc.option("avro.codec", a.codec)
    if a.format == "parquet":
        # timestamps as INT64 TIMESTAMP(MILLIS), not the legacy INT96 (UTC, like every time here)
        desc = (
            desc.option("parquet.compression", a.parquet_compression.upper())
            .option("parquet.write.int64.timestamp", "true")
            .option("parquet.timestamp.time.unit", "millis")
            .option("parquet.utc-timezone", "true")
        )
    sink = f"archive_{table}"
    ctx.t_env.create_temporary_table(sink, desc.build())
    ctx.inserts.append((sink, query))


def _dead_letters(ctx: JobContext) -> None:
    """dlq.<topic> of every source, with the reason and provenance from the record's headers."""
    from pyflink.table import DataTypes, Schema

    schema = (
        Schema.new_builder()
        .column("k", DataTypes.BYTES())
        .column("v", DataTypes.BYTES())
        .column_by_metadata(
            "headers", DataTypes.MAP(DataTypes.STRING(), DataTypes.BYTES()), None, True
        )
        .column_by_metadata("dlq_partition", DataTypes.INT(), "partition", True)
        .column_by_metadata("dlq_offset", DataTypes.BIGINT(), "offset", True)
        .column_by_metadata("kafka_ts", DataTypes.TIMESTAMP_LTZ(3), "timestamp", True)
        .build()
    )
    selects = []
    for logical in SOURCE_TABLES:
        name = f"dlq_{SOURCE_TABLES[logical]}"
        raw_table(ctx, name, ctx.topic(dlq_topic(logical)), source=True, schema=schema)

        def header(h: str) -> str:
            return f"DECODE(headers['{h}'], 'UTF-8')"

        kafka_time = "CAST(kafka_ts AS TIMESTAMP(3))"
        selects.append(
            f"SELECT '{logical}' AS source, {header('error')} AS reason, k AS `key`, v AS `value`, "
            f"CAST({header('source.partition')} AS INT) AS src_partition, "
            f"CAST({header('source.offset')} AS BIGINT) AS src_offset, "
            f"dlq_partition, dlq_offset, {kafka_time} AS kafka_time, {_partitions(kafka_time)} "
            f"FROM {name}"
        )
    _file_sink(ctx, DEAD_LETTERS, ctx.t_env.sql_query(" UNION ALL ".join(selects)))


def build(
    t_env: Any, cfg: Config, ctx: JobContext | None = None, wire: Wire | None = None
) -> JobContext:
    """Wire the four sources and their dead letters into the archive's file sinks (`wire`,
    the analytics jobs' SQL pipeline that run_job passes on, is not used: no .sql here)."""
    from udfs.flink import register_all

    ctx = ctx or JobContext(cfg=cfg, t_env=t_env, job=JOB)
    if cfg.archive.format == "parquet":
        # flink-parquet and the Hadoop classes it needs: this job's only (deploy/pom.xml)
        tc = ctx.t_env.get_config()
        jars = [*connector_jars(cfg), *parquet_jars(cfg)]
        tc.set("pipeline.jars", ";".join(j.as_uri() for j in jars))
    register_all(ctx.t_env)
    for logical, table in SOURCE_TABLES.items():
        view = f"in_{table}"
        # decoded as the analytics jobs decode it; their side outputs are theirs, not ours
        decoded_source(ctx, logical, view, validation.BY_TOPIC[logical], side_outputs=False)
        cols = [c for c in t_env.from_path(f"{view}_all").get_schema().get_field_names()]
        fields = [c for c in cols if c not in ("k", "v", "ok", "error", "event_time")]
        query = t_env.sql_query(
            f"SELECT {', '.join(f'`{c}`' for c in fields)}, "
            f"CAST(event_time AS TIMESTAMP(3)) AS event_time, {_partitions('event_time')} "
            f"FROM {view}_all WHERE ok"
        )
        _file_sink(ctx, table, query)
    _dead_letters(ctx)
    return ctx


def main(argv: list[str] | None = None) -> None:
    run_job(JOB, build, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
