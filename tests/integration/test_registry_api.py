"""The registry's REST surface as confluent-kafka's official client calls it (issue 19):
schema references (an event whose `Address` type lives under another subject, written by the
official AvroSerializer and read back by the official AvroDeserializer, the jobs' decoder
(flink_jobs.decoding) and the loader's (flinkpulse.loader.avro)), error codes, the seven
compatibility levels globally and per subject, /mode, normalize, deleted and deleted_only.

The registry is the project's own server (flinkpulse.registry), run in this process with its
state in memory: no Kafka needed (the same state's durability through its Kafka topic is
test_registry.py's restart test; the pipeline with references is test_registry_references_e2e).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from confluent_kafka.schema_registry import (
    Schema,
    SchemaReference,
    SchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from flink_jobs.decoding import decode_record, job_reader, job_registry
from flinkpulse.loader.avro import Decoder
from flinkpulse.registry import compat
from flinkpulse.registry.server import make_server
from flinkpulse.registry.store import State

pytestmark = pytest.mark.integration


def _record(full_name: str, *fields: tuple[Any, ...]) -> dict[str, Any]:
    """A record schema; a field given as (name, type, default) has that default."""
    ns, name = full_name.rsplit(".", 1)
    return {
        "type": "record",
        "name": name,
        "namespace": ns,
        "fields": [dict(zip(("name", "type", "default"), f, strict=False)) for f in fields],
    }


ADDRESS_FIELDS = [("city", "string"), ("zip", "string")]
ADDRESS = _record("t.common.Address", *ADDRESS_FIELDS)
ORDER_FIELDS: list[tuple[Any, ...]] = [
    ("id", "string"),
    ("ship_to", "t.common.Address"),
    ("bill_to", ["null", "t.common.Address"], None),
    ("at", {"type": "long", "logicalType": "timestamp-millis"}),
]
ORDER = _record("t.shop.Order", *ORDER_FIELDS)
#: a schema with no reference, for the mode tests
ORDER_NO_REF = _record("t.shop.Order", ORDER_FIELDS[0], ORDER_FIELDS[3])
AT = datetime(2026, 11, 30, 12, 0, 0, 123_000, tzinfo=UTC)
ROW = {
    "id": "o-1",
    "ship_to": {"city": "Lyon", "zip": "69001"},
    "bill_to": {"city": "Paris", "zip": "75001"},
    "at": AT,
}


@pytest.fixture
def url() -> Iterator[str]:
    """The registry's HTTP API on a free port, state in memory."""
    server = make_server(State(None), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _register_pair(c: SchemaRegistryClient) -> tuple[int, int, Schema]:
    """Address under its own subject, Order referencing its version 1: (address id, order id,
    the Order schema as registered)."""
    address_id = c.register_schema("address-value", Schema(json.dumps(ADDRESS), "AVRO"))
    order = Schema(
        json.dumps(ORDER), "AVRO", [SchemaReference("t.common.Address", "address-value", 1)]
    )
    return address_id, c.register_schema("orders-value", order), order


def test_register_lookup_and_read_back_a_schema_with_references(url: str) -> None:
    c = SchemaRegistryClient({"url": url})
    address_id, order_id, order = _register_pair(c)
    assert order_id != address_id
    assert c.register_schema("orders-value", order) == order_id  # idempotent
    full = SchemaRegistryClient({"url": url}).register_schema_full_response("orders-value", order)
    assert (full.schema_id, full.version) == (order_id, 1)
    got = c.get_schema(order_id)
    assert json.loads(got.schema_str or "") == ORDER
    assert [(r.name, r.subject, r.version) for r in got.references or []] == [
        ("t.common.Address", "address-value", 1)
    ]
    found = c.lookup_schema("orders-value", order)
    assert (found.version, found.schema_id) == (1, order_id)
    # the same text without its reference is not that schema: it does not even parse
    with pytest.raises(SchemaRegistryError) as e:
        c.lookup_schema("orders-value", Schema(json.dumps(ORDER), "AVRO"))
    assert e.value.error_code in (40403, 42201)
    assert c.get_referenced_by("address-value", 1) == [order_id]
    assert c.get_referenced_by("orders-value", 1) == []


def test_a_reference_to_a_missing_version_is_refused(url: str) -> None:
    c = SchemaRegistryClient({"url": url})
    c.register_schema("address-value", Schema(json.dumps(ADDRESS), "AVRO"))
    bad = Schema(
        json.dumps(ORDER), "AVRO", [SchemaReference("t.common.Address", "address-value", 7)]
    )
    with pytest.raises(SchemaRegistryError) as e:
        c.register_schema("orders-value", bad)
    assert (e.value.http_status_code, e.value.error_code) == (422, 42201)
    assert "address-value" in e.value.error_message and "version 7" in e.value.error_message


def test_delete_is_refused_while_referenced(url: str) -> None:
    c = SchemaRegistryClient({"url": url})
    _register_pair(c)
    for call in (
        lambda: c.delete_version("address-value", 1),
        lambda: c.delete_subject("address-value"),
    ):
        with pytest.raises(SchemaRegistryError) as e:
            call()
        assert (e.value.http_status_code, e.value.error_code) == (422, 42206)
        assert "address-value" in e.value.error_message
    # once the referrer is gone (soft delete), the referenced type may go too
    assert c.delete_subject("orders-value") == [1]
    assert c.get_referenced_by("address-value", 1) == []
    assert c.delete_version("address-value", 1) == 1


def test_compatibility_resolves_referenced_types(url: str) -> None:
    c = SchemaRegistryClient({"url": url})
    _register_pair(c)
    refs = [SchemaReference("t.common.Address", "address-value", 1)]
    # a new required field without default breaks BACKWARD; the referenced type is resolved
    broken = _record("t.shop.Order", *ORDER_FIELDS, ("total", "double"))
    ok = _record("t.shop.Order", *ORDER_FIELDS, ("note", ["null", "string"], None))
    assert not c.test_compatibility("orders-value", Schema(json.dumps(broken), "AVRO", refs))
    assert c.test_compatibility("orders-value", Schema(json.dumps(ok), "AVRO", refs))
    with pytest.raises(SchemaRegistryError) as e:
        c.register_schema("orders-value", Schema(json.dumps(broken), "AVRO", refs))
    assert e.value.http_status_code == 409 and "total" in e.value.error_message
    assert c.register_schema("orders-value", Schema(json.dumps(ok), "AVRO", refs)) > 0


def test_official_serializer_records_decode_in_the_jobs_and_the_loader(url: str) -> None:
    c = SchemaRegistryClient({"url": url})
    _, order_id, order = _register_pair(c)
    ser = AvroSerializer(
        c, order, conf={"auto.register.schemas": False, "use.latest.version": True}
    )
    ctx = SerializationContext("orders", MessageField.VALUE)
    value = ser(ROW, ctx)
    assert value[0] == 0 and int.from_bytes(value[1:5], "big") == order_id
    # the official deserializer resolves the reference through our registry
    assert AvroDeserializer(c)(value, ctx) == ROW
    # the jobs' decoder: epoch-ms timestamps, read with a self-contained reader schema
    reader = job_reader(
        _record("t.shop.Order", ORDER_FIELDS[0], ("ship_to", ADDRESS), *ORDER_FIELDS[2:])
    )
    rec, sid, reason = decode_record(job_registry(url), reader, value, millis={"at"})
    assert (sid, reason) == (order_id, None)
    assert rec == {**ROW, "at": int(AT.timestamp() * 1000)}
    # the loader's decoder: epoch milliseconds; its writer schema is self-contained
    loader = Decoder(url)
    assert loader.decode(value) == {**ROW, "at": int(AT.timestamp() * 1000)}
    assert loader.raw[order_id]["fields"][1]["type"] == ADDRESS
    assert loader.raw[order_id]["fields"][2]["type"] == ["null", "t.common.Address"]


def test_a_chain_of_references_is_resolved(url: str) -> None:
    """Order -> Customer -> Address: the decoder follows references of references."""
    c = SchemaRegistryClient({"url": url})
    c.register_schema("address-value", Schema(json.dumps(ADDRESS), "AVRO"))
    customer = _record("t.common.Customer", ("name", "string"), ("home", "Address"))
    c.register_schema(
        "customer-value",
        Schema(
            json.dumps(customer), "AVRO", [SchemaReference("t.common.Address", "address-value", 1)]
        ),
    )
    invoice = _record("t.shop.Invoice", ("to", "t.common.Customer"), ("ship", "t.common.Address"))
    sid = c.register_schema(
        "invoice-value",
        Schema(json.dumps(invoice), "AVRO", [
            SchemaReference("t.common.Customer", "customer-value", 1),
            SchemaReference("t.common.Address", "address-value", 1),
        ]),
    )  # fmt: skip
    rec = {
        "to": {"name": "Ann", "home": {"city": "Nice", "zip": "06000"}},
        "ship": {"city": "Metz", "zip": "57000"},
    }
    ser = AvroSerializer(c, None, conf={"use.latest.version": True, "auto.register.schemas": False})
    ctx = SerializationContext("invoice", MessageField.VALUE)
    value = ser(rec, ctx)
    assert int.from_bytes(value[1:5], "big") == sid
    assert Decoder(url).decode(value) == rec


def test_mode_readonly_refuses_writes_and_import_keeps_given_ids(url: str) -> None:
    """/mode (READWRITE, READONLY, IMPORT), global and per subject, through the official
    client's get/update/delete_mode; an import with given ids over REST (as migration tools do)."""
    import requests

    c = SchemaRegistryClient({"url": url})
    assert c.get_global_mode() == "READWRITE"
    sid = c.register_schema("address-value", Schema(json.dumps(ADDRESS), "AVRO"))
    assert c.update_mode("address-value", "READONLY") == "READONLY"
    assert c.get_mode("address-value") == "READONLY"
    for call in (
        lambda: c.register_schema("address-value", Schema(json.dumps(ORDER_NO_REF), "AVRO")),
        lambda: c.delete_subject("address-value"),
    ):
        with pytest.raises(SchemaRegistryError) as e:
            call()
        assert (e.value.http_status_code, e.value.error_code) == (422, 42205)
        assert "read-only" in e.value.error_message
    assert c.get_latest_version("address-value").schema_id == sid  # reads still work
    assert c.delete_mode("address-value") == "READONLY"
    assert c.get_mode("address-value") == "READWRITE"  # the global mode again
    # IMPORT: refused while subjects exist unless forced; then ids come from the caller
    with pytest.raises(SchemaRegistryError) as e:
        c.update_global_mode("IMPORT")
    assert e.value.error_code == 42205
    assert c.update_global_mode("IMPORT", force=True) == "IMPORT"
    body = {"schema": json.dumps(ORDER_NO_REF), "id": 500, "version": 3}
    r = requests.post(f"{url}/subjects/imported-value/versions", json=body, timeout=5)
    assert r.json() == {"id": 500, "version": 3}
    got = c.get_version("imported-value", 3)
    assert (got.schema_id, got.version) == (500, 3)
    r = requests.post(
        f"{url}/subjects/other-value/versions", json={**body, "version": 1}, timeout=5
    )  # the same id for the same text is kept, for another text it is refused
    assert r.json() == {"id": 500, "version": 1}
    clash = {"schema": json.dumps(ADDRESS), "id": 500}
    r = requests.post(f"{url}/subjects/clash-value/versions", json=clash, timeout=5)
    assert (r.status_code, r.json()["error_code"]) == (422, 42205)
    assert c.update_global_mode("READWRITE") == "READWRITE"
    r = requests.post(f"{url}/subjects/x-value/versions", json=clash, timeout=5)
    assert (r.status_code, r.json()["error_code"]) == (422, 42205)  # ids only in IMPORT
    with pytest.raises(SchemaRegistryError) as e:
        c.update_global_mode("SIDEWAYS")
    assert e.value.error_code == 42204


def test_error_codes_through_the_official_client(url: str) -> None:
    c = SchemaRegistryClient({"url": url})
    thing = Schema(json.dumps(ADDRESS), "AVRO")

    def code(call: Callable[[], Any]) -> tuple[int, int]:
        with pytest.raises(SchemaRegistryError) as e:
            call()
        return e.value.http_status_code, e.value.error_code

    assert code(lambda: c.get_versions("s-value")) == (404, 40401)
    sid = c.register_schema("s-value", thing)
    assert code(lambda: c.get_version("s-value", 9)) == (404, 40402)
    assert code(lambda: c.get_version("s-value", 0)) == (422, 42202)
    assert code(lambda: c.get_schema(987654)) == (404, 40403)
    assert code(lambda: c.lookup_schema("s-value", Schema(json.dumps(ORDER_NO_REF), "AVRO"))) == (
        404,
        40403,
    )
    assert code(lambda: c.register_schema("s-value", Schema("{not json", "AVRO"))) == (422, 42201)
    required = _record("t.common.Address", *ADDRESS_FIELDS, ("n", "int"))
    assert code(lambda: c.register_schema("s-value", Schema(json.dumps(required), "AVRO"))) == (
        409,
        409,
    )
    assert code(lambda: c.delete_version("s-value", 1, permanent=True)) == (404, 40407)
    assert code(lambda: c.delete_subject("s-value", permanent=True)) == (404, 40405)
    assert c.delete_subject("s-value") == [1]
    assert code(lambda: c.delete_subject("s-value")) == (404, 40404)
    # soft-deleted: found only with deleted=true
    assert code(lambda: c.lookup_schema("s-value", thing)) == (404, 40401)
    assert c.lookup_schema("s-value", thing, deleted=True).schema_id == sid
    assert c.get_version("s-value", 1, deleted=True).schema_id == sid
    assert c.get_subjects() == [] and c.get_subjects(deleted=True) == ["s-value"]
    assert c.get_subjects(deleted_only=True) == ["s-value"]
    assert c.get_versions("s-value", deleted_only=True) == [1]
    assert [(v.subject, v.version) for v in c.get_schema_versions(sid)] == []
    assert [(v.subject, v.version) for v in c.get_schema_versions(sid, deleted=True)] == [
        ("s-value", 1)
    ]
    assert c.delete_subject("s-value", permanent=True) == [1]
    assert code(lambda: c.get_schema(sid)) == (404, 40403)


@pytest.mark.parametrize("level", compat.LEVELS)
def test_every_compatibility_level_globally_and_per_subject(url: str, level: str) -> None:
    """The seven levels through set_config / get_config / delete_config; verbose answers of
    /compatibility name the field."""
    from confluent_kafka.schema_registry import ServerConfig
    from confluent_kafka.schema_registry.common.schema_registry_client import (
        ConfigCompatibilityLevel as CompatibilityLevel,
    )

    c = SchemaRegistryClient({"url": url})
    cl = CompatibilityLevel(level)
    # set_config answers the raw JSON, get_config a ServerConfig
    assert c.set_config(config=ServerConfig(compatibility=cl)) == {"compatibility": level}
    assert c.get_config().compatibility_level == cl
    c.register_schema("l-value", Schema(json.dumps(ADDRESS), "AVRO"))
    assert c.set_config("l-value", ServerConfig(compatibility=cl)) == {"compatibility": level}
    assert c.get_config("l-value").compatibility_level == cl
    assert c.get_compatibility("l-value") == level
    # a required field added: BACKWARD-type levels refuse it, FORWARD and NONE accept it
    required = Schema(
        json.dumps(_record("t.common.Address", *ADDRESS_FIELDS, ("n", "int"))), "AVRO"
    )
    ok = level == "NONE" or level.startswith("FORWARD")
    assert c.test_compatibility("l-value", required) is ok
    r = requests.post(
        f"{url}/compatibility/subjects/l-value/versions/1?verbose=true",
        json={"schema": required.schema_str},
        timeout=5,
    ).json()
    assert r["is_compatible"] is ok
    assert (r["messages"] == []) if ok else ("field 'n'" in " ".join(r["messages"]))
    assert c.delete_config("l-value").compatibility_level == cl
    c.delete_config()  # the global level back to BACKWARD
    assert c.get_config().compatibility_level == CompatibilityLevel.BACKWARD


def test_normalize_stores_the_canonical_form(url: str) -> None:
    c = SchemaRegistryClient({"url": url})
    spaced = json.dumps(ADDRESS, indent=4)
    sid = c.register_schema("n-value", Schema(spaced, "AVRO"), normalize_schemas=True)
    stored = c.get_schema(sid).schema_str or ""
    assert json.loads(stored) == json.loads(compat.canonical(spaced)) and "\n" not in stored
    reordered = json.dumps(dict(reversed(list(ADDRESS.items()))))
    assert c.register_schema("n-value", Schema(reordered, "AVRO"), normalize_schemas=True) == sid
    found = c.lookup_schema("n-value", Schema(reordered, "AVRO"), normalize_schemas=True)
    assert (found.schema_id, found.version) == (sid, 1)


def test_json_schema_and_protobuf_are_refused_clearly(url: str) -> None:
    c = SchemaRegistryClient({"url": url})
    for kind, text in (("JSON", '{"type": "object"}'), ("PROTOBUF", 'syntax = "proto3";')):
        with pytest.raises(SchemaRegistryError) as e:
            c.register_schema("j-value", Schema(text, kind))
        assert (e.value.http_status_code, e.value.error_code) == (422, 42201)
        assert f"unsupported schema type '{kind}' (AVRO only)" in e.value.error_message


def test_schemas_register_and_check_use_the_core_client(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`flinkpulse schemas register --all-versions` registers every version in order through
    flinkpulse.avro.Registry, `schemas check` then passes; with no registry, one line, exit 1."""
    import socket

    from flinkpulse import cli
    from flinkpulse.schemas import TOPIC_RECORDS, schema_versions

    argv = ["--set", "kafka.topic_prefix=cli.", "--set", f"registry.url={url}"]
    assert cli.main([*argv, "schemas", "register", "--all-versions"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == sum(len(schema_versions(r)) for r in TOPIC_RECORDS.values())
    c = SchemaRegistryClient({"url": url})
    for topic, rec in TOPIC_RECORDS.items():
        assert c.get_versions(f"cli.{topic}-value") == sorted(schema_versions(rec))
    assert "ok   cli.gaming.player-events-value: flinkpulse.gaming.PlayerEvent v2 -> id " in (
        "\n".join(out)
    )
    assert cli.main([*argv, "schemas", "check"]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = ["--set", f"registry.url=http://127.0.0.1:{port}"]
    assert cli.main([*down, "schemas", "register"]) == 1
    assert capsys.readouterr().err == (
        f"flinkpulse: error: schema registry is not reachable at http://127.0.0.1:{port} — "
        "run `flinkpulse stack up`\n"
    )


def test_a_second_independent_client(url: str) -> None:
    """python-schema-registry-client (httpx-based, no reference support of its own) against the
    same surface: register, by id, versions, lookup, levels, compatibility, deletes."""
    from schema_registry.client import SchemaRegistryClient as Other
    from schema_registry.client import schema as other_schema

    c = Other(url=url)
    thing = other_schema.AvroSchema(ADDRESS)
    sid = c.register("o-value", thing)
    assert c.register("o-value", thing) == sid
    by_id = c.get_by_id(sid)
    assert by_id is not None and by_id.raw_schema == ADDRESS
    assert c.get_subjects() == ["o-value"] and c.get_versions("o-value") == [1]
    found = c.check_version("o-value", thing)
    assert found is not None and (found.schema_id, found.version) == (sid, 1)
    latest = c.get_schema("o-value")
    assert latest is not None and (latest.schema_id, latest.version) == (sid, 1)
    versions = c.get_schema_subject_versions(sid) or []
    assert [(v.subject, v.version) for v in versions] == [("o-value", 1)]
    required = other_schema.AvroSchema(_record("t.common.Address", *ADDRESS_FIELDS, ("n", "int")))
    assert c.test_compatibility("o-value", required) is False
    assert c.update_compatibility("FORWARD", "o-value") is True
    assert c.get_compatibility("o-value") == "FORWARD"
    assert c.test_compatibility("o-value", required) is True
    assert c.register("o-value", required) > sid
    assert c.delete_version("o-value", 2) == 2
    assert c.delete_subject("o-value") == [1]
    assert c.get_subjects() == []
