"""ClickHouse decodes: raw Avro bodies -> one Avro container -> staged, checked, inserted.

Decoding in Python (fastavro, then Arrow) costs more than ClickHouse's insert of the result,
so for record schemas whose every field converts the same way in ClickHouse as in the Python
path (:func:`plan`), the loader never decodes at all. For one run of records of ONE schema id
it writes an Avro object container file by concatenation — header with the writer schema
extended by two ``fixed`` fields: the 5-byte Confluent framing first (so each value is used
as it came from Kafka), 16 bytes appended — an 8-byte canary and the record's Kafka offset —
last; then, on the insert thread's session:

1. ``TRUNCATE`` its temporary stage table (Memory engine, the target's record columns +
   ``_fp_tail``, canary and offset);
2. ``INSERT INTO stage FORMAT Avro`` the container (ClickHouse parses it);
3. ``INSERT INTO target SELECT ... FROM stage ORDER BY offset`` with ``_topic``/``_partition``
   as parameters and a ``throwIf`` that fails the whole statement unless every canary is intact
   (a body longer or shorter than its schema says shifts the bytes read as the canary), every
   string is valid UTF-8 (fastavro refuses anything else) and the stage holds exactly the
   batch's row count (a retried stage insert cannot duplicate rows).

Step 3 is the one write to the target: one statement, one block, committed whole or not at
all — the same unit of write as the Arrow path, so the exactly-once argument (package
docstring) is unchanged. Any failure of a staged batch makes the loader replay that batch's
offsets through the Python path, which dead-letters exactly the records it cannot decode, as
before. The stage is a temporary table: per session, invisible to other users, gone with the
session; no objects are created in the database.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

CANARY = b"fpL0ad\x00\x01"
#: the field appended to every record: CANARY, then the Kafka offset (8 bytes little-endian)
_TAIL = "_fp_tail"
#: the field prepended: the Confluent framing (magic byte + schema id), left in place
_HEAD = "_fp_head"
_RESERVED = {_HEAD, _TAIL, "_topic", "_partition", "_offset"}

#: Avro primitive -> ClickHouse base types it converts to exactly as the Python path does
_SAME: dict[str, tuple[str, ...]] = {
    "string": ("String",),
    "int": ("Int32", "Int64"),
    "long": ("Int64",),
    "float": ("Float32", "Float64"),
    "double": ("Float64",),
    "boolean": ("Bool",),
}


def zigzag(n: int) -> bytes:
    """Avro's variable-length zig-zag encoding of a long."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _base(ch_type: str) -> tuple[str, bool]:
    t, nullable = ch_type.strip(), False
    m = re.fullmatch(r"(Nullable|LowCardinality)\((.*)\)", t)
    while m:
        nullable = nullable or m.group(1) == "Nullable"
        t = m.group(2).strip()
        m = re.fullmatch(r"(Nullable|LowCardinality)\((.*)\)", t)
    return t, nullable


def _converts_alike(avro_type: Any, ch_type: str) -> bool:
    base, _ = _base(ch_type)
    if isinstance(avro_type, list):  # a union: only [null, T] / [T, null]
        rest = [t for t in avro_type if t != "null"]
        if len(rest) != 1 or len(avro_type) != 2:
            return False
        avro_type = rest[0]
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "long" and avro_type.get("logicalType") == "timestamp-millis":
            return re.fullmatch(r"DateTime64\(3(,\s*'[^']*')?\)", base) is not None
        if "logicalType" in avro_type:
            return False
        avro_type = avro_type.get("type")
    return isinstance(avro_type, str) and base in _SAME.get(avro_type, ())


@dataclass
class Plan:
    """How one (table, writer schema) is loaded through ClickHouse's Avro parser."""

    header: bytes  # the container header, ending with the sync marker
    sync: bytes
    stage_columns: list[tuple[str, str]]  # (name, ClickHouse type) of the stage table
    strings: list[str]  # record columns checked for valid UTF-8

    def container(self, values: list[bytes], offsets: list[int]) -> bytes:
        """The Avro container of Confluent-framed `values` (header kept: it is the ``_fp_head``
        field), each followed by the canary and its offset (the ``_fp_tail`` field)."""
        c = CANARY
        parts: list[bytes] = [b""] * (2 * len(values))
        parts[::2] = values
        parts[1::2] = [c + o.to_bytes(8, "little") for o in offsets]
        data = b"".join(parts)
        return b"".join((self.header, zigzag(len(values)), zigzag(len(data)), data, self.sync))


def plan(schema: Any, columns: dict[str, str]) -> Plan | None:
    """A Plan if every field of record `schema` present in the table converts alike, else None.

    columns: the table's record columns -> ClickHouse type (bookkeeping excluded).
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    fields = schema.get("fields") or []
    names = [f.get("name") for f in fields]
    if _RESERVED & set(names) or "flinkpulse_" in json.dumps(schema):
        return None
    for f in fields:
        if f["name"] in columns and not _converts_alike(f["type"], columns[f["name"]]):
            return None
    extended = {
        **schema,
        "fields": [
            {"name": _HEAD, "type": {"type": "fixed", "name": "flinkpulse_head", "size": 5}},
            *fields,
            {"name": _TAIL, "type": {"type": "fixed", "name": "flinkpulse_tail", "size": 16}},
        ],
    }
    text = json.dumps(extended).encode()
    sync = os.urandom(16)
    meta = b"".join(
        zigzag(len(k)) + k + zigzag(len(v)) + v
        for k, v in ((b"avro.schema", text), (b"avro.codec", b"null"))
    )
    header = b"Obj\x01" + zigzag(2) + meta + b"\x00" + sync
    stage = [(c, t) for c, t in columns.items()]
    strings = [c for c, t in columns.items() if _base(t)[0] == "String" and c in names]
    return Plan(header, sync, [*stage, (_TAIL, "FixedString(16)")], strings)


def stage_name(table: str) -> str:
    """The temporary stage table of `table` (per session)."""
    return f"_fpload_stage_{table}"


def create_stage_sql(table: str, plan: Plan) -> str:
    """CREATE the session's stage table for `plan` (dropped first: the columns may differ)."""
    cols = ", ".join(f"`{c}` {t}" for c, t in plan.stage_columns)
    return f"CREATE TEMPORARY TABLE `{stage_name(table)}` ({cols}) ENGINE = Memory"


def insert_select_sql(qualified: str, table: str, plan: Plan) -> str:
    """Stage -> target, all or nothing; parameters t (topic), p (partition), n (rows)."""
    record = [c for c, _ in plan.stage_columns if c != _TAIL]
    cols = ", ".join(f"`{c}`" for c in record)
    checks = [
        f"substring({_TAIL}, 1, 8) != unhex('{CANARY.hex()}')",
        f"(SELECT count() FROM `{stage_name(table)}`) != {{n:UInt64}}",
        *(f"NOT isValidUTF8(`{c}`)" for c in plan.strings),
    ]
    return (
        f"INSERT INTO {qualified} ({cols}, _topic, _partition, _offset) "
        f"SELECT {cols}, {{t:String}}, {{p:Int32}}, "
        f"reinterpretAsInt64(substring({_TAIL}, 9, 8)) + throwIf({' OR '.join(checks)}, "
        "'flinkpulse loader: a record does not decode as its schema says') AS _o "
        f"FROM `{stage_name(table)}` ORDER BY _o"
    )


#: settings of the stage insert (fields the table lacks: type defaults, as the Python path)
STAGE_SETTINGS = {"input_format_avro_allow_missing_fields": 1, "input_format_null_as_default": 1}
