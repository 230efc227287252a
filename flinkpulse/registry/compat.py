"""Avro schema compatibility under the Confluent levels, by Avro's resolution rules.

``BACKWARD``: the new schema can read data written with the previous one(s);
``FORWARD``: the previous schema(s) can read data written with the new one; ``FULL``: both.
The ``*_TRANSITIVE`` variants check every earlier version instead of only the latest.
Messages name the field and the Avro rule broken, e.g.
``BACKWARD: field 'score' (path /fields/10) of the new schema has no default value and is
missing in the old schema (READER_FIELD_MISSING_DEFAULT_VALUE)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import avro.errors
import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
    lookup_writer_field,
    schema_name_equals,
)

LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
DEFAULT_LEVEL = "BACKWARD"


class InvalidSchema(ValueError):
    """The schema text is not a valid Avro schema."""


def parse(schema_text: str) -> avro.schema.Schema:
    """Parse Avro schema text; raises :class:`InvalidSchema` with the parser's reason."""
    try:
        parsed = avro.schema.parse(schema_text)
    except (avro.errors.AvroException, json.JSONDecodeError, TypeError, ValueError) as e:
        raise InvalidSchema(f"Invalid schema: {e}") from None
    _check_defaults(parsed)
    return parsed


def _check_defaults(s: avro.schema.Schema) -> None:
    """Reject field defaults that do not match the field type (the avro package accepts them)."""
    import fastavro

    try:
        fastavro.parse_schema(s.to_json(), _ignore_default_error=False)  # type: ignore[arg-type]
    except Exception as e:  # fastavro raises several types for bad schemas
        raise InvalidSchema(f"Invalid schema: {e}") from None


@lru_cache(maxsize=4096)
def canonical(schema_text: str) -> str:
    """A normal form for equality: parsed, re-serialised, keys sorted, no whitespace."""
    return json.dumps(parse(schema_text).to_json(), sort_keys=True, separators=(",", ":"))


@dataclass
class Incompatibility:
    """One broken rule: which direction, which field (path), which Avro rule, and why."""

    direction: str  # "BACKWARD" (new reads old) or "FORWARD" (old reads new)
    error_type: str
    field: str
    path: str
    message: str
    version: int | None = None

    def __str__(self) -> str:
        where = f"field '{self.field}'" if self.field else "the record"
        against = f"version {self.version}" if self.version is not None else "the old schema"
        return f"{self.direction}: {where} (path {self.path}) {self.message} [{self.error_type}] vs {against}"


def _field_at(reader: avro.schema.Schema, path: str) -> str:
    """The dotted field name a checker location (``/fields/3/type/...``) points at."""
    names: list[str] = []
    node: Any = reader
    tokens = [t for t in path.split("/") if t]
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "fields" and i + 1 < len(tokens) and isinstance(node, avro.schema.RecordSchema):
            try:
                fld = node.fields[int(tokens[i + 1])]
            except (ValueError, IndexError):
                break
            names.append(fld.name)
            node = fld.type
            i += 2
            continue
        if tok == "type":
            i += 1
            continue
        if tok == "items" and isinstance(node, avro.schema.ArraySchema):
            node = node.items
        elif tok == "values" and isinstance(node, avro.schema.MapSchema):
            node = node.values
        elif tok.isdigit() and isinstance(node, avro.schema.UnionSchema):
            try:
                node = node.schemas[int(tok)]
            except IndexError:
                break
        i += 1
    return ".".join(names)


_DESCRIBE = {
    SchemaIncompatibilityType.reader_field_missing_default_value: (
        "of the {reader} schema has no default value and is missing in the {writer} schema"
    ),
    SchemaIncompatibilityType.type_mismatch: "has a type the {reader} schema cannot read from the {writer} schema ({detail})",
    SchemaIncompatibilityType.missing_union_branch: "union in the {reader} schema lacks a branch the {writer} schema writes ({detail})",
    SchemaIncompatibilityType.missing_enum_symbols: "enum in the {reader} schema lacks symbols the {writer} schema writes: {detail}",
    SchemaIncompatibilityType.name_mismatch: "has a different type name ({detail})",
    SchemaIncompatibilityType.fixed_size_mismatch: "fixed size differs ({detail})",
}


def _pair(
    reader: avro.schema.Schema, writer: avro.schema.Schema, direction: str, version: int | None
) -> list[Incompatibility]:
    """Can `reader` read what `writer` wrote? One entry per top-level field that breaks a rule."""
    roles = (
        {"reader": "new", "writer": "old"}
        if direction == "BACKWARD"
        else {"reader": "old", "writer": "new"}
    )
    out: list[Incompatibility] = []

    def add(kind: SchemaIncompatibilityType, field: str, path: str, detail: str) -> None:
        text = _DESCRIBE[kind].format(detail=detail, **roles)
        out.append(Incompatibility(direction, kind.name.upper(), field, path, text, version))

    def run(r: avro.schema.Schema, w: avro.schema.Schema, field: str, base: str) -> None:
        res = ReaderWriterCompatibilityChecker().get_compatibility(r, w)
        if res.compatibility is not SchemaCompatibilityType.incompatible:
            return
        locs = sorted(loc for loc in res.locations if loc not in ("", "/")) or ["/"]
        inner = locs[0] if locs[0] != "/" else ""
        nested = _field_at(r, inner) if inner else ""
        name = ".".join(x for x in (field, nested) if x)
        detail = "; ".join(sorted(res.messages))
        for kind in dict.fromkeys(res.incompatibilities):
            if kind is SchemaIncompatibilityType.reader_field_missing_default_value:
                name = ".".join(x for x in (field, nested, detail) if x)
            add(kind, name, (base + inner) or "/", detail)

    if isinstance(reader, avro.schema.RecordSchema) and isinstance(
        writer, avro.schema.RecordSchema
    ):
        if not schema_name_equals(reader, writer):
            add(
                SchemaIncompatibilityType.name_mismatch, "", "/name", f"expected: {writer.fullname}"
            )
        for i, rf in enumerate(reader.fields):
            wf = lookup_writer_field(writer, rf)
            if wf is None:
                if not rf.has_default:
                    add(
                        SchemaIncompatibilityType.reader_field_missing_default_value,
                        rf.name,
                        f"/fields/{i}",
                        rf.name,
                    )
                continue
            run(rf.type, wf.type, rf.name, f"/fields/{i}/type")
    else:
        run(reader, writer, "", "")
    return out


def check(
    new: avro.schema.Schema,
    previous: list[tuple[int, avro.schema.Schema]],
    level: str,
) -> list[Incompatibility]:
    """Incompatibilities of `new` against `previous` (version, schema), oldest first, under `level`.

    An empty list means compatible.
    """
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"unknown compatibility level {level!r}")
    if level == "NONE" or not previous:
        return []
    against = previous if level.endswith("_TRANSITIVE") else previous[-1:]
    base = level.removesuffix("_TRANSITIVE")
    problems: list[Incompatibility] = []
    for version, old in reversed(against):
        if base in ("BACKWARD", "FULL"):
            problems += _pair(new, old, "BACKWARD", version)
        if base in ("FORWARD", "FULL"):
            problems += _pair(old, new, "FORWARD", version)
    return problems
