"""What every flinkpulse job shares: environment, sources with dead-lettering, sinks, SQL files.

Shape of a job (see `player_stats.py`):

    raw Kafka topic ──decode (Python, never throws)──┬─ bad ────► dlq.<topic>   (raw bytes + reason)
      (watermark: Kafka timestamp − delay,           ├─ future ─► dlq.<topic>   ("future: …")
       per partition, in the source)                 └─ good ───► event-time view
                                                                   ├─ late ──► late.<topic>
                                                                   └─ on time ─► dedup by event
                                                                        ├─ copy ─► dup.<topic>
                                                                        └─ first ─► job SQL ─► results

Event time and its reference. The Kafka record timestamp (CreateTime, set by the ingest tier:
our producers, the MQTT/HTTP bridges; never read from the payload) is the clock every record is
judged against, and it replays identically because it is stored with the record:

* future: event_time > Kafka timestamp + ``flink.future_tolerance_s`` → dead-lettered with the
  reason (a device with a fast clock cannot drag anything ahead);
* late:   event_time < Kafka timestamp − ``flink.watermark_delay_s`` → ``late.<topic>``;
* on time otherwise. The watermark is the Kafka timestamp − delay, generated per partition
  inside the Kafka source (idle partitions time out), so an on-time record is never behind it,
  whatever the partitions × parallelism: results are the same at any scale.

One limit, from Flink's idleness: a partition idle for ``flink.idle_timeout_s`` (processing
time; a job catching up a backlog on a busy machine needs more, docs/event-time.md) stops
holding the watermark back; if it wakes with records whose Kafka timestamps are behind another
partition's by more than the delay (ingest hosts' clocks apart by that much, or replayed
simulated clocks), they can be behind the watermark. The late branch catches what the planner's
CURRENT_WATERMARK shows; a window drops the rest and counts it in Flink's
``numLateRecordsDropped`` metric. Keep ingest clocks within the delay (NTP does).

Connector options (hosts, topics, security) come from the typed config through
`TableDescriptor`s; the `.sql` files under `sql/flink/` name logical tables only.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from flinkpulse import topics
from flinkpulse.config import CLAIM_MODES, Config, add_config_args, config_from_args
from flinkpulse.errors import UsageError
from flinkpulse.flinkrest import job_name
from flinkpulse.paths import ROOT
from flinkpulse.schemas import latest_schema
from flinkpulse.topics import dlq_topic, dup_topic, job_group, late_topic

SQL_DIR = ROOT / "sql" / "flink"

#: source topics (logical names) -> Avro record, from the topology
SOURCE_TOPICS = dict(topics.SOURCE_RECORDS)

#: a type the caller chooses (Needs.select keeps it with each field name)
T = TypeVar("T")

#: the values of ``flink.dedup_state`` (`dedup_state_of`, `deduplicate`)
DEDUP_STATES = ("auto", "ttl", "watermark")

#: result views (defined in the jobs' SQL) -> result topic and Kafka key column
RESULT_TOPICS = topics.RESULTS


#: result views written with a schema from avro_schemas/ instead of one derived by Flink
WRITER_SCHEMAS = {"alerts": "flinkpulse.alerts.Alert"}


# -- configuration ----------------------------------------------------------------------------


def job_params(cfg: Config, job: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The job's parameters: code defaults < config file/env/flags (`jobs.<job>.<key>`)."""
    given = dict(cfg.jobs.get(job, {}))
    unknown = set(given) - set(defaults)
    if unknown:
        raise UsageError(
            f"unknown parameter(s) for job {job}: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(defaults))})"
        )
    out = dict(defaults)
    for k, v in given.items():
        out[k] = type(defaults[k])(v) if defaults[k] is not None else v
    return out


def parse_args(job: str, argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    """`main(argv)` of every job: flags over env over file; unknown flags pass to Flink."""
    p = argparse.ArgumentParser(prog=f"flink_jobs/{job}.py")
    add_config_args(p)
    p.add_argument(
        "--startup-mode", default=None, help="earliest-offset | latest-offset | group-offsets"
    )
    p.add_argument(
        "--start-at",
        dest="start_at_ms",
        type=int,
        metavar="MS",
        help="unbounded: read the event topics from this Kafka timestamp (epoch ms) on",
    )
    p.add_argument("--from", dest="from_ms", type=int, help="bounded replay: start timestamp (ms)")
    p.add_argument("--to", dest="to_ms", type=int, help="bounded replay: end timestamp (ms)")
    p.add_argument(
        "--backfill",
        action="store_true",
        help="with --from/--to: batch mode, only the windows inside [from, to), no side outputs",
    )
    p.add_argument(
        "--restore",
        metavar="PATH",
        help="resume from this savepoint or retained checkpoint (what `flink run -s` does)",
    )
    p.add_argument(
        "--claim-mode",
        choices=CLAIM_MODES,
        default="no_claim",
        help="with --restore: Flink's claim mode (what `flink run --claimMode` does)",
    )
    args, _flink_flags = p.parse_known_args(argv)
    return config_from_args(args), args


# -- environment ------------------------------------------------------------------------------


@dataclass
class JobContext:
    """Everything `build()` wires into: the table env, config, and the inserts collected."""

    cfg: Config
    t_env: Any
    job: str
    startup_mode: str = "earliest-offset"
    #: read the event topics from this Kafka timestamp (ms) on, whatever `startup_mode` says
    start_at_ms: int | None = None
    bounded: tuple[int, int] | None = None
    #: a backfill's closed range [from, to) (ms): only results inside it are written
    backfill: tuple[int, int] | None = None
    inserts: list[tuple[str, Any]] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return self.cfg.kafka.topic(name)

    @property
    def vectorized_decode(self) -> bool:
        """Decode sources with the pandas UDF (``flink.vectorized_decode``): process mode only,
        Flink runs no pandas UDF in thread mode, where the row UDF decodes."""
        f = self.cfg.flink
        return f.vectorized_decode and f.python_execution_mode == "process"


def create_env(
    cfg: Config, job: str, batch: bool = False, restore: tuple[str, str] | None = None
) -> tuple[Any, Any]:
    """A StreamExecutionEnvironment + StreamTableEnvironment configured from `cfg`; `restore`
    (snapshot path, claim mode) starts the job from that savepoint or checkpoint. It is set on
    this environment alone, so a client that builds several jobs (the warm client) restores
    only this one."""
    from pyflink.common import Configuration
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
    from pyflink.datastream.execution_mode import RuntimeExecutionMode
    from pyflink.table import StreamTableEnvironment

    conf = Configuration()
    jars = connector_jars(cfg)
    if jars:
        conf.set_string("pipeline.jars", ";".join(j.as_uri() for j in jars))
    if restore is not None:
        path, mode = restore
        conf.set_string("execution.state-recovery.path", path)
        conf.set_string("execution.state-recovery.claim-mode", mode.upper())
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(cfg.flink.parallelism)
    if batch:
        env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    else:
        env.enable_checkpointing(
            int(cfg.flink.checkpoint_interval_s * 1000), CheckpointingMode.EXACTLY_ONCE
        )
    t_env = StreamTableEnvironment.create(env)
    tc = t_env.get_config()
    options = flink_table_options(cfg, job)
    for k, v in options.items():
        tc.set(k, v)
    if "python.executable" not in options and tc.get("execution.target", "local") == "local":
        # a local run's workers run on this interpreter. On a cluster (`flink run`, the warm
        # client: target "remote") they run on the cluster's python.executable, which knows its
        # own interpreter; the stack's forks them from a warm one (flinkpulse.stack.udf_fork)
        tc.set("python.executable", sys.executable)
    return env, t_env


def flink_table_options(cfg: Config, job: str) -> dict[str, str]:
    f = cfg.flink
    return {
        "pipeline.name": job_name(cfg, job),
        "table.exec.state.ttl": f"{f.state_ttl_s} s",
        "table.exec.source.idle-timeout": f"{f.idle_timeout_s:g} s",
        # every time in flinkpulse is UTC (Avro timestamp-millis, ClickHouse DateTime64 'UTC')
        "table.local-time-zone": "UTC",
        "python.execution-mode": f.python_execution_mode,
        **f.python_options(),
        "pipeline.object-reuse": "true" if f.object_reuse else "false",
        **f.pairs(f.extra_options),
    }


def connector_jars(cfg: Config) -> list[Path]:
    d = cfg.stack.jars_path() / "flink"
    return sorted(d.glob("*.jar")) if d.is_dir() else []


# -- SQL files --------------------------------------------------------------------------------

_PARAM = re.compile(r"\$\{([a-z0-9_]+)\}")


def sql_statements(path: Path, params: dict[str, Any]) -> list[str]:
    """Split a commented .sql file into statements, substituting numeric `${param}`s."""
    text = path.read_text()

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in params:
            raise KeyError(f"{path.name}: no value for ${{{key}}}")
        v = params[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise TypeError(f"{path.name}: ${{{key}}} must be a number, got {v!r}")
        return str(v)

    # drop `--` comments (not inside quotes: our files keep quotes comment-free), then split
    lines = [re.sub(r"--.*$", "", line) for line in text.splitlines()]
    body = _PARAM.sub(sub, "\n".join(lines))
    return [s.strip() for s in body.split(";") if s.strip()]


def run_sql_file(
    ctx: JobContext,
    name: str,
    params: dict[str, Any],
    rewrite: Callable[[str], str] | None = None,
) -> None:
    """Execute a job's SQL: CREATE VIEWs now; every INSERT INTO is collected for one job.
    `rewrite` edits each statement first (the built-in twin replaces the UDF calls)."""
    for stmt in sql_statements(SQL_DIR / name, params):
        if rewrite is not None:
            stmt = rewrite(stmt)
        m = re.match(r"(?is)^insert\s+into\s+(\w+)\s+(.*)$", stmt)
        v = re.match(r"(?is)^create\s+temporary\s+view\s+(\w+)\s+as\s+(.*)$", stmt)
        if m:
            ctx.inserts.append((m.group(1), ctx.t_env.sql_query(m.group(2))))
        elif v:
            # a view from the planned query, not from SQL text: Flink re-parses text views,
            # and the expansion of a MATCH_RECOGNIZE view does not parse again
            ctx.t_env.create_temporary_view(v.group(1), ctx.t_env.sql_query(v.group(2)))
        else:
            ctx.t_env.execute_sql(stmt)


# -- Kafka tables -----------------------------------------------------------------------------


def _kafka(ctx: JobContext, topic: str) -> Any:
    from pyflink.table import TableDescriptor

    d = (
        TableDescriptor.for_connector("kafka")
        .option("topic", topic)
        .option("properties.bootstrap.servers", ctx.cfg.kafka.bootstrap_servers)
    )
    for k, v in ctx.cfg.kafka.java_properties().items():
        d = d.option(f"properties.{k}", v)
    return d


def _source(ctx: JobContext, topic: str) -> Any:
    d = (
        _kafka(ctx, topic)
        .option("properties.group.id", job_group(ctx.job))
        .option("properties.isolation.level", "read_committed")
        .option("scan.topic-partition-discovery.interval", "10 s")
    )
    for k, v in ctx.cfg.flink.pairs(ctx.cfg.flink.source_properties).items():
        d = d.option(f"properties.{k}", v)
    # a bounded replay starts at its range's start; otherwise `--start-at`, else the mode
    start = ctx.bounded[0] if ctx.bounded else ctx.start_at_ms
    if start is None:
        d = d.option("scan.startup.mode", ctx.startup_mode)
    else:
        d = d.option("scan.startup.mode", "timestamp").option(
            "scan.startup.timestamp-millis", str(start)
        )
    if ctx.bounded:
        d = d.option("scan.bounded.mode", "timestamp").option(
            "scan.bounded.timestamp-millis", str(ctx.bounded[1])
        )
    return d


def _sink(ctx: JobContext, topic: str, sink_name: str) -> Any:
    d = (
        _kafka(ctx, topic)
        .option("sink.delivery-guarantee", "exactly-once")
        .option(
            "sink.transactional-id-prefix",
            # a backfill runs next to the streaming job: its own ids, or it would fence the stream's
            f"flinkpulse-{ctx.cfg.kafka.topic_prefix}{ctx.job}"
            f"{'-backfill' if ctx.backfill else ''}-{sink_name}",
        )
        .option("properties.transaction.timeout.ms", "900000")
        # the broker takes records up to 4 MiB (message.max.bytes); the Java producer's own
        # default of 1 MiB would fail the job (restart loop) on a large accepted or DLQ record
        .option("properties.max.request.size", "4194304")
    )
    for k, v in ctx.cfg.flink.pairs(ctx.cfg.flink.sink_properties).items():
        d = d.option(f"properties.{k}", v)
    return d


def raw_schema(watermark_delay_s: float | None = None) -> Any:
    """Raw key/value bytes plus provenance and the Kafka timestamp. With a delay, the watermark
    (Kafka timestamp − delay) is pushed into the source: one per partition, idle ones skipped."""
    from pyflink.table import DataTypes, Schema

    b = (
        Schema.new_builder()
        .column("k", DataTypes.BYTES())
        .column("v", DataTypes.BYTES())
        .column_by_metadata("src_topic", DataTypes.STRING(), "topic", True)
        .column_by_metadata("src_partition", DataTypes.INT(), "partition", True)
        .column_by_metadata("src_offset", DataTypes.BIGINT(), "offset", True)
        .column_by_metadata("kafka_ts", DataTypes.TIMESTAMP_LTZ(3), "timestamp", True)
    )
    if watermark_delay_s is not None:
        b = b.watermark("kafka_ts", f"kafka_ts - INTERVAL '{watermark_delay_s:.3f}' SECOND")
    return b.build()


def raw_table(ctx: JobContext, name: str, topic: str, source: bool, schema: Any = None) -> None:
    """A raw (bytes in, bytes out) Kafka table: sources of decoding, DLQ and late sinks.
    `schema` replaces a source's default columns (raw_schema) when given."""
    from pyflink.table import DataTypes, Schema

    if source:
        schema = schema or raw_schema(ctx.cfg.flink.watermark_delay_s)
        d = _source(ctx, topic)
    else:
        schema = (
            Schema.new_builder()
            .column("k", DataTypes.BYTES())
            .column("v", DataTypes.BYTES())
            .column_by_metadata("headers", DataTypes.MAP(DataTypes.STRING(), DataTypes.BYTES()))
            .build()
        )
        d = _sink(ctx, topic, name)
    desc = (
        d.schema(schema)
        .option("key.format", "raw")
        .option("key.fields", "k")
        .option("value.format", "raw")
        .option("value.fields-include", "EXCEPT_KEY")
        .build()
    )
    ctx.t_env.create_temporary_table(name, desc)


def sink_schema(table: Any) -> Any:
    """The Schema of a sink (or file table) shaped like `table`: its physical columns, time
    attributes as plain timestamps. Built in the JVM: through PyFlink's Python types it took a
    py4j round trip per type node, 0.2-0.7 s a view, ~1 s of a job's build (bench/README.md)."""
    from pyflink.java_gateway import get_gateway
    from pyflink.table import Schema

    jvm = get_gateway().jvm
    row = table._j_table.getResolvedSchema().toPhysicalRowDataType()
    row = jvm.org.apache.flink.table.types.utils.DataTypeUtils.removeTimeAttribute(row)
    return Schema(jvm.org.apache.flink.table.api.Schema.newBuilder().fromRowDataType(row).build())


def avro_sink(ctx: JobContext, view: str) -> str:
    """Create a Kafka sink whose schema is the view's: Avro via the registry, keyed by entity."""
    logical, key = RESULT_TOPICS[view]
    topic = ctx.topic(logical)
    schema = sink_schema(ctx.t_env.from_path(view))
    sink = f"{view}_sink"
    desc = (
        _sink(ctx, topic, view)
        .schema(schema)
        .option("key.format", "raw")
        .option("key.fields", key)
        .option("value.format", "avro-confluent")
        .option("value.avro-confluent.url", ctx.cfg.registry.url)
        .option("value.avro-confluent.subject", f"{topic}-value")
        .option("value.fields-include", "ALL")
    )
    record = WRITER_SCHEMAS.get(view)
    if record:
        import json

        # topics with a contract in avro_schemas/ are written with that schema (enums included)
        desc = desc.option("value.avro-confluent.schema", json.dumps(latest_schema(record)))
    ctx.t_env.create_temporary_table(sink, desc.build())
    return sink


# -- decoding sources -------------------------------------------------------------------------


def _decoded_expr(name: str, millis: bool) -> str:
    """SQL for one field of the decode UDF's row: epoch millis back to TIMESTAMP(3) (UTC
    session zone), event_time never NULL (bad records get 0 and are split off first)."""
    expr = f"d.`{name}`"
    if millis:
        expr = f"CAST(TO_TIMESTAMP_LTZ({expr}, 3) AS TIMESTAMP(3))"
    if name == "event_time":
        expr = f"COALESCE({expr}, TIMESTAMP '1970-01-01 00:00:00')"
    return expr


def _decoded_column(name: str, millis: bool) -> str:
    return f"{_decoded_expr(name, millis)} AS `{name}`"


def _raw_columns() -> list[tuple[str, Any]]:
    """The raw record and its provenance, as a decoded stream carries them to its side outputs."""
    from pyflink.table import DataTypes

    return [
        ("k", DataTypes.BYTES()),
        ("v", DataTypes.BYTES()),
        ("src_topic", DataTypes.STRING()),
        ("src_partition", DataTypes.INT()),
        ("src_offset", DataTypes.BIGINT()),
    ]


def decoded_source(
    ctx: JobContext,
    logical_topic: str,
    view: str,
    validate: Callable[[dict[str, Any]], str | None] | None = None,
    side_outputs: bool = True,
    needs: Needs | None = None,
    immediate: bool = True,
) -> None:
    """Register `view` (event-time, watermarked, on-time records of `logical_topic`; with
    `needs`, only its fields and the records its predicate keeps, see `Needs`). `immediate`:
    some of its rows reach an output without a window or pattern (`dedup_state_of`).

    Undecodable records go to dlq.<topic>, records behind the watermark to late.<topic>, later
    copies of an on-time event (``flink.dedup``) to dup.<topic>, all with the raw bytes, the
    original key and headers saying why and where from. Only the job
    that owns a topic writes its side outputs (`side_outputs`), so nothing is dead-lettered twice.
    """
    from pyflink.table import DataTypes, Schema
    from pyflink.table.expressions import call, col

    from flink_jobs.decoding import decode_function, reader_fields, timestamp_fields

    topic = ctx.topic(logical_topic)
    record = SOURCE_TOPICS[logical_topic]
    t_env = ctx.t_env
    raw = f"{view}_raw"
    raw_table(ctx, raw, topic, source=True)
    fn_name = f"decode_{view}"
    fields = reader_fields(record)
    if needs is not None:
        fields = needs.select(logical_topic, fields)
    names = [n for n, _ in fields]
    t_env.create_temporary_function(
        fn_name,
        decode_function(record, ctx.cfg.registry.url, validate, ctx.vectorized_decode, names),
    )
    millis = timestamp_fields(record)
    decoded = t_env.from_path(raw).select(
        col("k"),
        col("v"),
        col("src_topic"),
        col("src_partition"),
        col("src_offset"),
        col("kafka_ts"),
        call(fn_name, col("v")).alias("d"),
    )
    t_env.create_temporary_view(f"{view}_decoded", decoded)

    # Every record (decoded or not) re-enters the Table API ONCE, with event_time as its time
    # attribute and the source's own watermark (Kafka timestamp − delay, per partition); the
    # DLQ, late and on-time branches all read from that one stream, so the topic is read and
    # decoded once. Event times never generate watermarks, so no record can move one.
    f = ctx.cfg.flink
    event = _decoded_expr("event_time", "event_time" in millis)
    kafka_time = "CAST(kafka_ts AS TIMESTAMP(3))"
    future = f"({event}) > {kafka_time} + INTERVAL '{f.future_tolerance_s:.3f}' SECOND"
    reason = (
        "'future: event_time ' || CAST(" + event + " AS STRING) || ' is more than "
        f"{f.future_tolerance_s:g} s ahead of the Kafka timestamp ' || CAST({kafka_time} AS STRING)"
    )
    flat_sql = (
        "SELECT k, v, src_topic, src_partition, src_offset, "
        f"{kafka_time} AS kafka_time, "
        f"d.ok AND NOT COALESCE({future}, FALSE) AS ok, "
        f"CASE WHEN NOT d.ok THEN d.error WHEN {future} THEN {reason} END AS error, "
        + ", ".join(_decoded_column(n, n in millis) for n in names)
        + f" FROM {view}_decoded"
    )
    wanted = needs.conjunct() if needs is not None else ""
    if wanted and not side_outputs:
        # nothing else reads this topic's records here: drop the unwanted ones before they
        # cross into the DataStream and back (the ok and late checks below still apply)
        flat_sql = f"SELECT * FROM ({flat_sql}) WHERE ok{wanted}"
    flat = t_env.sql_query(flat_sql)
    ds = t_env.to_data_stream(flat)
    b = Schema.new_builder()
    for n, t in [
        *_raw_columns(),
        ("kafka_time", DataTypes.TIMESTAMP(3)),
        ("ok", DataTypes.BOOLEAN()),
        ("error", DataTypes.STRING()),
        *fields,
    ]:
        b = b.column(n, t)
    b = b.watermark("event_time", "SOURCE_WATERMARK()")
    t_env.create_temporary_view(f"{view}_all", t_env.from_data_stream(ds, b.build()))

    # late: arrived more than the delay after its event time (a rule on the stored Kafka
    # timestamp, so the same records are late at any parallelism), or behind the watermark
    # anyway (a producer whose timestamps go backwards) - never silently dropped by a window
    delay = f"INTERVAL '{f.watermark_delay_s:.3f}' SECOND"
    is_late = f"(event_time < kafka_time - {delay} OR event_time < CURRENT_WATERMARK(event_time))"
    if side_outputs:
        # bad and future records -> DLQ (raw bytes, original key, reason + provenance)
        dlq = f"{view}_dlq"
        raw_table(ctx, dlq, ctx.topic(dlq_topic(logical_topic)), source=False)
        bad = t_env.sql_query(
            f"SELECT k, v, {_headers_sql('error')} AS headers FROM {view}_all WHERE NOT ok"
        )
        ctx.inserts.append((dlq, bad))
        # late -> late.<topic>, kept and counted
        late = f"{view}_late"
        raw_table(ctx, late, ctx.topic(late_topic(logical_topic)), source=False)
        # the watermark it was behind, when there was one yet: a record that reached Kafka in
        # time but is behind it met an idle partition's hazard (docs/event-time.md)
        reason_late = (
            "'late: ' || CAST(event_time AS STRING) || ' reached Kafka at ' || "
            "CAST(kafka_time AS STRING) || COALESCE(', watermark ' || "
            "CAST(CURRENT_WATERMARK(event_time) AS STRING), '')"
        )
        behind = t_env.sql_query(
            f"SELECT k, v, {_headers_sql(reason_late)} AS headers "
            f"FROM {view}_all WHERE ok AND {is_late}"
        )
        ctx.inserts.append((late, behind))
    cols = ", ".join(f"`{n}`" for n in names)
    where = f"FROM {view}_all WHERE ok AND NOT COALESCE({is_late}, FALSE){wanted}"
    if not f.dedup:
        t_env.create_temporary_view(
            view, t_env.sql_query(f"SELECT {cols}, src_partition, src_offset {where}")
        )
        return
    # duplicates: the first copy of each event goes on, later ones to dup.<topic>
    on_time = f"{view}_on_time"
    t_env.create_temporary_view(
        on_time,
        t_env.sql_query(f"SELECT {cols}, k, v, src_topic, src_partition, src_offset {where}"),
    )
    key = topics.DEDUP_KEYS[logical_topic]
    dups = deduplicate(
        t_env, on_time, view, key, [*names, "src_partition", "src_offset"], f.dedup_state, immediate
    )
    if side_outputs:
        # later copies -> dup.<topic>: kept byte for byte and counted (flinkpulse.quality)
        sink = f"{view}_dup"
        raw_table(ctx, sink, ctx.topic(dup_topic(logical_topic)), source=False)
        label = " || '|' || ".join(f"CAST(`{c}` AS STRING)" for c in key)
        reason = f"'duplicate: copy ' || CAST(dedup_copy AS STRING) || ' of ' || {label}"
        ctx.inserts.append(
            (sink, t_env.sql_query(f"SELECT k, v, {_headers_sql(reason)} AS headers FROM {dups}"))
        )


def versioned_kafka(ctx: JobContext, logical_topic: str) -> Any:
    """The Kafka descriptor (no schema, no format) of a compacted topic read as a versioned table
    (topics.VERSIONED: the live rules, the reference tables). The one place its options are
    set, for the jobs and their built-in twin alike.

    The topic is read whole (earliest offset; a bounded run up to its end), whatever the job's
    startup mode: a setting or an assignment made before the job started is still in force;
    only committed records (read_committed, as every source). Its partitions go idle after
    ``flink.rules_idle_timeout_s``: a rarely written topic never holds back the watermark of
    the events joined with it (docs/event-time.md).
    """
    d = (
        _kafka(ctx, ctx.topic(logical_topic))
        .option("properties.group.id", f"{job_group(ctx.job)}-{logical_topic}")
        .option("properties.isolation.level", "read_committed")
        .option("scan.startup.mode", "earliest-offset")
        .option(
            "scan.watermark.idle-timeout", f"{int(ctx.cfg.flink.rules_idle_timeout_s * 1000)} ms"
        )
    )
    if ctx.bounded:
        d = d.option("scan.bounded.mode", "timestamp").option(
            "scan.bounded.timestamp-millis", str(ctx.bounded[1])
        )
    return d


def versioned_source(
    ctx: JobContext, logical_topic: str, view: str, side_outputs: bool = True
) -> None:
    """Register `view`: every record of a compacted topic of topics.VERSIONED (the live rule
    parameters, a reference table), in event time = the record's Kafka timestamp, under the
    name of its version-time field (``changed_at``, ``updated_at``). The job's SQL turns it into
    a versioned table that events are joined with at their event time (docs/rules.md,
    docs/techniques.md).

    Its watermark is the Kafka timestamp itself (one writer stamps its changes in order).
    Undecodable records go to dlq.<topic> (`side_outputs`: the job that owns the topic).
    """
    from pyflink.table import DataTypes, Schema

    from flink_jobs.decoding import decode_function, reader_fields, timestamp_fields

    spec = topics.VERSIONED[logical_topic]
    record, at = spec.record, spec.version_time
    t_env = ctx.t_env
    raw = f"{view}_raw"
    desc = (
        versioned_kafka(ctx, logical_topic)
        .schema(raw_schema(0.0))
        .option("key.format", "raw")
        .option("key.fields", "k")
        .option("value.format", "raw")
        .option("value.fields-include", "EXCEPT_KEY")
        .build()
    )
    t_env.create_temporary_table(raw, desc)
    fn_name = f"decode_{view}"
    t_env.create_temporary_function(fn_name, decode_function(record, ctx.cfg.registry.url, None))
    fields = [(n, t) for n, t in reader_fields(record) if n != at]
    millis = timestamp_fields(record)
    cols = ", ".join(_decoded_column(n, n in millis) for n, _ in fields)
    flat = t_env.sql_query(
        f"SELECT k, v, src_topic, src_partition, src_offset, d.ok AS ok, d.error AS error, {cols}, "
        f"CAST(kafka_ts AS TIMESTAMP(3)) AS `{at}` FROM "
        f"(SELECT *, {fn_name}(v) AS d FROM {raw})"
    )
    b = Schema.new_builder()
    for n, t in [
        *_raw_columns(),
        ("ok", DataTypes.BOOLEAN()),
        ("error", DataTypes.STRING()),
        *fields,
        (at, DataTypes.TIMESTAMP(3)),
    ]:
        b = b.column(n, t)
    b = b.watermark(at, "SOURCE_WATERMARK()")
    t_env.create_temporary_view(
        f"{view}_all", t_env.from_data_stream(t_env.to_data_stream(flat), b.build())
    )
    names = ", ".join(f"`{n}`" for n, _ in fields)
    t_env.create_temporary_view(
        view, t_env.sql_query(f"SELECT {names}, `{at}` FROM {view}_all WHERE ok")
    )
    if side_outputs:
        dlq = f"{view}_dlq"
        raw_table(ctx, dlq, ctx.topic(dlq_topic(logical_topic)), source=False)
        bad = t_env.sql_query(
            f"SELECT k, v, {_headers_sql('error')} AS headers FROM {view}_all WHERE NOT ok"
        )
        ctx.inserts.append((dlq, bad))


def versioned_tables(ctx: JobContext, read: Sequence[str]) -> None:
    """The shared versioned tables (topics.VERSIONED `sql`, e.g. ``devices``) of the topics in
    `read`, from their changes views: run before the job's own SQL, which joins with them."""
    for logical_topic in read:
        spec = topics.VERSIONED.get(logical_topic)
        if spec is not None and spec.sql is not None:
            run_sql_file(ctx, spec.sql, {})


def dedup_state_of(state: str, immediate: bool) -> str:
    """How long a source's identities are remembered, for ``flink.dedup_state`` = `state`.

    ``auto`` is ``watermark`` where the source's rows wait for the watermark anyway (every output
    they reach is a window or a pattern: the state stays flat) and ``ttl`` where some reach an
    output as they arrive (`immediate`, e.g. security_alerts' raw security events): held until
    the watermark passes, those would wait the watermark delay, and on a quiet topic until its
    next record (docs/techniques.md#deduplication)."""
    if state not in DEDUP_STATES:
        raise UsageError(
            f"flink.dedup_state: expected one of {', '.join(DEDUP_STATES)}, got {state!r}"
        )
    if state != "auto":
        return state
    return "ttl" if immediate else "watermark"


def deduplicate(
    t_env: Any,
    source: str,
    view: str,
    key: Sequence[str],
    columns: Sequence[str],
    state: str = "ttl",
    immediate: bool = True,
) -> str:
    """Register `view`: the first copy of each `key` in `source` (its `columns`); return the name
    of the view of the later copies (all of `source`'s columns and `dedup_copy`, 2, 3, ...).

    `state` (``flink.dedup_state``) says how long a key is remembered, and so which copies are
    recognised (docs/techniques.md#deduplication); ``auto`` is one of the two by `immediate`
    (`dedup_state_of`):

    * ``ttl``: a running count per key in arrival order (an OVER aggregate on processing time:
      append-only, the event-time attribute and its watermark pass through). Keys are kept for
      ``table.exec.state.ttl`` (``flink.state_ttl_s``): exact copies and copies re-stamped with
      a later event time are recognised; the state grows with the event rate × the TTL.
    * ``watermark``: a Window Top-N over 1 ms TUMBLE windows of the event time. Exact copies
      share the event time and so the window; a window's rows go on when the watermark passes
      it and its state is dropped then, so the state holds only the events not yet behind the
      watermark. A copy re-stamped with a later event time counts as a new event. The windows
      downstream wait for the same watermark, so their results are not later.

    Copies of one record share its Kafka key, so they arrive in offset order at any parallelism.
    """
    state = dedup_state_of(state, immediate)
    copies = f"{view}_copies"
    every = list(t_env.from_path(source).get_schema().get_field_names())
    if state == "ttl":
        keys = ", ".join(f"`{c}`" for c in key)
        t_env.create_temporary_view(
            copies,
            t_env.sql_query(
                f"SELECT *, COUNT(*) OVER (PARTITION BY {keys} ORDER BY dedup_arrival "
                "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS dedup_copy "
                f"FROM (SELECT *, PROCTIME() AS dedup_arrival FROM {source})"
            ),
        )
        first = ", ".join(f"`{c}`" for c in columns)
    else:
        # a 1 ms window holds one event time, so the window stands for `event_time` in the key
        # and its window_time (end − 1 ms) is that event time, still the time attribute; rows
        # of one window tie on the order and keep their arrival order (ROW_NUMBER)
        part = ", ".join(
            ["window_start", "window_end", *(f"`{c}`" for c in key if c != "event_time")]
        )
        t_env.create_temporary_view(
            copies,
            t_env.sql_query(
                "SELECT * FROM (SELECT *, ROW_NUMBER() OVER ("
                f"PARTITION BY {part} ORDER BY window_time) AS dedup_copy "
                f"FROM TABLE(TUMBLE(TABLE {source}, DESCRIPTOR(event_time), "
                "INTERVAL '0.001' SECOND))) "
                # every copy stays in the rank (the later ones go to the duplicates view)
                "WHERE dedup_copy <= 2147483647"
            ),
        )
        first = ", ".join(
            "window_time AS event_time" if c == "event_time" else f"`{c}`" for c in columns
        )
    t_env.create_temporary_view(
        view, t_env.sql_query(f"SELECT {first} FROM {copies} WHERE dedup_copy = 1")
    )
    dups = f"{view}_duplicates"
    t_env.create_temporary_view(
        dups,
        t_env.sql_query(
            f"SELECT {', '.join(f'`{c}`' for c in every)}, dedup_copy FROM {copies} "
            "WHERE dedup_copy > 1"
        ),
    )
    return dups


def _headers_sql(reason_expr: str) -> str:
    return (
        f"MAP['error', ENCODE({reason_expr}, 'UTF-8'), "
        "'source.topic', ENCODE(src_topic, 'UTF-8'), "
        "'source.partition', ENCODE(CAST(src_partition AS STRING), 'UTF-8'), "
        "'source.offset', ENCODE(CAST(src_offset AS STRING), 'UTF-8')]"
    )


Validator = Callable[[dict[str, Any]], str | None]
#: a job's sources: (logical topic, view, validator, owns the topic's dlq./late./dup. outputs)
Sources = Sequence[tuple[str, str, Validator | None, bool]]


@dataclass(frozen=True)
class Needs:
    """What a job reads of one of its sources (``wire(..., needs={view: Needs(...)})``), so that
    the rest is dropped as early as it can be (``flink.source_needs``): security_alerts reads
    three other jobs' topics for a handful of rules.

    * `fields`: the decoded fields its SQL uses; the decode UDF returns only these (fewer
      values cross from Python to Java), plus ``event_time`` and the dedup key (topics.DEDUP_KEYS).
    * `where`: a SQL predicate over those fields; only matching records go on to deduplication
      and the job's SQL (its state and its work are those records'). It must keep every record
      the job's SQL can use: the SQL keeps its own WHERE, so a too-wide `where` costs speed only.

    Dead-lettering is not affected: a job that owns the topic still judges every record.
    """

    fields: tuple[str, ...]
    where: str | None = None

    def columns(self, logical_topic: str, all_fields: Sequence[str]) -> list[str]:
        """The decoded fields to keep of `logical_topic` (order of `all_fields`, the record's)."""
        keep = {*self.fields, "event_time", *topics.DEDUP_KEYS.get(logical_topic, ())}
        unknown = sorted(keep - set(all_fields))
        if unknown:
            raise UsageError(
                f"{logical_topic}: no field {', '.join(unknown)} in its record "
                f"(fields: {', '.join(all_fields)})"
            )
        return [n for n in all_fields if n in keep]

    def select(self, logical_topic: str, fields: Sequence[tuple[str, T]]) -> list[tuple[str, T]]:
        """The (name, type) pairs of `fields` that `columns` keeps, in their order."""
        keep = set(self.columns(logical_topic, [n for n, _ in fields]))
        return [(n, t) for n, t in fields if n in keep]

    def conjunct(self) -> str:
        """`` AND (<where>)``, to append to a WHERE clause; "" when every record is needed."""
        return f" AND ({self.where})" if self.where else ""


def source_needs(cfg: Config, needs: Mapping[str, Needs] | None) -> Mapping[str, Needs]:
    """A job's `needs` per view, or none when ``flink.source_needs`` is off (every field of
    every record, as before; the bench lever ``all_source_fields``)."""
    return (needs or {}) if cfg.flink.source_needs else {}


def immediate_views(sources: Sources, immediate: Collection[str]) -> frozenset[str]:
    """`immediate` (a job's views some of whose rows reach an output without a window), checked
    against its decoded sources: a misspelt view would silently hold its rows back under
    ``flink.dedup_state=auto``, so it is an error when the job is built."""
    decoded = {view for logical_topic, view, *_ in sources if logical_topic not in topics.VERSIONED}
    unknown = sorted(set(immediate) - decoded)
    if unknown:
        raise ValueError(
            f"immediate names {', '.join(unknown)}, not a decoded source view of the job "
            f"({', '.join(sorted(decoded))})"
        )
    return frozenset(immediate)


def wire(
    ctx: JobContext,
    sources: Sources,
    sql_file: str,
    params: dict[str, Any],
    outputs: list[str],
    rewrite: Callable[[str], str] | None = None,
    needs: Mapping[str, Needs] | None = None,
    immediate: Collection[str] = (),
) -> JobContext:
    """The common body of every `build()`: UDFs, decoded sources (only what `needs` says the
    job reads of a view, with ``flink.source_needs``), the job's SQL (each statement through
    `rewrite` first: a diagnostic variant, flink_jobs/no_joins.py), the sinks. `immediate`: the
    source views some of whose rows reach an output without a window or pattern; the others'
    rows wait for the watermark in the SQL (how long ``flink.dedup_state=auto`` remembers their
    identities: `dedup_state_of`)."""
    from udfs.flink import register_all

    register_all(ctx.t_env)
    wanted = source_needs(ctx.cfg, needs)
    passed_on = immediate_views(sources, immediate)
    for logical_topic, view, validate, owner in sources:
        # a backfill re-reads records the stream already dead-lettered: it writes results only
        owns = owner and ctx.backfill is None
        if logical_topic in topics.VERSIONED:
            versioned_source(ctx, logical_topic, view, side_outputs=owns)
            continue
        decoded_source(
            ctx,
            logical_topic,
            view,
            validate,
            side_outputs=owns,
            needs=wanted.get(view),
            immediate=view in passed_on,
        )
    versioned_tables(ctx, [t for t, *_ in sources])
    run_sql_file(ctx, sql_file, params, rewrite=rewrite)
    for view in outputs:
        table = ctx.t_env.from_path(view)
        if ctx.backfill is not None:
            table = table.where(backfill_filter(table, ctx.backfill))
        ctx.inserts.append((avro_sink(ctx, view), table))
    return ctx


def backfill_filter(table: Any, span: tuple[int, int]) -> Any:
    """The rows of a result view a backfill of [from, to) may write: windows wholly inside the
    range (an edge window would miss records outside it), alerts whose incident started in it
    (their first_event_time), raw events by event time."""
    from pyflink.table.expressions import call_sql

    # TIMESTAMP(3) literals in the job's UTC session zone
    start, end = (f"TIMESTAMP '{_utc(ms)}'" for ms in span)
    names = table.get_schema().get_field_names()
    if "window_start" in names:
        return call_sql(f"window_start >= {start} AND window_end <= {end}")
    at = "first_event_time" if "first_event_time" in names else "event_time"
    return call_sql(f"`{at}` >= {start} AND `{at}` < {end}")


def _utc(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def backfill_read_range(cfg: Config, span: tuple[int, int]) -> tuple[int, int]:
    """The Kafka timestamps a backfill of event times [from, to) reads: an on-time record
    reached Kafka at most future_tolerance_s before its event time and watermark_delay_s after."""
    f = cfg.flink
    return (
        span[0] - int(f.future_tolerance_s * 1000),
        span[1] + int(f.watermark_delay_s * 1000) + 1,
    )


# -- running ----------------------------------------------------------------------------------


def attach_inserts(ctx: JobContext) -> None:
    """Add every collected INSERT to the job's stream graph, as ONE pipeline (sources read
    once): what `execute` submits, and what a test reads of it (``get_execution_plan``)."""
    ss = ctx.t_env.create_statement_set()
    for sink, table in ctx.inserts:
        ss.add_insert(sink, table)
    ss.attach_as_datastream()


def execute(env: Any, ctx: JobContext, wait: bool = False) -> Any:
    """Submit every collected INSERT as ONE Flink job (sources read once)."""
    attach_inserts(ctx)
    name = ctx.t_env.get_config().get("pipeline.name", ctx.job)
    if wait:
        return env.execute(name)
    return env.execute_async(name)


#: how a job's `build()` turns its declaration (sources, SQL file, params, outputs) into a
#: pipeline: `wire` here; the built-in twin passes its own (flink_jobs/builtin_twin.py)
class Wire(Protocol):
    def __call__(
        self,
        ctx: JobContext,
        sources: Sources,
        sql_file: str,
        params: dict[str, Any],
        outputs: list[str],
        *,
        needs: Mapping[str, Needs] | None = None,
        immediate: Collection[str] = (),
    ) -> JobContext: ...


def variant_name(job: str, suffix: str) -> str:
    """The job name of a bench variant of `job` (`run_variant_job`): its Flink job name and its
    consumer group derive from it (flinkrest.job_name, topics.job_group)."""
    return f"{job}_{suffix}"


def run_variant_job(prog: str, suffix: str, wire: Wire, argv: list[str] | None) -> None:
    """`<prog> --job JOB [job flags]`: JOB's own build() with another `wire` (a bench variant:
    the built-in twin, the job without joins), as the Flink job `variant_name(JOB, suffix)`."""
    import importlib

    p = argparse.ArgumentParser(prog=prog, add_help=False)
    p.add_argument("--job", required=True)
    args, rest = p.parse_known_args(argv)
    mod = importlib.import_module(f"flink_jobs.{args.job}")
    run_job(variant_name(args.job, suffix), mod.build, rest, wire=wire)


def run_job(
    job: str,
    build: Callable[..., JobContext],
    argv: list[str] | None,
    wire: Wire = wire,
    batch_backfill: bool = True,
) -> None:
    """The body of every job's `main(argv)`; `wire` is passed on to its `build()`. A backfill
    runs in batch mode, or, for a job whose SQL batch cannot reproduce (`batch_backfill`
    False), as a bounded streaming run of the same SQL, which ends by itself at its range's end."""
    cfg, args = parse_args(job, argv)
    bounded = (
        (args.from_ms, args.to_ms) if args.from_ms is not None and args.to_ms is not None else None
    )
    backfill = bounded if args.backfill and bounded else None
    if backfill:
        bounded = backfill_read_range(cfg, backfill)
    restore = (args.restore, args.claim_mode) if args.restore else None
    env, t_env = create_env(
        cfg, job, batch=backfill is not None and batch_backfill, restore=restore
    )
    if backfill:
        from flinkpulse.flinkrest import backfill_name

        t_env.get_config().set("pipeline.name", backfill_name(cfg, job))
    ctx = JobContext(
        cfg=cfg,
        t_env=t_env,
        job=job,
        startup_mode=args.startup_mode or "earliest-offset",
        start_at_ms=args.start_at_ms,
        bounded=bounded,
        backfill=backfill,
    )
    build(t_env, cfg, ctx, wire=wire)
    client = execute(env, ctx, wait=bounded is not None)
    # a streaming job's JobClient, or a bounded run's result (under `flink run -d` or the warm
    # client: right after the submission; run locally, once it has finished)
    if hasattr(client, "get_job_id"):
        print(f"submitted {job}: job id {client.get_job_id()}", flush=True)
