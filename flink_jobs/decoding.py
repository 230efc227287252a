"""Confluent Avro decoding in Flink: a scalar Python UDF returning ROW<ok, error, schema_id, ...>
around the core's wire format and registry client (flinkpulse.avro: the same dead-letter reasons
as the loader).

A scalar function (not a table function) so that thread mode applies, and so each record yields
either the decoded fields or the reason it could not be decoded. One call per record by default;
``flink.vectorized_decode`` makes it a pandas one, a call per Arrow batch with the same rows (off
by default: Flink's Arrow operator can shut a TaskManager down on failover, config.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from flinkpulse.schemas import latest_schema


def flink_type(avro_type: Any) -> Any:
    """The Flink DataType of an Avro field type (unions with null: nullable; enums: STRING)."""
    from pyflink.table import DataTypes

    nullable = False
    t = avro_type
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        nullable = len(non_null) < len(t)
        if len(non_null) != 1:
            raise ValueError(f"unsupported union {t}")
        t = non_null[0]
    if isinstance(t, dict):
        logical = t.get("logicalType")
        kind = t["type"]
        if logical == "timestamp-millis":
            dt = DataTypes.TIMESTAMP(3)
        elif kind == "enum":
            dt = DataTypes.STRING()
        elif kind == "map":
            dt = DataTypes.MAP(DataTypes.STRING(), flink_type(t["values"]))
        elif kind == "array":
            dt = DataTypes.ARRAY(flink_type(t["items"]))
        else:
            dt = flink_type(kind)
    else:
        dt = {
            "string": DataTypes.STRING(),
            "double": DataTypes.DOUBLE(),
            "float": DataTypes.FLOAT(),
            "int": DataTypes.INT(),
            "long": DataTypes.BIGINT(),
            "boolean": DataTypes.BOOLEAN(),
            "bytes": DataTypes.BYTES(),
        }[t]
    return dt.nullable() if nullable else dt.not_null()


def reader_fields(record: str) -> list[tuple[str, Any]]:
    """(name, Flink DataType) of the record's newest schema, all nullable in the decoded row."""
    return [(f["name"], flink_type(f["type"]).nullable()) for f in latest_schema(record)["fields"]]


def timestamp_fields(record: str) -> set[str]:
    """Fields of the record's newest schema with logical type timestamp-millis."""

    def is_ts(t: Any) -> bool:
        if isinstance(t, list):
            return any(is_ts(x) for x in t)
        return isinstance(t, dict) and t.get("logicalType") == "timestamp-millis"

    return {f["name"] for f in latest_schema(record)["fields"] if is_ts(f["type"])}


#: the epoch milliseconds a TIMESTAMP can hold (years 1 to 9999), as Python's datetime
_MIN_MS = (datetime(1, 1, 1) - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
_MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999_000) - datetime(1970, 1, 1)) // timedelta(
    milliseconds=1
)


def job_registry(url: str) -> Any:
    """The registry client of the jobs' decoding: timestamps read as epoch milliseconds (what
    leaves the UDF), never as datetime objects, which cost more than the rest of a record."""
    from flinkpulse.avro import Registry

    return Registry(url, millis_as_long=True)


def job_reader(schema: dict[str, Any]) -> Any:
    """The parsed reader schema of the jobs' decoding: `schema` with timestamps as longs."""
    import fastavro

    from flinkpulse.avro import millis_as_long

    return fastavro.parse_schema(millis_as_long(schema))


def decode_record(
    registry: Any,
    reader: Any,
    value: bytes | None,
    validate: Callable[[dict[str, Any]], str | None] | None = None,
    millis: Collection[str] = (),
) -> tuple[dict[str, Any] | None, int, str | None]:
    """(record, schema id, None), or (None, schema id or -1, the dead-letter reason) for a record
    that cannot be decoded, holds a timestamp (a field of `millis`, as epoch ms: `job_registry`,
    `job_reader`) outside years 1..9999, or that `validate` refuses. A registry outage raises
    (flinkpulse.avro.RegistryUnavailable): the job fails and restarts."""
    from flinkpulse.avro import DecodeError, invalid_field

    try:
        schema_id, rec = registry.read(value, reader)
    except DecodeError as e:
        return None, e.schema_id, str(e)
    for n in millis:
        t = rec.get(n)
        if t is not None and not _MIN_MS <= t <= _MAX_MS:
            return None, schema_id, invalid_field(n, f"{t} ms is not a time in years 1..9999")
    err = validate(rec) if validate is not None else None
    return (None, schema_id, err) if err else (rec, schema_id, None)


def decode_function(
    record: str,
    registry_url: str,
    validate: Callable[[dict[str, Any]], str | None] | None = None,
    vectorized: bool = False,
    names: Sequence[str] | None = None,
) -> Any:
    """A Flink UDF decoding Confluent Avro of `record` (newest .avsc as reader schema), returning
    the fields `names` (default: all; a job that reads only some, common.Needs).

    `vectorized` (``flink.vectorized_decode``): a pandas UDF, called once per Arrow batch of
    values (``flink.arrow_batch_size``) instead of once per record, so that records cross
    between Java and Python as columns instead of one serialized row each way. The same
    rows and reasons either way (`decode_batch`); process mode only (Flink runs no pandas UDF
    in thread mode)."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import ScalarFunction, udf

    fields = reader_fields(record)
    if names is not None:
        wanted = set(names)
        fields = [(n, t) for n, t in fields if n in wanted]
    out = [n for n, _ in fields]
    millis = timestamp_fields(record)
    reader = latest_schema(record)
    # timestamps leave Python as epoch milliseconds (BIGINT) and become TIMESTAMP(3) in SQL
    # (common.decoded_source): in thread mode a TIMESTAMP result reaches Java as
    # java.sql.Timestamp where the planner expects LocalDateTime (ClassCastException)
    row_type = DataTypes.ROW(
        [
            DataTypes.FIELD("ok", DataTypes.BOOLEAN()),
            DataTypes.FIELD("error", DataTypes.STRING()),
            DataTypes.FIELD("schema_id", DataTypes.INT()),
        ]
        + [DataTypes.FIELD(n, DataTypes.BIGINT() if n in millis else t) for n, t in fields]
    )

    class DecodeConfluentAvro(ScalarFunction):  # type: ignore[misc]
        def open(self, function_context: Any) -> None:
            self.registry = job_registry(registry_url)
            self.reader = job_reader(reader)

        def eval(self, value: bytes | None) -> Any:
            from pyflink.common import Row

            return Row(*decoded_row(self.registry, self.reader, value, out, millis, validate))

    if not vectorized:
        return udf(DecodeConfluentAvro(), result_type=row_type)

    class DecodeConfluentAvroBatch(DecodeConfluentAvro):
        def eval(self, values: Any) -> Any:
            import pandas as pd

            cols = decode_batch(self.registry, self.reader, values, out, millis, validate)
            return pd.DataFrame(
                {n: pd.Series(v, dtype=_PANDAS_DTYPES.get(n, object)) for n, v in cols.items()}
            )

    return udf(DecodeConfluentAvroBatch(), result_type=row_type, func_type="pandas")


#: the decoded row's fixed columns as numpy dtypes, never null (Arrow takes no null mask with
#: pandas' nullable dtypes); the record's fields travel as objects, which Arrow converts to the
#: declared Flink types, None as NULL
_PANDAS_DTYPES = {"ok": "bool", "error": object, "schema_id": "int32"}


def decoded_row(
    registry: Any,
    reader: Any,
    value: bytes | None,
    names: list[str],
    millis: Collection[str],
    validate: Callable[[dict[str, Any]], str | None] | None = None,
) -> tuple[Any, ...]:
    """The decode UDF's row of one value: ok, error, schema_id, then `names` (timestamps as
    epoch milliseconds; all None when the value cannot be decoded or is refused)."""
    rec, schema_id, err = decode_record(registry, reader, value, validate, millis)
    if rec is None:
        return (False, err, schema_id, *([None] * len(names)))
    return (True, None, schema_id, *map(rec.get, names))


def decode_batch(
    registry: Any,
    reader: Any,
    values: Any,
    names: list[str],
    millis: Collection[str],
    validate: Callable[[dict[str, Any]], str | None] | None = None,
) -> dict[str, list[Any]]:
    """The columns ok, error, schema_id and `names` of the decoded `values`: the rows of
    `decoded_row`, as columns."""
    rows = [decoded_row(registry, reader, v, names, millis, validate) for v in values]
    columns = ["ok", "error", "schema_id", *names]
    if not rows:
        return {name: [] for name in columns}
    return {name: list(col) for name, col in zip(columns, zip(*rows, strict=True), strict=True)}
