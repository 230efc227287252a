"""Decoded records -> one Arrow table per insert, typed after the ClickHouse table's columns.

NULLs (nullable Flink columns) become the column type's default (0, '', epoch, {}), as a
ClickHouse insert with ``input_format_null_as_default`` would store them. A value that cannot
be converted is reported per row, so that only that record is dead-lettered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flinkpulse.avro import invalid_field

BOOKKEEPING = ("_topic", "_partition", "_offset")

_INTS = {
    "Int8": "int8", "Int16": "int16", "Int32": "int32", "Int64": "int64",
    "UInt8": "uint8", "UInt16": "uint16", "UInt32": "uint32", "UInt64": "uint64",
}  # fmt: skip


def arrow_type(ch_type: str) -> tuple[Any, bool]:
    """(pyarrow type, nullable) for a ClickHouse column type; ValueError if unsupported."""
    import pyarrow as pa

    t = ch_type.strip()
    nullable = False
    m = re.fullmatch(r"(Nullable|LowCardinality)\((.*)\)", t)
    while m:
        nullable = nullable or m.group(1) == "Nullable"
        t = m.group(2).strip()
        m = re.fullmatch(r"(Nullable|LowCardinality)\((.*)\)", t)
    if t in _INTS:
        return getattr(pa, _INTS[t])(), nullable
    if t in ("Float64", "Float32"):
        return (pa.float64() if t == "Float64" else pa.float32()), nullable
    if t in ("String", "UUID") or t.startswith("FixedString") or t.startswith("Enum"):
        return pa.string(), nullable
    if t == "Bool":
        return pa.bool_(), nullable
    m = re.fullmatch(r"DateTime64\((\d)(?:,\s*'([^']*)')?\)", t)
    if m:
        unit = {3: "ms", 6: "us", 9: "ns"}.get(int(m.group(1)), "ms")
        return pa.timestamp(unit, tz=m.group(2) or "UTC"), nullable
    if re.fullmatch(r"DateTime(\('[^']*'\))?", t):
        return pa.timestamp("s", tz="UTC"), nullable
    if t.startswith("Map(String, String)"):
        return pa.map_(pa.string(), pa.string()), nullable
    raise ValueError(f"unsupported column type {ch_type}")


@dataclass
class TableSpec:
    """The columns of one ClickHouse table the loader fills (from system.columns)."""

    database: str
    name: str
    #: column -> (arrow type, nullable), record columns only (bookkeeping excluded)
    columns: dict[str, tuple[Any, bool]] = field(default_factory=dict)
    #: the same columns -> ClickHouse type, as in system.columns
    ch_types: dict[str, str] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"`{self.database}`.`{self.name}`"

    @classmethod
    def from_system_columns(
        cls, database: str, name: str, rows: list[tuple[str, str, str]]
    ) -> TableSpec:
        """rows: (name, type, default_kind) from system.columns, in table order."""
        spec = cls(database, name)
        for col, typ, default_kind in rows:
            if col in BOOKKEEPING or default_kind in ("MATERIALIZED", "ALIAS"):
                continue
            if col.startswith("_") and default_kind == "DEFAULT":
                continue  # e.g. _loaded_at: filled by ClickHouse
            spec.columns[col] = arrow_type(typ)
            spec.ch_types[col] = typ
        return spec


def _default(t: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_string(t):
        return ""
    if pa.types.is_boolean(t):
        return False
    if pa.types.is_map(t):
        return []
    return 0  # numbers and timestamps (epoch)


def _column(values: list[Any], t: Any, nullable: bool) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_map(t):
        values = [list(v.items()) if isinstance(v, dict) else v for v in values]
    arr = pa.array(values, type=t)
    if not nullable and arr.null_count:
        if pa.types.is_map(t):
            arr = pa.array([v if v is not None else [] for v in values], type=t)
        else:
            arr = pc.fill_null(arr, pa.scalar(_default(t), type=t))
    return arr


def _transpose(spec: TableSpec, rows: list[dict[str, Any]]) -> list[list[Any]]:
    """Column lists of `rows` in spec order (one C-level pass; .get for incomplete records)."""
    from operator import itemgetter

    cols = list(spec.columns)
    if not rows:
        return [[] for _ in cols]
    get = itemgetter(*cols)
    try:
        tuples = list(map(get, rows)) if len(cols) > 1 else [(get(r),) for r in rows]
    except KeyError:
        tuples = [tuple(r.get(c) for c in cols) for r in rows]
    return [list(c) for c in zip(*tuples, strict=True)]


def build(
    spec: TableSpec, topic: str, partition: int, rows: list[dict[str, Any]], offsets: list[int]
) -> tuple[Any, dict[int, str]]:
    """(Arrow table, {row index: reason}) — rows with a bad value are left out and reported."""
    import pyarrow as pa

    bad: dict[int, str] = {}
    while True:
        keep = [i for i in range(len(rows)) if i not in bad] if bad else None
        rs = rows if keep is None else [rows[i] for i in keep]
        arrays, names, failed = [], [], False
        for col, values in zip(spec.columns, _transpose(spec, rs), strict=True):
            t, nullable = spec.columns[col]
            try:
                arrays.append(_column(values, t, nullable))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                idx = keep or list(range(len(rows)))
                before = len(bad)
                for j, v in enumerate(values):
                    try:
                        _column([v], t, nullable)
                    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError,
                            OverflowError) as e:  # fmt: skip
                        bad[idx[j]] = invalid_field(col, f"cannot store {v!r} as {t}: {e}")
                if len(bad) == before:
                    raise
                failed = True
                break
            names.append(col)
        if failed:
            continue
        offs = offsets if keep is None else [offsets[i] for i in keep]
        n = len(offs)
        arrays += [
            pa.array([topic] * n, pa.string()),
            pa.array([partition] * n, pa.int32()),
            pa.array(offs, pa.int64()),
        ]
        names += list(BOOKKEEPING)
        return pa.Table.from_arrays(arrays, names=names), bad
