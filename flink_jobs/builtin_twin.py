"""The built-in twin of a flinkpulse job, for `flinkpulse bench`: same SQL, no Python.

    flink run -py flink_jobs/builtin_twin.py --job player_stats [job flags]

The twin runs the job's own sources, `.sql` file, parameters and sinks, with two differences:

* sources are read by Flink's `avro-confluent` format (JVM) instead of the Python decode UDF,
  so there is no dead-letter queue and no late or duplicate side output (late records are
  still dropped by the same on-time filter, later copies of an event by the same
  deduplication, ``flink.dedup``);
* every scalar Python UDF call in the SQL is replaced by a built-in expression (TWINS).

Built-in stand-ins are exact for `kd_ratio`; `ip_country`, `browser_family` and
`device_family` become string expressions of the same shape (a geo lookup or uap-core parse
cannot be written in SQL), so they measure cost, not results.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Collection, Mapping
from typing import Any

from flink_jobs import common
from flink_jobs.common import JobContext, Needs, Sources
from flinkpulse import topics
from flinkpulse.schemas import latest_schema

_BROWSER = (
    "CASE WHEN {0} IS NULL THEN CAST(NULL AS STRING) "
    "WHEN {0} LIKE '%Edg/%' THEN 'Edge' WHEN {0} LIKE '%Firefox/%' THEN 'Firefox' "
    "WHEN {0} LIKE '%Chrome/%' THEN 'Chrome' WHEN {0} LIKE '%Safari/%' THEN 'Safari' "
    "WHEN {0} LIKE '%bot%' THEN 'Googlebot' ELSE 'Other' END"
)
_DEVICE = (
    "CASE WHEN {0} IS NULL THEN CAST(NULL AS STRING) "
    "WHEN {0} LIKE '%bot%' OR {0} LIKE '%curl%' OR {0} LIKE '%python%' THEN 'bot' "
    "WHEN {0} LIKE '%iPad%' OR {0} LIKE '%Tablet%' THEN 'tablet' "
    "WHEN {0} LIKE '%Mobile%' THEN 'mobile' "
    "WHEN {0} LIKE '%Windows%' OR {0} LIKE '%Mac OS%' OR {0} LIKE '%Linux%' THEN 'desktop' "
    "ELSE 'other' END"
)

#: the twin's result topics are `<topic prefix><TWIN_PREFIX><logical name>`
TWIN_PREFIX = "twin."
#: the twin of JOB runs as the Flink job `common.variant_name(JOB, TWIN_SUFFIX)`
TWIN_SUFFIX = "twin"

#: SQL name of a scalar Python UDF -> built-in expression template ({0}, {1}: the arguments)
TWINS: dict[str, str] = {
    "kd_ratio": ("CAST({0} AS DOUBLE) / CAST(CASE WHEN {1} > 0 THEN {1} ELSE 1 END AS DOUBLE)"),
    "ip_country": "SPLIT_INDEX({0}, '.', 0)",
    "browser_family": _BROWSER,
    "device_family": _DEVICE,
}


def _args(text: str, start: int) -> tuple[list[str], int]:
    """The top-level comma-separated arguments of the call whose '(' is at `start`."""
    depth, quoted, cur, out = 0, False, start + 1, []
    for i in range(start, len(text)):
        c = text[i]
        if c == "'":
            quoted = not quoted
        if quoted:
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                out.append(text[cur:i].strip())
                return out, i + 1
        elif c == "," and depth == 1:
            out.append(text[cur:i].strip())
            cur = i + 1
    raise ValueError(f"unbalanced call at {start}: {text[start : start + 60]!r}")


def replace_udfs(sql: str) -> str:
    """`sql` with every call of a name in TWINS replaced by its built-in expression."""
    pat = re.compile(r"\b(" + "|".join(TWINS) + r")\s*\(")
    while m := pat.search(sql):
        args, end = _args(sql, m.end() - 1)
        expr = TWINS[m.group(1)].format(*[f"({a})" for a in args])
        sql = sql[: m.start()] + "(" + expr + ")" + sql[end:]
    return sql


def _source(
    ctx: JobContext,
    logical_topic: str,
    view: str,
    needs: Needs | None = None,
    immediate: bool = True,
) -> None:
    """`view`: the topic through Flink's avro-confluent format, watermarked, on-time rows (with
    `needs`: its fields and records only, as the UDF job's, so the ratio stays fair; deduplicated
    as the UDF job's, `immediate` as in `common.wire`)."""
    from pyflink.table import DataTypes, Schema

    from flink_jobs.decoding import flink_type

    record = common.SOURCE_TOPICS[logical_topic]
    schema = latest_schema(record)
    b = Schema.new_builder()
    names = []
    for f in schema["fields"]:
        b = b.column(f["name"], flink_type(f["type"]))
        names.append(f["name"])
    b = b.column_by_metadata("src_partition", DataTypes.INT(), "partition", True)
    b = b.column_by_metadata("src_offset", DataTypes.BIGINT(), "offset", True)
    delay = ctx.cfg.flink.watermark_delay_s
    b = b.watermark("event_time", f"event_time - INTERVAL '{delay:.3f}' SECOND")
    d = common._source(ctx, ctx.topic(logical_topic))
    ctx.t_env.create_temporary_table(f"{view}_all", _avro(ctx, d, b, schema))
    wanted = ""
    if needs is not None:
        names = needs.columns(logical_topic, names)
        wanted = needs.conjunct()
    cols = ", ".join(f"`{n}`" for n in names)
    on_time = ctx.t_env.sql_query(
        f"SELECT {cols}, src_partition, src_offset FROM {view}_all "
        "WHERE (CURRENT_WATERMARK(event_time) IS NULL "
        f"OR event_time >= CURRENT_WATERMARK(event_time)){wanted}"
    )
    if not ctx.cfg.flink.dedup:
        ctx.t_env.create_temporary_view(view, on_time)
        return
    # the same deduplication as the UDF job (common.deduplicate), without the dup.<topic>
    # side output: a fair ratio compares the same state and work per record
    ctx.t_env.create_temporary_view(f"{view}_on_time", on_time)
    key = topics.DEDUP_KEYS[logical_topic]
    common.deduplicate(
        ctx.t_env,
        f"{view}_on_time",
        view,
        key,
        [*names, "src_partition", "src_offset"],
        ctx.cfg.flink.dedup_state,
        immediate,
    )


def _avro(ctx: JobContext, d: Any, b: Any, schema: dict[str, Any]) -> Any:
    """Kafka descriptor `d` with columns `b`, values Avro (`schema`) through the registry."""
    return (
        d.schema(b.build())
        .option("format", "avro-confluent")
        .option("avro-confluent.url", ctx.cfg.registry.url)
        .option("avro-confluent.schema", json.dumps(schema))
        .build()
    )


def _versioned_source(ctx: JobContext, logical_topic: str, view: str) -> None:
    """`view`: a compacted topic of topics.VERSIONED through avro-confluent, versioned by its
    version-time field (= the Kafka timestamp its writer stamps), watermark without delay, idle
    quickly: common.versioned_kafka's descriptor, as the job's own source."""
    from pyflink.table import Schema

    from flink_jobs.decoding import flink_type

    spec = topics.VERSIONED[logical_topic]
    schema = latest_schema(spec.record)
    b = Schema.new_builder()
    for f in schema["fields"]:
        b = b.column(f["name"], flink_type(f["type"]))
    b = b.watermark(spec.version_time, f"`{spec.version_time}`")
    d = common.versioned_kafka(ctx, logical_topic)
    ctx.t_env.create_temporary_table(view, _avro(ctx, d, b, schema))


def twin_wire(
    ctx: JobContext,
    sources: Sources,
    sql_file: str,
    params: dict[str, Any],
    outputs: list[str],
    *,
    needs: Mapping[str, Needs] | None = None,
    immediate: Collection[str] = (),
) -> JobContext:
    """`common.wire` without Python: avro-confluent sources, UDF calls replaced, same sinks."""
    wanted = common.source_needs(ctx.cfg, needs)
    passed_on = common.immediate_views(sources, immediate)
    for logical_topic, view, _validate, _owner in sources:
        if logical_topic in topics.VERSIONED:
            _versioned_source(ctx, logical_topic, view)
            continue
        _source(ctx, logical_topic, view, wanted.get(view), view in passed_on)
    common.versioned_tables(ctx, [t for t, *_ in sources])
    common.run_sql_file(ctx, sql_file, params, rewrite=replace_udfs)
    # results go to `<prefix>twin.` topics: the twin's column types are NOT NULL where the
    # UDF job's are nullable, so its Avro schemas must not share the UDF job's subjects
    twin_cfg = ctx.cfg.with_prefix(f"{ctx.cfg.kafka.topic_prefix}{TWIN_PREFIX}")
    sinks = dataclasses.replace(ctx, cfg=twin_cfg)
    for view in outputs:
        ctx.inserts.append((common.avro_sink(sinks, view), ctx.t_env.from_path(view)))
    return ctx


def main(argv: list[str] | None = None) -> None:
    # the job's own build(), given the Python-free wiring
    common.run_variant_job("flink_jobs/builtin_twin.py", TWIN_SUFFIX, twin_wire, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
