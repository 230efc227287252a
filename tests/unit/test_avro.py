"""The one Confluent wire-format decoder (flinkpulse.avro): every failure kind has one dead-letter
reason, the same on the Flink path (flink_jobs.decoding.decode_record) and in the loader
(flinkpulse.loader.avro.Decoder). The registry is a stub: no service is needed."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from flink_jobs.decoding import decode_record, job_reader, job_registry
from flinkpulse import avro
from flinkpulse.avro import DecodeError, Registry, RegistryUnavailable
from flinkpulse.loader.avro import Decoder

pytestmark = pytest.mark.unit

RECORD = {
    "type": "record",
    "name": "Thing",
    "namespace": "test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
OTHER = {"type": "record", "name": "Other", "fields": [{"name": "n", "type": "double"}]}
ENUM = {"type": "record", "name": "E", "fields": [{"name": "k", "type": {"type": "enum", "name": "K", "symbols": ["a", "b"]}}]}  # fmt: skip
SCHEMAS: dict[int, dict[str, Any]] = {
    1: {"schema": json.dumps(RECORD)},
    2: {"schema": json.dumps(OTHER)},
    3: {"schema": "{}", "schemaType": "JSON"},
    4: {"schema": json.dumps("string")},
    5: {"schema": json.dumps(ENUM)},
}
AT = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)


class Response:
    def __init__(self, status: int, body: Any = None) -> None:
        self.status_code, self._body = status, body

    def json(self) -> Any:
        return self._body


class Session:
    """Answers /schemas/ids/<id> from SCHEMAS; counts requests; `down` raises like requests."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    def get(self, url: str, timeout: float) -> Response:
        import requests

        self.calls += 1
        if self.down:
            raise requests.ConnectionError("refused")
        sid = int(url.rsplit("/", 1)[1])
        return Response(200, SCHEMAS[sid]) if sid in SCHEMAS else Response(404)


def framed(schema_id: int, schema: Any, rec: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), rec)
    return avro.header(schema_id) + buf.getvalue()


def stubbed(reg: Registry) -> Session:
    reg._session = Session()
    return reg._session


GOOD = framed(1, RECORD, {"id": "a", "at": AT})
BAD: dict[str, tuple[bytes | None, str]] = {
    "tombstone": (None, "null value (tombstone)"),
    "too short": (b"\x00\x00\x01", "too short for Confluent wire format (3 bytes)"),
    "wrong magic byte": (b"\x01" + GOOD[1:], "wrong magic byte 1 (expected 0: not Confluent Avro)"),
    "unknown schema id": (b"\x00" + struct.pack(">I", 999_999) + GOOD[5:], "unknown schema id 999999"),
    "not an Avro schema": (b"\x00\x00\x00\x00\x03" + GOOD[5:], "schema id 3 is not a usable Avro schema: a JSON schema"),
    "truncated": (GOOD[:-2], "cannot decode with schema id 1: the record ends early (truncated)"),
    "truncated in a string": (GOOD[:7], "cannot decode with schema id 1: the record ends early (truncated)"),
    "trailing bytes": (GOOD + b"\x00\x00", "cannot decode with schema id 1: 2 trailing bytes after the record"),
    "truncated varint": (GOOD[:5] + b"\xff" * 7, "cannot decode with schema id 1: the record ends early (truncated)"),
    "bad enum index": (framed(5, ENUM, {"k": "a"})[:5] + b"\x0c", "cannot decode with schema id 5: IndexError: list index out of range"),
    "not a record": (framed(4, "string", "x"), "schema id 4 is not a record schema"),
}  # fmt: skip
KINDS = {
    "tombstone": avro.Reason.TOMBSTONE, "too short": avro.Reason.TOO_SHORT,
    "wrong magic byte": avro.Reason.MAGIC, "unknown schema id": avro.Reason.UNKNOWN_ID,
    "not an Avro schema": avro.Reason.NOT_AVRO, "truncated": avro.Reason.TRUNCATED,
    "truncated in a string": avro.Reason.TRUNCATED, "trailing bytes": avro.Reason.TRAILING,
    "truncated varint": avro.Reason.TRUNCATED, "bad enum index": avro.Reason.UNDECODABLE, "not a record": avro.Reason.NOT_RECORD,
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_one_reason_per_failure_kind_in_flink_and_in_the_loader(case: str) -> None:
    """The exact reason, the same on both paths, and its kind by type (never by its text)."""
    value, reason = BAD[case]
    flink = job_registry("http://registry")
    stubbed(flink)
    reader = job_reader(ENUM if case == "bad enum index" else RECORD)
    rec, sid, flink_reason = decode_record(flink, reader, value)
    loader = Decoder("http://registry")
    stubbed(loader)
    with pytest.raises(DecodeError) as e:
        loader.decode(value)
    assert rec is None and flink_reason == str(e.value) == reason, case
    assert e.value.kind is KINDS[case]
    assert sid == e.value.schema_id
    assert sid == (
        -1 if value is None or len(value) < 5 or value[0] else int.from_bytes(value[1:5])
    )


def test_a_refused_field_value_has_one_reason_in_the_jobs_and_in_the_loader() -> None:
    """A job's validation and the loader's column conversion both say which field, then why."""
    from flink_jobs import validation
    from flinkpulse.loader.columns import TableSpec, arrow_type, build

    rec = {"status": 999, "latency_ms": 1.0, "bytes": 1}
    job = validation.access_log(rec)
    assert job == "invalid value in field status: 999 is not an HTTP status (100..599)"
    spec = TableSpec("db", "t", {"status": arrow_type("Int32")})
    _, bad = build(spec, "t", 0, [{"status": "999"}], [0])
    assert bad[0].startswith("invalid value in field status: cannot store '999' as int32: ")
    fmt = avro.Reason.INVALID_FIELD.value
    assert fmt.format(field="status", detail="") == "invalid value in field status: "
    assert job.startswith(fmt.format(field="status", detail=""))


def test_a_record_of_another_type_cannot_be_read_with_the_reader_schema() -> None:
    reg = job_registry("http://registry")
    stubbed(reg)
    rec, sid, reason = decode_record(reg, job_reader(RECORD), framed(2, OTHER, {"n": 1.0}))
    assert (rec, sid) == (None, 2)
    assert reason == "cannot decode with schema id 2: written as Other, not readable as test.Thing"


def test_good_records_read_their_timestamps_as_epoch_millis_in_flink_and_in_the_loader() -> None:
    """No datetime objects on the hot path: the jobs' UDF returns epoch ms, as the loader's
    Arrow columns take them."""
    reg = job_registry("http://registry")
    stubbed(reg)
    rec, sid, reason = decode_record(reg, job_reader(RECORD), GOOD, millis={"at"})
    assert (rec, sid, reason) == ({"id": "a", "at": int(AT.timestamp() * 1000)}, 1, None)
    loader = Decoder("http://registry")
    stubbed(loader)
    assert loader.decode(GOOD) == {"id": "a", "at": int(AT.timestamp() * 1000)}
    assert loader.raw[1] == RECORD


def test_a_known_schema_decodes_without_asking_the_registry() -> None:
    """`Registry.known` caches what a lookup would (the decode benchmark has no registry), and
    `header` is the one Confluent framing: magic byte 0, then the id in 4 bytes big-endian."""
    assert avro.header(258) == b"\x00\x00\x00\x01\x02"
    reg = job_registry("http://registry")
    session = stubbed(reg)
    reg.known(9, RECORD)
    rec, sid, reason = decode_record(
        reg, job_reader(RECORD), framed(9, RECORD, {"id": "a", "at": AT}), millis={"at"}
    )
    assert (rec, sid, reason, session.calls) == (
        {"id": "a", "at": int(AT.timestamp() * 1000)},
        9,
        None,
        0,
    )
    assert reg.raw[9] == RECORD


def test_validation_refusal_is_the_reason() -> None:
    reg = job_registry("http://registry")
    stubbed(reg)
    reader = job_reader(RECORD)
    assert decode_record(reg, reader, GOOD, lambda r: "id is a") == (None, 1, "id is a")


def test_each_schema_id_is_asked_once_missing_ones_too() -> None:
    reg = Decoder("http://registry")
    session = stubbed(reg)
    for _ in range(3):
        reg.decode(GOOD)
        with pytest.raises(DecodeError):
            reg.decode(BAD["unknown schema id"][0])
    assert session.calls == 2


def test_an_unreachable_registry_is_not_the_record_s_fault() -> None:
    reg = Decoder("http://registry")
    stubbed(reg).down = True
    with pytest.raises(RegistryUnavailable):
        reg.decode(GOOD)
    flink = job_registry("http://registry")
    stubbed(flink).down = True
    with pytest.raises(RegistryUnavailable):  # the job fails and restarts; no dead letter
        decode_record(flink, job_reader(RECORD), GOOD)
    assert avro.REGISTRY_TIMEOUT_S == reg.timeout == flink.timeout


def test_an_outage_is_told_by_exception_type_in_one_line() -> None:
    """Nothing listens on port 1: the connection is refused (an exception type, not a message
    searched for 'connect'), and every registry caller reports the CLI's one line."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg = Registry(f"http://127.0.0.1:{port}", timeout=2)
    for call in (lambda: reg.register("s-value", '"string"'), lambda: reg.versions("s-value")):
        with pytest.raises(RegistryUnavailable) as e:
            call()
        assert str(e.value) == (
            f"schema registry is not reachable at http://127.0.0.1:{port} — run `flinkpulse stack up`"
        )


#: a type another subject defines (a schema reference)
ADDRESS_C = {"type": "record", "name": "Address", "namespace": "c", "fields": [{"name": "z", "type": "string"}]}  # fmt: skip


def test_references_are_inlined_once_in_avro_order() -> None:
    """The first use of a referenced type gets its definition, later uses keep the name; a
    short name resolves in the enclosing namespace."""
    address = ADDRESS_C
    order = {"type": "record", "name": "Order", "namespace": "c", "fields": [
        {"name": "a", "type": ["null", "Address"]}, {"name": "b", "type": "c.Address"},
        {"name": "n", "type": {"type": "array", "items": "c.Address"}},
    ]}  # fmt: skip
    out = avro.inline_references(order, {"c.Address": address})
    assert [f["type"] for f in out["fields"]] == [
        ["null", address],
        "c.Address",
        {"type": "array", "items": "c.Address"},
    ]
    parsed = fastavro.parse_schema(out)
    rec = {"a": None, "b": {"z": "1"}, "n": [{"z": "2"}]}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, rec)
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, parsed, None) == rec


def test_nested_types_keep_their_namespace_when_references_are_inlined() -> None:
    """A nested record without its own namespace lives in its host's; the inlined reference
    and the nested type both resolve (fastavro reads and writes the result)."""
    address = ADDRESS_C
    order: dict[str, Any] = {"type": "record", "name": "Order", "namespace": "shop", "fields": [
        {"name": "line", "type": {"type": "record", "name": "Line", "fields": [{"name": "q", "type": "int"}]}},
        {"name": "again", "type": "Line"}, {"name": "to", "type": "c.Address"},
    ]}  # fmt: skip
    out = avro.inline_references(order, {"c.Address": address})
    assert out["fields"][0]["type"] == order["fields"][0]["type"]  # unchanged
    assert out["fields"][1]["type"] == "Line" and out["fields"][2]["type"] == address
    parsed: Any = fastavro.parse_schema(out)
    assert "shop.Line" in parsed["__named_schemas"] and "c.Address" in parsed["__named_schemas"]


def test_the_batch_decoder_gives_per_value_what_the_row_decoder_gives() -> None:
    """The vectorized decode (``flink.vectorized_decode``) returns, as columns, exactly the ok
    flag, reason, schema id and fields (timestamps as epoch ms) of the per-record decode."""
    from flink_jobs.decoding import decode_batch

    values = [GOOD, *(v for v, _ in BAD.values()), GOOD]
    reg = job_registry("http://registry")
    stubbed(reg)
    reader = job_reader(RECORD)
    cols = decode_batch(reg, reader, values, ["id", "at"], {"at"})
    assert set(cols) == {"ok", "error", "schema_id", "id", "at"}
    assert all(len(c) == len(values) for c in cols.values())
    for i, value in enumerate(values):
        rec, sid, err = decode_record(reg, reader, value, millis={"at"})
        want = (rec is not None, err, sid, rec and rec["id"], rec and rec["at"])
        got = tuple(cols[c][i] for c in ("ok", "error", "schema_id", "id", "at"))
        assert got == want, i
    assert cols["ok"] == [True, *[False] * len(BAD), True]
    assert cols["at"][0] == 1_767_323_045_678 and cols["id"][0] == "a"


SCHEMAS[6] = {"schema": json.dumps({**RECORD, "fields": RECORD["fields"][:1]})}  # Thing v0: no "at"


@pytest.mark.parametrize(
    "ms", [0, -1, 1_480_204_799_999, 1_767_225_600_123, -62_135_596_800_000, 253_402_300_799_999]
)
def test_the_jobs_read_timestamps_as_exact_epoch_millis_in_years_1_to_9999(ms: int) -> None:
    reg = job_registry("http://registry")
    stubbed(reg)
    value = framed(1, RECORD, {"id": "a", "at": ms})
    assert decode_record(reg, job_reader(RECORD), value, millis={"at"}) == (
        {"id": "a", "at": ms}, 1, None,
    )  # fmt: skip


@pytest.mark.parametrize("ms", [-62_135_596_800_001, 253_402_300_800_000, 2**62])
def test_a_timestamp_no_timestamp_type_can_hold_is_dead_lettered_by_field(ms: int) -> None:
    """Read as a long, such a value would reach SQL; as a datetime it failed to decode."""
    reg = job_registry("http://registry")
    stubbed(reg)
    value = framed(1, RECORD, {"id": "a", "at": ms})
    assert decode_record(reg, job_reader(RECORD), value, millis={"at"}) == (
        None, 1, f"invalid value in field at: {ms} ms is not a time in years 1..9999",
    )  # fmt: skip


def test_a_writer_equal_to_the_reader_is_read_without_resolution_an_older_one_with() -> None:
    """The resolution shortcut (`Registry._resolving`) never changes a record: an older writer
    (Thing without `at`) still gets the reader's default for a field it did not write."""
    reg = job_registry("http://registry")
    stubbed(reg)
    reader = job_reader({**RECORD, "fields": [RECORD["fields"][0], {"name": "n", "type": ["null", "long"], "default": None}]})  # fmt: skip
    same = job_reader({**RECORD, "fields": RECORD["fields"][:1]})
    old = framed(6, {**RECORD, "fields": RECORD["fields"][:1]}, {"id": "b"})
    for _ in range(2):  # the second read takes the cached decision
        assert decode_record(reg, same, old) == ({"id": "b"}, 6, None)
        assert decode_record(reg, reader, old) == ({"id": "b", "n": None}, 6, None)
    assert reg._readers[6][0] is reader and reg._readers[6][1] is reader
    assert decode_record(reg, same, old)[0] == {"id": "b"}
    assert reg._readers[6] == (same, None)
