"""Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro body) and one cached
registry client: the decoding both the Flink jobs (flink_jobs/decoding.py) and the loader use.

A record that cannot be decoded raises :class:`DecodeError` whose message is its dead-letter
reason: one reason per failure kind, the same wherever the record is read (``REASON_*`` below).
A registry that does not answer raises :class:`RegistryUnavailable`: never the record's fault,
so the caller retries (loader) or fails and restarts (Flink) instead of dead-lettering.

Part of the core: imports nothing of flinkpulse above it; fastavro and requests load lazily.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

MAGIC = 0
#: magic byte + schema id
HEADER_BYTES = 5
#: seconds to wait for the registry
REGISTRY_TIMEOUT_S = 10.0
#: dead-letter reasons are cut to this many characters
MAX_REASON = 500

# -- the dead-letter reasons, one per failure kind ----------------------------------------------
REASON_TOMBSTONE = "null value (tombstone)"
REASON_TOO_SHORT = "too short for Confluent wire format ({size} bytes)"
REASON_MAGIC = "wrong magic byte {magic} (expected 0: not Confluent Avro)"
REASON_UNKNOWN_ID = "unknown schema id {schema_id}"
REASON_NOT_AVRO = "schema id {schema_id} is not a usable Avro schema: {detail}"
REASON_UNDECODABLE = "cannot decode with schema id {schema_id}: {detail}"
REASON_TRAILING = (
    "cannot decode with schema id {schema_id}: {count} trailing bytes after the record"
)
REASON_NOT_RECORD = "schema id {schema_id} is not a record schema"

#: logical types the loader reads as their underlying long (epoch milliseconds)
_MILLIS_TYPES = {"timestamp-millis", "local-timestamp-millis"}


class DecodeError(Exception):
    """The record cannot be decoded; the message is its dead-letter reason."""

    def __init__(self, reason: str, schema_id: int = -1) -> None:
        super().__init__(reason[:MAX_REASON])
        #: the schema id of the header, -1 where there is none
        self.schema_id = schema_id


class RegistryUnavailable(Exception):
    """The registry did not answer (transient, never the record's fault: retry, no dead letter)."""


def schema_id_of(value: bytes | None) -> int:
    """The schema id of a Confluent wire-format value; DecodeError if it is not one."""
    if value is None:
        raise DecodeError(REASON_TOMBSTONE)
    if len(value) < HEADER_BYTES:
        raise DecodeError(REASON_TOO_SHORT.format(size=len(value)))
    if value[0] != MAGIC:
        raise DecodeError(REASON_MAGIC.format(magic=value[0]))
    return int.from_bytes(value[1:HEADER_BYTES], "big")


def millis_as_long(schema: Any) -> Any:
    """The schema with timestamp-millis fields as plain longs (epoch ms, no datetime objects)."""
    if isinstance(schema, list):
        return [millis_as_long(s) for s in schema]
    if isinstance(schema, dict):
        if schema.get("logicalType") in _MILLIS_TYPES and schema.get("type") == "long":
            return "long"
        out = dict(schema)
        if "fields" in out:
            out["fields"] = [{**f, "type": millis_as_long(f["type"])} for f in out["fields"]]
        for k in ("items", "values"):
            if k in out:
                out[k] = millis_as_long(out[k])
        return out
    return schema


class Registry:
    """Writer schemas by id from a Confluent-compatible registry: one request per id, then cached
    (an id that is missing or not Avro too, with its reason).

    ``millis_as_long``: timestamps decode as epoch milliseconds (the loader: what Arrow's
    ``timestamp[ms]`` takes) instead of naive-UTC datetimes (the jobs).
    """

    def __init__(
        self, url: str, timeout: float = REGISTRY_TIMEOUT_S, millis_as_long: bool = False
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.millis_as_long = millis_as_long
        #: schema id -> the writer schema as registered (JSON, logical types kept)
        self.raw: dict[int, Any] = {}
        self._parsed: dict[int, Any] = {}
        self._bad: dict[int, str] = {}
        self._session: Any = None

    def schema(self, schema_id: int) -> Any:
        """The parsed writer schema; DecodeError (bad id) or RegistryUnavailable."""
        parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        if schema_id in self._bad:
            raise DecodeError(self._bad[schema_id], schema_id)
        import fastavro
        import requests

        if self._session is None:
            self._session = requests.Session()
        try:
            r = self._session.get(f"{self.url}/schemas/ids/{schema_id}", timeout=self.timeout)
        except requests.RequestException as e:
            raise RegistryUnavailable(f"schema registry {self.url}: {e}") from None
        if r.status_code == 404:
            return self._refuse(schema_id, REASON_UNKNOWN_ID.format(schema_id=schema_id))
        if r.status_code != 200:
            raise RegistryUnavailable(f"schema registry {self.url}: HTTP {r.status_code}")
        try:
            body = r.json()
            kind = body.get("schemaType", "AVRO")
            if kind != "AVRO":
                raise ValueError(f"a {kind} schema")
            raw = json.loads(body["schema"])
            parsed = fastavro.parse_schema(millis_as_long(raw) if self.millis_as_long else raw)
        except Exception as e:  # not Avro (e.g. JSON Schema / Protobuf): the record's problem
            detail = str(e) or type(e).__name__
            return self._refuse(
                schema_id, REASON_NOT_AVRO.format(schema_id=schema_id, detail=detail)
            )
        self._parsed[schema_id] = parsed
        self.raw[schema_id] = raw
        return parsed

    def _refuse(self, schema_id: int, reason: str) -> Any:
        self._bad[schema_id] = reason
        raise DecodeError(reason, schema_id)

    def decode(self, value: bytes | None, reader: Any = None) -> dict[str, Any]:
        """The record of one value, read with `reader` (a parsed schema: Avro schema resolution)
        or its writer schema. DecodeError (a bad record: its reason and schema id) or
        RegistryUnavailable."""
        from fastavro import schemaless_reader

        schema_id = schema_id_of(value)
        assert value is not None
        writer = self.schema(schema_id)
        if not isinstance(writer, dict) or writer.get("type") != "record":
            raise DecodeError(REASON_NOT_RECORD.format(schema_id=schema_id), schema_id)
        buf = io.BytesIO(value)
        buf.seek(HEADER_BYTES)
        try:
            rec = schemaless_reader(buf, writer, reader)
        except Exception as e:  # any Avro resolution / truncation error is a bad record
            detail = str(e) or type(e).__name__
            raise DecodeError(
                REASON_UNDECODABLE.format(schema_id=schema_id, detail=detail), schema_id
            ) from None
        if buf.tell() != len(value):
            count = len(value) - buf.tell()
            raise DecodeError(REASON_TRAILING.format(schema_id=schema_id, count=count), schema_id)
        assert isinstance(rec, dict)  # a record schema reads a dict
        return rec


def naive_utc(v: Any) -> Any:
    """An aware datetime as naive UTC (what Flink's TIMESTAMP takes); anything else unchanged."""
    if isinstance(v, datetime) and v.tzinfo:
        return v.astimezone(UTC).replace(tzinfo=None)
    return v
