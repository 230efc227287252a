"""The schema registry service: Confluent's REST API and clients, compatibility levels,
deletes and error codes, and state that survives a restart (the compacted `_schemas` topic)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from flinkpulse.config import Config
from flinkpulse.schemas import schema, schema_str

pytestmark = pytest.mark.integration


def _record(fields: list[dict[str, Any]], name: str = "Thing") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "t", "fields": fields})


A = {"name": "a", "type": "string"}
B_OPT = {"name": "b", "type": ["null", "long"], "default": None}
C_REQ = {"name": "c", "type": "int"}


@pytest.fixture
def url(ensure_stack: Any) -> str:
    cfg: Config = ensure_stack("kafka", "registry")
    return cfg.registry.url


@pytest.fixture
def subject(prefix: str) -> str:
    return f"{prefix}.things-value"


def test_register_lookup_versions_and_ids(url: str, subject: str) -> None:
    c = SchemaRegistryClient({"url": url})
    s1 = _record([A])
    id1 = c.register_schema(subject, Schema(s1, "AVRO"))
    assert c.register_schema(subject, Schema(s1, "AVRO")) == id1  # idempotent
    id2 = c.register_schema(subject, Schema(_record([A, B_OPT]), "AVRO"))
    assert id2 > id1
    assert c.get_versions(subject) == [1, 2]
    latest = c.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (2, id2)
    # the same schema under another subject keeps its global id
    assert c.register_schema(subject + "2", Schema(s1, "AVRO")) == id1
    assert c.lookup_schema(subject, Schema(s1, "AVRO")).version == 1
    assert json.loads(c.get_schema(id1).schema_str) == json.loads(s1)
    r = requests.get(f"{url}/schemas/ids/{id1}/versions", timeout=5).json()
    assert {"subject": subject, "version": 1} in r and {"subject": subject + "2", "version": 1} in r
    assert requests.get(f"{url}/schemas/types", timeout=5).json() == ["AVRO"]
    assert subject in c.get_subjects()
    # what Flink's Java client sends
    h = {
        "Accept": "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json"
    }
    r2 = requests.get(
        f"{url}/schemas/ids/{id2}?fetchMaxId=false&subject={subject}", headers=h, timeout=5
    )
    assert r2.status_code == 200 and json.loads(r2.json()["schema"]) == json.loads(
        _record([A, B_OPT])
    )
    assert r2.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"


def test_error_codes(url: str, subject: str) -> None:
    def err(method: str, path: str, body: Any = None) -> tuple[int, int]:
        r = requests.request(method, f"{url}{path}", json=body, timeout=5)
        return r.status_code, r.json().get("error_code")

    assert err("GET", f"/subjects/{subject}/versions") == (404, 40401)
    requests.post(f"{url}/subjects/{subject}/versions", json={"schema": _record([A])}, timeout=5)
    assert err("GET", f"/subjects/{subject}/versions/9") == (404, 40402)
    assert err("GET", "/schemas/ids/987654321") == (404, 40403)
    assert err("POST", f"/subjects/{subject}", {"schema": _record([C_REQ])}) == (404, 40403)
    assert err("POST", f"/subjects/{subject}/versions", {"schema": "{not json"}) == (422, 42201)
    bad_default = _record([{"name": "x", "type": "string", "default": None}])
    assert err("POST", f"/subjects/{subject}/versions", {"schema": bad_default}) == (422, 42201)
    assert err("GET", f"/subjects/{subject}/versions/zero") == (422, 42202)
    assert err("PUT", f"/config/{subject}", {"compatibility": "SIDEWAYS"}) == (422, 42203)
    assert err("POST", f"/subjects/{subject}/versions", {"schema": _record([A, C_REQ])}) == (
        409,
        409,
    )
    assert err("GET", f"/config/{subject}") == (404, 40408)


@pytest.mark.parametrize(
    ("level", "new_fields", "ok"),
    [
        ("BACKWARD", [A, B_OPT], True),  # added with default: new reads old
        ("BACKWARD", [A, C_REQ], False),  # added without default
        ("BACKWARD", [], True),  # removed field: new reader ignores it
        ("FORWARD", [], False),  # old reader misses a required field
        ("FORWARD", [A, C_REQ], True),  # old reader ignores the new field
        ("FULL", [A, B_OPT], True),
        ("FULL", [A, C_REQ], False),
        ("NONE", [{"name": "a", "type": "int"}], True),
    ],
)
def test_compatibility_levels(
    url: str, subject: str, level: str, new_fields: list, ok: bool
) -> None:
    c = SchemaRegistryClient({"url": url})
    c.register_schema(subject, Schema(_record([A]), "AVRO"))
    c.set_compatibility(subject, level)
    assert c.get_compatibility(subject) == level
    new = Schema(_record(new_fields), "AVRO")
    assert c.test_compatibility(subject, new) is ok
    if ok:
        c.register_schema(subject, new)
    else:
        with pytest.raises(SchemaRegistryError) as e:
            c.register_schema(subject, new)
        assert e.value.http_status_code == 409


def test_transitive_checks_every_version(url: str, subject: str) -> None:
    c = SchemaRegistryClient({"url": url})
    c.set_compatibility(subject, "NONE")
    c.register_schema(subject, Schema(_record([A]), "AVRO"))  # v1: a
    c.register_schema(subject, Schema(_record([A, {**C_REQ, "default": 0}]), "AVRO"))  # v2: a, c=0
    # registering an earlier version's schema again returns it, no new version (as Confluent)
    c.register_schema(subject, Schema(_record([A]), "AVRO"))
    assert c.get_versions(subject) == [1, 2]
    v4 = Schema(_record([A, C_REQ]), "AVRO")  # c without default: readable from v2 data only
    c.set_compatibility(subject, "BACKWARD")
    assert c.test_compatibility(subject, v4) is True  # vs v2 only
    c.set_compatibility(subject, "BACKWARD_TRANSITIVE")
    r = requests.post(
        f"{url}/compatibility/subjects/{subject}/versions/latest?verbose=true",
        json={"schema": v4.schema_str},
        timeout=5,
    ).json()
    assert r["is_compatible"] is True  # one version named: no transitivity
    with pytest.raises(SchemaRegistryError) as e:
        c.register_schema(subject, v4)  # v1 lacks c and v4 has no default
    assert "'c'" in e.value.error_message and "version 1" in e.value.error_message


def test_global_config_default_and_change(url: str, subject: str) -> None:
    c = SchemaRegistryClient({"url": url})
    assert c.get_compatibility() == "BACKWARD"
    r = requests.get(f"{url}/config/{subject}?defaultToGlobal=true", timeout=5).json()
    assert r == {"compatibilityLevel": "BACKWARD"}
    c.set_compatibility(subject, "FULL_TRANSITIVE")
    assert requests.delete(f"{url}/config/{subject}", timeout=5).json() == {
        "compatibilityLevel": "FULL_TRANSITIVE"
    }
    assert requests.get(f"{url}/config/{subject}", timeout=5).status_code == 404


def test_soft_and_hard_delete(url: str, subject: str) -> None:
    c = SchemaRegistryClient({"url": url})
    id1 = c.register_schema(subject, Schema(_record([A]), "AVRO"))
    c.register_schema(subject, Schema(_record([A, B_OPT]), "AVRO"))
    # hard delete needs a soft delete first
    r = requests.delete(f"{url}/subjects/{subject}/versions/1?permanent=true", timeout=5)
    assert (r.status_code, r.json()["error_code"]) == (404, 40407)
    assert c.delete_version(subject, 1) == 1
    assert c.get_versions(subject) == [2]
    assert requests.get(f"{url}/subjects/{subject}/versions?deleted=true", timeout=5).json() == [
        1,
        2,
    ]
    assert c.get_schema(id1) is not None  # ids stay resolvable for old data
    assert c.delete_version(subject, 1, permanent=True) == 1
    r = requests.delete(f"{url}/subjects/{subject}?permanent=true", timeout=5)
    assert r.json()["error_code"] == 40405
    assert c.delete_subject(subject) == [2]
    assert subject not in c.get_subjects()
    r = requests.delete(f"{url}/subjects/{subject}", timeout=5)
    assert r.json()["error_code"] == 40404
    assert c.delete_subject(subject, permanent=True) == [2]
    assert requests.get(f"{url}/subjects?deleted=true", timeout=5).json().count(subject) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_registry(ensure_stack: Any, prefix: str) -> Iterator[Any]:
    """Start/stop a second registry on its own port and `_schemas` topic (same Kafka)."""
    cfg: Config = ensure_stack("kafka")
    port = _free_port()
    topic = f"_schemas_{prefix}"
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        p = subprocess.Popen(
            [sys.executable, "-m", "flinkpulse.registry", "--port", str(port), "--topic", topic,
             "--bootstrap", cfg.kafka.bootstrap_servers, "--quiet"],
        )  # fmt: skip
        procs.append(p)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/subjects", timeout=1).status_code == 200:
                    return url
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError("registry did not start")

    def stop() -> None:
        p = procs[-1]
        p.terminate()
        p.wait(20)

    yield start, stop, topic, cfg
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    AdminClient(cfg.kafka.client_conf()).delete_topics([topic])


def test_restart_keeps_subjects_ids_config_and_deletes(own_registry: Any) -> None:
    start, stop, topic, cfg = own_registry
    url = start()
    c = SchemaRegistryClient({"url": url})
    v1, v2 = schema_str(schema("PlayerEvent", 1)), schema_str(schema("PlayerEvent", 2))
    ids = {
        "a-value": [
            c.register_schema("a-value", Schema(v1, "AVRO")),
            c.register_schema("a-value", Schema(v2, "AVRO")),
        ],
        "b-value": [c.register_schema("b-value", Schema(_record([A]), "AVRO"))],
        "gone-value": [c.register_schema("gone-value", Schema(_record([A, B_OPT]), "AVRO"))],
    }
    # a schema referencing b-value's type t.Thing, and b-value made read-only
    holder = json.dumps({"type": "record", "name": "Holder", "namespace": "t",
                         "fields": [{"name": "thing", "type": "t.Thing"}]})  # fmt: skip
    ref = SchemaReference("t.Thing", "b-value", 1)
    ids["ref-value"] = [c.register_schema("ref-value", Schema(holder, "AVRO", [ref]))]
    requests.put(f"{url}/mode/b-value", json={"mode": "READONLY"}, timeout=5)
    c.set_compatibility("b-value", "FULL")
    c.delete_subject("gone-value")
    before = {
        s: [(v, c.get_version(s, v).schema_id) for v in c.get_versions(s)] for s in c.get_subjects()
    }
    stop()
    # the state topic is compacted
    admin = AdminClient(cfg.kafka.client_conf())
    res = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    conf = next(iter(res.values())).result()
    assert conf["cleanup.policy"].value == "compact"

    url = start()
    c = SchemaRegistryClient({"url": url})
    after = {
        s: [(v, c.get_version(s, v).schema_id) for v in c.get_versions(s)] for s in c.get_subjects()
    }
    assert (
        after
        == before
        == {
            "a-value": [(1, ids["a-value"][0]), (2, ids["a-value"][1])],
            "b-value": [(1, ids["b-value"][0])],
            "ref-value": [(1, ids["ref-value"][0])],
        }
    )
    assert c.get_referenced_by("b-value", 1) == ids["ref-value"]
    assert [r.subject for r in c.get_schema(ids["ref-value"][0]).references or []] == ["b-value"]
    assert requests.get(f"{url}/mode/b-value", timeout=5).json() == {"mode": "READONLY"}
    assert (
        json.loads(c.get_schema(ids["a-value"][1]).schema_str)["fields"][-1]["name"] == "platform"
    )
    assert c.get_compatibility("b-value") == "FULL"
    assert requests.get(f"{url}/subjects?deleted=true", timeout=5).json() == [
        "a-value",
        "b-value",
        "gone-value",
        "ref-value",
    ]
    # new ids continue after the old ones, never reused
    new_id = c.register_schema("c-value", Schema(_record([A], name="Other"), "AVRO"))
    assert new_id == max(i for v in ids.values() for i in v) + 1
