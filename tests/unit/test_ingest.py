"""Issue 21: the ingest tier's pure parts — JSON -> Avro record, topic routing, batching, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from flinkpulse.config import load_config
from flinkpulse.ingest.core import Rejected, Target, record_from_json, target_of
from flinkpulse.ingest.http import RateLimiter, split_records
from flinkpulse.ingest.mqtt import derived_event_id, device_topic, route
from flinkpulse.schemas import latest_schema

pytestmark = pytest.mark.unit

READING = latest_schema("flinkpulse.iot.SensorReading")
SECURITY = latest_schema("flinkpulse.iot.SecurityEvent")


def test_json_record_types_defaults_and_times() -> None:
    doc = {"device_id": "d", "home_id": "h", "room": "r", "sensor_type": "POWER", "value": 3,
           "unit": "W", "event_time": "2026-11-30T12:00:00.250+01:00"}  # fmt: skip
    assert record_from_json(doc, READING) == {
        **doc,
        "value": 3.0,
        "appliance": None,  # the schema's default
        "event_time": 1796036400250,
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"value": "3"}, "field 'value': '3' is not double"),
        ({"value": True}, "field 'value': True is not double"),
        ({"sensor_type": "SMELL"}, "field 'sensor_type': 'SMELL' is not one of"),
        ({"appliance": 7}, "field 'appliance': 7 is not string"),
        ({"event_time": "2026-11-30T12:00:00"}, "is not epoch milliseconds or ISO-8601 with a"),
        ({"event_time": 1.5}, "field 'event_time': 1.5 is not long"),
        ({"colour": "red"}, "SensorReading: unknown field(s) 'colour'"),
        ({"unit": None}, "field 'unit': None is not string"),
    ],
)
def test_json_record_rejections_name_the_field(change: dict, reason: str) -> None:
    doc = {"device_id": "d", "home_id": "h", "room": "r", "sensor_type": "POWER", "value": 3,
           "unit": "W", "event_time": 1}  # fmt: skip
    with pytest.raises(Rejected) as e:
        record_from_json({**doc, **change}, READING)
    assert reason in str(e.value)


def test_missing_field_and_not_an_object() -> None:
    with pytest.raises(Rejected, match="SecurityEvent: missing field 'kind'"):
        record_from_json({"event_id": "e", "home_id": "h", "device_id": "d", "room": "r",
                          "event_time": 1}, SECURITY)  # fmt: skip
    with pytest.raises(Rejected, match="expected a JSON object, got list"):
        record_from_json([1], SECURITY)


def test_topics_accepted_by_the_endpoint() -> None:
    cfg = load_config(env={})
    assert target_of(cfg, "iot.security-events") == Target("", "iot.security-events")
    assert target_of(cfg, "site-2.web.access-logs") == Target("site-2.", "web.access-logs")
    assert target_of(cfg, "site-2.web.access-logs").dlq == "site-2.dlq.web.access-logs"  # type: ignore[union-attr]
    for refused in ("alerts", "a.b.iot.security-events", "dlq.iot.security-events", ".iot.x"):
        assert target_of(cfg, refused) is None, refused
    pre = load_config(env={"FLINKPULSE_KAFKA__TOPIC_PREFIX": "prod."})
    assert target_of(pre, "iot.sensor-readings") is None
    assert target_of(pre, "prod.eu.iot.sensor-readings") == Target(
        "prod.eu.", "iot.sensor-readings"
    )


def test_device_topics_route_both_ways() -> None:
    cfg = load_config(env={})
    reading = {"home_id": "h1", "room": "kitchen", "device_id": "p-1", "sensor_type": "POWER"}
    topic = device_topic("iot.sensor-readings", reading, "ns")
    assert topic == "ns/homes/h1/kitchen/p-1/power"
    assert route(cfg, topic) == (Target("ns.", "iot.sensor-readings"), reading)
    sec = {"home_id": "h1", "room": "hall", "device_id": "door"}
    assert route(cfg, device_topic("iot.security-events", sec)) == (
        Target("", "iot.security-events"),
        sec,
    )
    for other in ("homes/h1/kitchen/p-1", "x/y/homes/h/r/d/power", "homes//r/d/power",
                  "dlq/homes/h/r/d/power"):  # fmt: skip
        assert route(cfg, other) is None, other
    assert derived_event_id("t", b"p") == derived_event_id("t", b"p") != derived_event_id("t", b"q")


def test_body_splitting() -> None:
    assert split_records(b'{"a": 1}') == [b'{"a": 1}']
    assert split_records(b'{\n  "a": 1\n}\n') == [b'{\n  "a": 1\n}']
    assert split_records(b'{"a": 1}\n\n{"a": 2}\nnot json\n') == [
        b'{"a": 1}',
        b'{"a": 2}',
        b"not json",
    ]
    assert split_records(b" \n") == []


def test_rate_limiter_bursts_then_refuses_per_client() -> None:
    lim = RateLimiter(5.0)
    assert [lim.allow("a") for _ in range(12)] == [True] * 10 + [False] * 2
    assert lim.allow("b")


def test_the_bridges_warn_of_a_step_of_the_wall_clock_that_stamps_their_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bridges stamp each record's Kafka timestamp with their host's wall clock: a step of
    it (a VM resumed) makes device records late, so the log and the status say so. No broker
    is needed: the producer only connects when it sends."""
    import time

    from flinkpulse.clock import ClockSteps
    from flinkpulse.ingest.core import Ingestor

    jump = [0.0]
    clock = ClockSteps(wall=lambda: time.time() + jump[0])
    # it never sends: quiet, so that it does not log connection errors once the stack stops
    ing = Ingestor(load_config(), {"log_level": 0}, clock=clock)
    try:
        time.sleep(0.3)
        assert ing.counts["clock_steps"] == 0
        with caplog.at_level("WARNING", logger="flinkpulse.ingest.core"):
            jump[0] = 22.0
            deadline = time.monotonic() + 5
            while not ing.counts["clock_steps"] and time.monotonic() < deadline:
                time.sleep(0.05)
        assert ing.counts["clock_steps"] == 1
        assert [round(s.size) for s in clock.steps] == [22]
        assert "the wall clock stepped +22.0 s at" in caplog.text
    finally:
        ing.close(timeout=1)


def test_stack_status_says_when_a_bridge_saw_its_clock_step(tmp_path: Path) -> None:
    """`stack status` of the bridges: the steps their status counts, and nothing without one."""
    import json
    from dataclasses import replace

    from flinkpulse.ingest.component import HttpIngest, Mqtt

    base = load_config()
    cfg = replace(base, stack=replace(base.stack, state_dir=str(tmp_path)))
    for comp, doc in [
        (Mqtt(cfg), {"state": "running", "received": 5, "records": 5}),
        (HttpIngest(cfg), {"state": "running", "records": 5}),
    ]:
        comp.status_file.parent.mkdir(parents=True, exist_ok=True)
        comp.status_file.write_text(json.dumps({**doc, "clock_steps": 0}))
        assert "clock" not in comp.extra_status()
        comp.status_file.write_text(json.dumps({**doc, "clock_steps": 2}))
        assert comp.extra_status().endswith("; the wall clock stepped 2 time(s): see its log")


def test_a_record_kafka_leaves_unacknowledged_is_reported_with_its_topic(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its client is not answered meanwhile, so the log says where it waits. Nothing listens
    on port 1, so Kafka never acknowledges here."""
    import time

    from flinkpulse.ingest.core import Delivered, Ingestor

    nowhere = {"bootstrap.servers": "127.0.0.1:1", "log_level": 0}
    ing = Ingestor(load_config(), nowhere, unacked_warn_s=0.5)
    try:
        got: list[Delivered] = []
        with caplog.at_level("WARNING", logger="flinkpulse.ingest.core"):
            ing._produce("site-1.iot.sensor-readings", b"v", b"k", 0, None, got.append, None)
            deadline = time.monotonic() + 5
            while "not acknowledged" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
        assert got == []
        assert (
            "1 record(s) not acknowledged by Kafka for 0.5 s or more" in caplog.text
            and "to site-1.iot.sensor-readings" in caplog.text
        ), caplog.text
    finally:
        ing.close(timeout=0.5)


def test_topics_kafka_does_not_serve_in_time_are_a_transient_refusal() -> None:
    """ensure_topics() returns once the broker serves the topics it created; if it does not in
    time, the bridge keeps the message and tries again, the endpoint answers 503: never a dead
    letter. Nothing listens on port 1, so the topic is never served here."""
    import time

    from confluent_kafka.admin import AdminClient

    from flinkpulse.ingest.core import TRANSIENT
    from flinkpulse.topics import TopicsNotServed, await_served

    admin = AdminClient({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
    t0 = time.monotonic()
    with pytest.raises(TopicsNotServed) as e:
        await_served(admin, ["site-1.iot.security-events"], "127.0.0.1:1", timeout=1.0)
    assert 1.0 <= time.monotonic() - t0 < 5.0
    assert str(e.value) == (
        "Kafka at 127.0.0.1:1 created site-1.iot.security-events but does not serve it 1s later"
    )
    assert isinstance(e.value, TRANSIENT)
