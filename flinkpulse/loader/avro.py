"""Confluent-framed Avro values -> dicts, with writer schemas fetched from the registry by id.

Timestamps (``timestamp-millis``) are decoded as plain epoch milliseconds (the logical type is
dropped from the cached schema): that is what Arrow's ``timestamp[ms]`` takes directly, and it
avoids a datetime object per value.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

#: logical types decoded as their underlying long (epoch milliseconds)
_AS_MILLIS = {"timestamp-millis", "local-timestamp-millis"}


class DecodeError(Exception):
    """The record cannot be decoded (it goes to the dead-letter topic with this reason)."""


class RegistryUnavailable(Exception):
    """The registry did not answer: transient, never the record's fault (retry, no DLQ)."""


def _strip_millis(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strip_millis(s) for s in schema]
    if isinstance(schema, dict):
        if schema.get("logicalType") in _AS_MILLIS and schema.get("type") == "long":
            return "long"
        out = dict(schema)
        if "fields" in out:
            out["fields"] = [{**f, "type": _strip_millis(f["type"])} for f in out["fields"]]
        for k in ("items", "values"):
            if k in out:
                out[k] = _strip_millis(out[k])
        return out
    return schema


class Decoder:
    """Decodes Confluent wire-format values; one registry lookup per schema id, then cached."""

    def __init__(self, registry_url: str, timeout: float = 10.0) -> None:
        self.url = registry_url.rstrip("/")
        self.timeout = timeout
        self._schemas: dict[int, Any] = {}
        #: schema id -> the writer schema as registered (JSON, logical types kept)
        self.raw: dict[int, Any] = {}
        self._bad_ids: dict[int, str] = {}
        self._session: Any = None

    def schema(self, schema_id: int) -> Any:
        s = self._schemas.get(schema_id)
        if s is not None:
            return s
        if schema_id in self._bad_ids:
            raise DecodeError(self._bad_ids[schema_id])
        import fastavro
        import requests

        if self._session is None:
            self._session = requests.Session()
        try:
            r = self._session.get(f"{self.url}/schemas/ids/{schema_id}", timeout=self.timeout)
        except requests.RequestException as e:
            raise RegistryUnavailable(f"schema registry {self.url}: {e}") from None
        if r.status_code == 404:
            reason = f"schema id {schema_id} not found in the registry"
            self._bad_ids[schema_id] = reason
            raise DecodeError(reason)
        if r.status_code != 200:
            raise RegistryUnavailable(f"schema registry {self.url}: HTTP {r.status_code}")
        try:
            raw = json.loads(r.json()["schema"])
            parsed = fastavro.parse_schema(_strip_millis(raw))
        except Exception as e:  # not Avro (e.g. a JSON/Protobuf schema): the record's problem
            reason = f"schema id {schema_id} is not a usable Avro schema: {e}"
            self._bad_ids[schema_id] = reason
            raise DecodeError(reason) from None
        self._schemas[schema_id] = parsed
        self.raw[schema_id] = raw
        return parsed

    def decode(self, value: bytes | None) -> dict[str, Any]:
        """The record as a dict; raises DecodeError (bad record) or RegistryUnavailable."""
        from fastavro import schemaless_reader

        if value is None:
            raise DecodeError("null value (tombstone)")
        if len(value) < 5 or value[0] != 0:
            raise DecodeError("not Confluent wire format (magic byte 0 + 4-byte schema id)")
        (schema_id,) = struct.unpack_from(">I", value, 1)
        schema = self.schema(schema_id)
        buf = io.BytesIO(value)
        buf.seek(5)
        try:
            rec = schemaless_reader(buf, schema, None)
        except Exception as e:
            raise DecodeError(f"Avro decoding failed with schema id {schema_id}: {e!r}") from None
        if buf.tell() != len(value):
            raise DecodeError(
                f"{len(value) - buf.tell()} trailing bytes after the record (schema id {schema_id})"
            )
        if not isinstance(rec, dict):
            raise DecodeError(f"schema id {schema_id} is not a record schema")
        return rec
