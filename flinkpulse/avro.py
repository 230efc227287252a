"""Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro body) and one cached
registry client: the decoding both the Flink jobs (flink_jobs/decoding.py) and the loader use.

A record that cannot be decoded raises :class:`DecodeError` whose message is its dead-letter
reason: one reason per failure kind, the same wherever the record is read (:class:`Reason`,
which also holds the reason of a decoded record with a refused field value).
A registry that does not answer raises :class:`RegistryUnavailable`: never the record's fault,
so the caller retries (loader) or fails and restarts (Flink) instead of dead-lettering.

Part of the core: imports nothing of flinkpulse above it; fastavro and requests load lazily.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from enum import Enum
from typing import Any
from urllib.parse import quote

from flinkpulse.errors import FlinkpulseError, ServiceUnreachable

MAGIC = 0
#: magic byte + schema id
HEADER_BYTES = 5
#: seconds to wait for the registry
REGISTRY_TIMEOUT_S = 10.0
#: dead-letter reasons are cut to this many characters
MAX_REASON = 500


class Reason(Enum):
    """The dead-letter reasons, one per failure kind, the same in the Flink jobs and in the
    loader: the value is the reason's text (a format string over the kind's particulars)."""

    #: not Confluent wire format
    TOMBSTONE = "null value (tombstone)"
    TOO_SHORT = "too short for Confluent wire format ({size} bytes)"
    MAGIC = "wrong magic byte {magic} (expected 0: not Confluent Avro)"
    #: the schema id does not give a usable writer schema
    UNKNOWN_ID = "unknown schema id {schema_id}"
    NOT_AVRO = "schema id {schema_id} is not a usable Avro schema: {detail}"
    NOT_RECORD = "schema id {schema_id} is not a record schema"
    #: the body is not one record of its writer schema
    TRUNCATED = "cannot decode with schema id {schema_id}: the record ends early (truncated)"
    TRAILING = "cannot decode with schema id {schema_id}: {count} trailing bytes after the record"
    UNDECODABLE = "cannot decode with schema id {schema_id}: {detail}"
    #: decoded, but a field's value is refused (validation in a job, a column in the loader)
    INVALID_FIELD = "invalid value in field {field}: {detail}"

    def text(self, **particulars: Any) -> str:
        """The reason of one record, cut to MAX_REASON characters."""
        return str(self.value).format(**particulars)[:MAX_REASON]


def invalid_field(field: str, detail: str) -> str:
    """The dead-letter reason of a decoded record whose `field` holds a refused value."""
    return Reason.INVALID_FIELD.text(field=field, detail=detail)


#: logical types the loader reads as their underlying long (epoch milliseconds)
_MILLIS_TYPES = {"timestamp-millis", "local-timestamp-millis"}


class DecodeError(Exception):
    """The record cannot be decoded; the message is its dead-letter reason, `kind` its kind."""

    def __init__(self, kind: Reason, schema_id: int = -1, **particulars: Any) -> None:
        super().__init__(kind.text(schema_id=schema_id, **particulars))
        self.kind = kind
        #: the schema id of the header, -1 where there is none
        self.schema_id = schema_id


class RegistryUnavailable(ServiceUnreachable):
    """The registry did not answer (transient, never the record's fault: retry, no dead letter).

    Told by exception type (a refused or timed-out connection) or a 5xx answer, never by
    searching the error text."""

    def __init__(self, url: str, detail: str = "") -> None:
        super().__init__("schema registry", url)
        if detail:
            self.args = (f"{self.args[0]} ({detail})",)


class RegistryError(FlinkpulseError):
    """A Confluent-API error answer: HTTP status, ``error_code`` and message (e.g. 409 for an
    incompatible schema, 40401 for an unknown subject). The embedded registry raises it too."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def header(schema_id: int) -> bytes:
    """The Confluent wire-format header of `schema_id`: the magic byte, then the id in 4 bytes
    big-endian. A framed value is this followed by the Avro body."""
    return bytes([MAGIC]) + schema_id.to_bytes(4, "big")


def schema_id_of(value: bytes | None) -> int:
    """The schema id of a Confluent wire-format value; DecodeError if it is not one."""
    if value is None:
        raise DecodeError(Reason.TOMBSTONE)
    if len(value) < HEADER_BYTES:
        raise DecodeError(Reason.TOO_SHORT, size=len(value))
    if value[0] != MAGIC:
        raise DecodeError(Reason.MAGIC, magic=value[0])
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


#: Avro's primitive type names (never a reference)
PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
_NAMED = ("record", "error", "enum", "fixed")


def full_name(name: str, namespace: str | None) -> str:
    """An Avro name made absolute in `namespace` (a dotted name already is)."""
    return name if "." in name or not namespace else f"{namespace}.{name}"


def defined_name(schema: Any) -> str | None:
    """The full name a named schema (record, enum, fixed) defines, else None."""
    if isinstance(schema, dict) and schema.get("type") in _NAMED and schema.get("name"):
        return full_name(str(schema["name"]), schema.get("namespace"))
    return None


def inline_references(schema: Any, named: dict[str, Any]) -> Any:
    """`schema` made self-contained: the first use of each referenced type (full name -> its
    schema JSON, in `named`) replaced by its definition, later uses left as names: what Avro
    parsers accept without the registry, and what schema references mean (Confluent's
    ``references``: a type defined under another subject)."""
    defined: set[str] = set()

    def walk(s: Any, ns: str | None) -> Any:
        if isinstance(s, str):
            if s in PRIMITIVES:
                return s
            fn = full_name(s, ns)
            if fn not in named and s in named:
                fn = s
            if fn in named and fn not in defined:
                ref = named[fn]
                if (
                    isinstance(ref, dict)
                    and "." not in str(ref.get("name"))
                    and not ref.get("namespace")
                ):  # a null-namespace type stays out of its host's namespace
                    ref = {**ref, "namespace": ""}
                return walk(ref, None)
            return s
        if isinstance(s, list):
            return [walk(x, ns) for x in s]
        if not isinstance(s, dict):
            return s
        out = dict(s)
        t = s.get("type")
        if isinstance(t, str) and t in _NAMED and s.get("name"):
            name = full_name(str(s["name"]), s.get("namespace", ns) or None)
            defined.add(name)
            ns = name.rsplit(".", 1)[0] if "." in name else None
        if isinstance(t, (dict, list)) or (isinstance(t, str) and t not in _COMPLEX):
            out["type"] = walk(t, ns)
        if "fields" in out:
            out["fields"] = [{**f, "type": walk(f.get("type"), ns)} for f in out["fields"]]
        for k in ("items", "values"):
            if k in out:
                out[k] = walk(out[k], ns)
        return out

    return walk(schema, None)


_COMPLEX = frozenset(("record", "error", "enum", "fixed", "array", "map"))

#: (subject, version) -> (schema text, its references): how a registry (client or server) reads
Fetch = Callable[[str, int], tuple[str, list[dict[str, Any]]]]


def resolve_references(schema: Any, references: list[dict[str, Any]] | None, fetch: Fetch) -> Any:
    """`schema` (JSON) made self-contained: each reference (``{"name", "subject", "version"}``)
    and the references of those, read through `fetch`, inlined (:func:`inline_references`)."""
    if not references:
        return schema
    named: dict[str, Any] = {}
    seen: set[tuple[str, int]] = set()
    todo = list(references)
    while todo:
        ref = todo.pop(0)
        key = (str(ref["subject"]), int(ref["version"]))
        if key in seen:
            continue
        seen.add(key)
        text, more = fetch(*key)
        parsed = json.loads(text)
        name = defined_name(parsed)
        named[str(ref.get("name") or name)] = parsed
        if name:
            named[name] = parsed
        todo.extend(more)
    return inline_references(schema, named)


class Registry:
    """The one client of a Confluent-compatible schema registry (producers, `schemas`
    check/register, the Flink decode UDF, the loader): registration and lookup (with schema
    references), versions and levels, and writer schemas by id for decoding, one request per
    id, then cached (an id that is missing or not Avro too, with its reason).

    ``millis_as_long``: timestamps decode as epoch milliseconds (the loader: what Arrow's
    ``timestamp[ms]`` takes; the jobs: what leaves their decode UDF) instead of aware UTC
    datetimes.
    """

    def __init__(
        self, url: str, timeout: float = REGISTRY_TIMEOUT_S, millis_as_long: bool = False
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.millis_as_long = millis_as_long
        #: schema id -> the writer schema, self-contained (references inlined, logical types kept)
        self.raw: dict[int, Any] = {}
        self._parsed: dict[int, Any] = {}
        #: schema id -> why it cannot decode anything (kind, particulars)
        self._bad: dict[int, tuple[Reason, dict[str, Any]]] = {}
        #: schema id -> (a reader schema, what to resolve with: None when the writer equals it)
        self._readers: dict[int, tuple[Any, Any]] = {}
        self._session: Any = None

    # -- REST ---------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call: its JSON answer; RegistryError (an error answer, 4xx) or
        RegistryUnavailable (no connection, a timeout, a 5xx)."""
        import requests

        if self._session is None:
            self._session = requests.Session()
        url = f"{self.url}{path}"
        try:
            if method == "GET":
                r = self._session.get(url, timeout=self.timeout)
            else:
                r = self._session.request(
                    method,
                    url,
                    json=body,
                    timeout=self.timeout,
                    headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
                )
        except (requests.ConnectionError, requests.Timeout):
            raise RegistryUnavailable(self.url) from None
        if r.status_code >= 500:
            raise RegistryUnavailable(self.url, f"HTTP {r.status_code}")
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.status_code != 200:
            err = data if isinstance(data, dict) else {}
            raise RegistryError(
                r.status_code,
                int(err.get("error_code") or r.status_code),
                str(err.get("message") or f"HTTP {r.status_code}"),
            )
        return data

    def register(
        self, subject: str, schema: str, references: list[dict[str, Any]] | None = None
    ) -> int:
        """Register `schema` (Avro JSON text) under `subject`; its global id (idempotent)."""
        body: dict[str, Any] = {"schema": schema}
        if references:
            body["references"] = references
        return int(self.call("POST", f"/subjects/{quote(subject)}/versions", body)["id"])

    def lookup(
        self, subject: str, schema: str, references: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The registered version of `schema` under `subject` (subject, version, id, schema)."""
        body: dict[str, Any] = {"schema": schema}
        if references:
            body["references"] = references
        out: dict[str, Any] = self.call("POST", f"/subjects/{quote(subject)}", body)
        return out

    def version(self, subject: str, version: int | str = "latest") -> dict[str, Any]:
        """One version of a subject (subject, version, id, schema, references)."""
        out: dict[str, Any] = self.call("GET", f"/subjects/{quote(subject)}/versions/{version}")
        return out

    def versions(self, subject: str) -> list[dict[str, Any]]:
        """Every live version of a subject, oldest first ([] for an unknown subject)."""
        try:
            nums = self.call("GET", f"/subjects/{quote(subject)}/versions")
        except RegistryError as e:
            if e.code == 40401:
                return []
            raise
        return [self.version(subject, n) for n in nums]

    def level(self, subject: str | None = None) -> str:
        """The compatibility level in force for `subject` (or the global one)."""
        path = f"/config/{quote(subject)}?defaultToGlobal=true" if subject else "/config"
        return str(self.call("GET", path).get("compatibilityLevel") or "BACKWARD")

    def resolved(self, schema: Any, references: list[dict[str, Any]] | None) -> Any:
        """`schema` (JSON) with its references (and theirs) fetched and inlined."""

        def fetch(subject: str, version: int) -> tuple[str, list[dict[str, Any]]]:
            v = self.version(subject, version)
            return str(v["schema"]), list(v.get("references") or [])

        return resolve_references(schema, references, fetch)

    # -- decoding -----------------------------------------------------------------------------
    def schema(self, schema_id: int) -> Any:
        """The parsed writer schema; DecodeError (bad id) or RegistryUnavailable."""
        parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        if schema_id in self._bad:
            kind, particulars = self._bad[schema_id]
            raise DecodeError(kind, schema_id, **particulars)

        try:
            body = self.call("GET", f"/schemas/ids/{schema_id}")
        except RegistryError as e:
            if e.status == 404:
                return self._refuse(schema_id, Reason.UNKNOWN_ID)
            raise RegistryUnavailable(self.url, f"HTTP {e.status}") from None
        try:
            kind = body.get("schemaType", "AVRO")
            if kind != "AVRO":
                raise ValueError(f"a {kind} schema")
            raw = self.resolved(json.loads(body["schema"]), body.get("references"))
            return self.known(schema_id, raw)
        except RegistryUnavailable:
            raise
        except Exception as e:  # not Avro, a missing reference: the record's problem
            return self._refuse(schema_id, Reason.NOT_AVRO, detail=str(e) or type(e).__name__)

    def known(self, schema_id: int, schema: Any) -> Any:
        """Take `schema` (self-contained JSON) as the registry's answer for `schema_id`, and
        return it parsed: what a lookup caches, so values framed with that id decode without a
        registry (the decode benchmark, unit tests)."""
        import fastavro

        parsed = fastavro.parse_schema(millis_as_long(schema) if self.millis_as_long else schema)
        self._parsed[schema_id] = parsed
        self.raw[schema_id] = schema
        return parsed

    def _refuse(self, schema_id: int, kind: Reason, **particulars: Any) -> Any:
        self._bad[schema_id] = (kind, particulars)
        raise DecodeError(kind, schema_id, **particulars)

    def decode(self, value: bytes | None, reader: Any = None) -> dict[str, Any]:
        """The record of one value, read with `reader` (a parsed schema: Avro schema resolution)
        or its writer schema. DecodeError (a bad record: its reason and schema id) or
        RegistryUnavailable."""
        return self.read(value, reader)[1]

    def read(self, value: bytes | None, reader: Any = None) -> tuple[int, dict[str, Any]]:
        """(schema id, record) of one value: `decode`, with the id of the header read once."""
        from fastavro import schemaless_reader

        schema_id = schema_id_of(value)
        assert value is not None
        writer = self.schema(schema_id)
        if not isinstance(writer, dict) or writer.get("type") != "record":
            raise DecodeError(Reason.NOT_RECORD, schema_id)
        buf = io.BytesIO(value)
        buf.seek(HEADER_BYTES)
        try:
            rec = schemaless_reader(buf, writer, self._resolving(schema_id, writer, reader))
        except Exception:  # any Avro resolution / decoding error is a bad record: which kind?
            raise _undecodable(value, schema_id, writer, reader) from None
        if buf.tell() != len(value):
            raise DecodeError(Reason.TRAILING, schema_id, count=len(value) - buf.tell())
        assert isinstance(rec, dict)  # a record schema reads a dict
        return schema_id, rec

    def _resolving(self, schema_id: int, writer: Any, reader: Any) -> Any:
        """`reader`, or None when it equals the writer schema: fastavro compares the two whole
        schemas on every call otherwise (a quarter of a record's read, issue 17)."""
        if reader is None:
            return None
        seen = self._readers.get(schema_id)
        if seen is None or seen[0] is not reader:
            seen = self._readers[schema_id] = (reader, None if writer == reader else reader)
        return seen[1]


def _undecodable(value: bytes, schema_id: int, writer: Any, reader: Any) -> DecodeError:
    """The DecodeError of a body fastavro refused, by kind: fastavro's compiled reader tells a
    body that ends early only sometimes (EOFError, or an IndexError like a bad enum index), so
    the body is read again by its pure-Python reader, which raises EOFError exactly when the
    bytes end before the record does (the failure path only: it is slower)."""
    from fastavro._read_py import schemaless_reader as read_py

    buf = io.BytesIO(value)
    buf.seek(HEADER_BYTES)
    try:
        read_py(buf, writer, reader)
    except EOFError:
        return DecodeError(Reason.TRUNCATED, schema_id)
    except Exception as e:
        return DecodeError(Reason.UNDECODABLE, schema_id, detail=_detail(e, writer, reader))
    return DecodeError(Reason.UNDECODABLE, schema_id, detail="not Avro of that schema")


def _detail(e: Exception, writer: Any, reader: Any) -> str:
    """What went wrong decoding, in a few words that are the same for the same bytes."""
    from fastavro.read import SchemaResolutionError

    if isinstance(e, SchemaResolutionError) and isinstance(reader, dict):
        return f"written as {writer.get('name')}, not readable as {reader.get('name')}"
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)  # an object's address differs per run
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
