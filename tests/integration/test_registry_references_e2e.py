"""Schema references end to end on the running stack (issue 19): a producer writes security
events whose `kind` enum is a type registered under its own subject (confluent-kafka's
AvroSerializer with a SchemaReference), the security_alerts job decodes them (writer schema with
the reference resolved, read with the newest .avsc) and passes them on, and the loader loads
them into ClickHouse, together with an alert whose `severity` enum is a reference too."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from flinkpulse.bench.records import ALERT
from flinkpulse.clickhouse.migrate import client
from flinkpulse.config import Config
from flinkpulse.loader.core import Loader
from flinkpulse.schemas import latest_schema
from tests.pipeline_helpers import Reader, deployment

pytestmark = pytest.mark.integration

N = 6
TIMEOUT = 180


def _split_enum(schema: dict[str, Any], field: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schema with `field`'s enum replaced by its full name, that enum): a shared type."""
    out = copy.deepcopy(schema)
    for f in out["fields"]:
        if f["name"] == field:
            t = f["type"]
            union = isinstance(t, list)
            enum = next(x for x in t if isinstance(x, dict)) if union else t
            name = f"{enum['namespace']}.{enum['name']}"
            f["type"] = [x if not isinstance(x, dict) else name for x in t] if union else name
            return out, enum
    raise KeyError(field)


def _serializer(
    sr: SchemaRegistryClient, cfg: Config, schema: dict[str, Any], field: str
) -> AvroSerializer:
    """Register the enum of `field` under its own subject; a serializer whose schema refers
    to it (the serializer registers that schema under <topic>-value itself)."""
    host, enum = _split_enum(schema, field)
    name = f"{enum['namespace']}.{enum['name']}"
    subject = f"{cfg.kafka.topic_prefix}{name}"
    version = sr.register_schema_full_response(subject, Schema(json.dumps(enum), "AVRO")).version
    ref = SchemaReference(name, subject, version)
    return AvroSerializer(sr, Schema(json.dumps(host), "AVRO", [ref]))


def test_referencing_producer_job_and_loader(
    ensure_stack: Callable[..., Config], base_cfg: Config, prefix: str
) -> None:
    ensure_stack("kafka", "registry", "flink", "clickhouse")
    sr = SchemaRegistryClient({"url": base_cfg.registry.url})
    with deployment(base_cfg, prefix, ["security_alerts"]) as cfg:
        cfg = cfg.derive(clickhouse={"database": prefix})
        # the alert's severity enum: a reference too (the alerts topic is loaded as written)
        alert_schema = copy.deepcopy(ALERT)
        for f in alert_schema["fields"]:
            if f["name"] == "severity":
                sev = {"type": "enum", "name": "Severity", "namespace": "t.alerts"}
                f["type"] = ["null", {**sev, "symbols": ["INFO", "WARNING", "CRITICAL"]}]
        sec = _serializer(sr, cfg, latest_schema("flinkpulse.iot.SecurityEvent"), "kind")
        alert = _serializer(sr, cfg, alert_schema, "severity")
        topic = cfg.kafka.topic("iot.security-events")
        t0 = int(time.time() * 1000) - 15 * 60_000
        kinds = ["ARM_AWAY", "MOTION", "DOOR_OPEN", "DOOR_CLOSE", "DISARM", "MOTION"]
        events: list[dict[str, Any]] = [
            {"event_id": f"ref-{i}", "home_id": "home-r", "device_id": f"dev-{i}",
             "room": "hall", "kind": kinds[i], "event_time": t0 + i * 1000}
            for i in range(N)
        ]  # fmt: skip
        p = Producer(cfg.kafka.client_conf())
        for ev in events:
            value = sec(ev, SerializationContext(topic, MessageField.VALUE))
            p.produce(topic, key=b"home-r", value=value, timestamp=ev["event_time"])
        a_topic = cfg.kafka.topic("alerts")
        a = {
            "alert_id": "ref-alert", "rule": "door_open_while_armed", "severity": "CRITICAL",
            "entity_type": "home", "entity_id": "home-r", "summary": "refs", "event_count": 1,
            "first_event_time": t0, "last_event_time": t0, "detected_at": t0 + 1,
            "attributes": {"room": "hall"},
        }  # fmt: skip
        p.produce(
            a_topic,
            key=b"home-r",
            value=alert(a, SerializationContext(a_topic, MessageField.VALUE)),
        )
        assert p.flush(30) == 0
        registered = sr.get_latest_version(f"{topic}-value").schema
        assert [r.name for r in registered.references or []] == ["flinkpulse.iot.SecurityEventKind"]

        # the job decoded every record (none dead-lettered) and passed it on
        out = Reader(cfg, "results.security-events", avro=True)
        out.until(lambda r: len(r.values) >= N, TIMEOUT, f"{N} security events")
        assert sorted((v["event_id"], v["kind"]) for v in out.values) == [
            (e["event_id"], e["kind"]) for e in events
        ]
        out.close()
        dlq = Reader(cfg, "dlq.iot.security-events")
        assert dlq.poll(2.0) == []
        dlq.close()

        # the loader decodes the referencing alert and the job's results into ClickHouse
        stats = Loader(cfg).run(once=True)
        assert stats.dead_letters == 0
        ch = client(cfg)
        try:
            got = ch.query(f"SELECT alert_id, severity FROM `{prefix}`.alerts").result_rows
            assert got == [("ref-alert", "CRITICAL")]
            rows = ch.query(
                f"SELECT event_id, kind FROM `{prefix}`.security_events ORDER BY event_id"
            ).result_rows
            assert rows == [(e["event_id"], e["kind"]) for e in events]
        finally:
            ch.command(f"DROP DATABASE IF EXISTS `{prefix}`")
            ch.close()
