"""Confluent-wire-format Avro decoding that never throws: bad records become a reason string.

Flink's `avro-confluent` format fails the job on the first undecodable record and cannot route
it anywhere, so the jobs read raw bytes and decode here, sending failures to ``dlq.<topic>``.
The writer schema comes from the registry by id (cached); the reader schema is the newest
``.avsc`` of the record, so schema evolution follows Avro's resolution rules.
"""

from __future__ import annotations

import io
import json
import math
import struct
from datetime import UTC, datetime
from typing import Any

import fastavro

MAGIC = 0


class SchemaLookupError(Exception):
    pass


class RegistryLookup:
    """Fetch writer schemas by id from a Confluent-compatible registry, with a cache."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._cache: dict[int, Any] = {}
        self._missing: set[int] = set()

    def get(self, schema_id: int) -> Any:
        if schema_id in self._cache:
            return self._cache[schema_id]
        if schema_id in self._missing:
            raise SchemaLookupError(f"unknown schema id {schema_id}")
        import requests

        try:
            r = requests.get(f"{self.url}/schemas/ids/{schema_id}", timeout=self.timeout)
        except requests.RequestException as e:  # transient: let the caller fail loudly
            raise ConnectionError(f"schema registry unreachable at {self.url}: {e}") from e
        if r.status_code == 404:
            self._missing.add(schema_id)
            raise SchemaLookupError(f"unknown schema id {schema_id}")
        r.raise_for_status()
        body = r.json()
        if body.get("schemaType", "AVRO") != "AVRO":
            self._missing.add(schema_id)
            raise SchemaLookupError(f"schema id {schema_id} is {body['schemaType']}, not AVRO")
        parsed = fastavro.parse_schema(json.loads(body["schema"]))
        self._cache[schema_id] = parsed
        return parsed


def _naive_utc(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v
    return v


def decode_confluent(
    value: bytes | None, reader_schema: Any, lookup: RegistryLookup
) -> tuple[dict[str, Any] | None, int, str | None]:
    """(record, schema_id, None) on success, (None, schema_id or -1, reason) on failure."""
    if value is None:
        return None, -1, "null value (tombstone)"
    if len(value) < 5:
        return None, -1, f"too short for Confluent wire format ({len(value)} bytes)"
    if value[0] != MAGIC:
        return None, -1, f"wrong magic byte {value[0]} (expected 0: not Confluent Avro)"
    (schema_id,) = struct.unpack(">I", value[1:5])
    try:
        writer = lookup.get(schema_id)
    except SchemaLookupError as e:
        return None, schema_id, str(e)
    try:
        rec = fastavro.schemaless_reader(io.BytesIO(value[5:]), writer, reader_schema)
    except Exception as e:  # any Avro resolution / truncation error is a bad record
        msg = str(e) or type(e).__name__
        return None, schema_id, f"cannot decode with schema id {schema_id}: {msg}"[:500]
    if not isinstance(rec, dict):
        return None, schema_id, "decoded value is not a record"
    return {k: _naive_utc(v) for k, v in rec.items()}, schema_id, None


def finite(x: float | None) -> bool:
    return x is not None and not (math.isnan(x) or math.isinf(x))
