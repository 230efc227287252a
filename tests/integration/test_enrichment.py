"""Issue 22, enrichment on the real stack: a device moved from one home's kitchen to another
home's bedroom mid-stream is attributed to the kitchen before the move and to the bedroom after
it, exactly, through Kafka, the device_stats job (event-time temporal join with the compacted
reference topic iot.devices) and its result topic. The devices are written the way
`flinkpulse produce iot` writes them (AvroKafkaProducer.send_reference), before the readings.
The security event log is attributed at query time instead: the loader keeps every device
assignment in ClickHouse and the view security_events_enriched joins them as of each event."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Producer

from flinkpulse import topics
from flinkpulse.bench.records import SECURITY_EVENT, Encoder, flink_schema, register
from flinkpulse.clickhouse.migrate import client
from flinkpulse.config import Config
from flinkpulse.loader.core import Loader
from producers.kafka import AvroKafkaProducer
from tests.pipeline_helpers import Reader, Writer, deployment, kill_event, scoped

pytestmark = pytest.mark.integration

MINUTE = 60_000
SENSOR = "iot.sensor-readings"


def _reading(t: int, value: float, device: str = "plug-1") -> dict[str, Any]:
    # the readings keep saying h1's kitchen: the reference table is what attributes them
    return {
        "device_id": device, "home_id": "h1", "room": "kitchen", "sensor_type": "POWER",
        "value": value, "unit": "W", "appliance": "heater", "event_time": t,
    }  # fmt: skip


def _assignment(t: int, home: str, room: str, owner: str) -> tuple[str, dict[str, Any], str, int]:
    rec = {"device_id": "plug-1", "home_id": home, "room": room, "owner": owner, "updated_at": t}
    return "plug-1", rec, topics.DEVICES_TOPIC, t


def test_a_device_moved_mid_stream_is_attributed_before_and_after_the_move(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """plug-1 reads every 10 s for 3 minutes from t0 and moves at t0 + 85 s: 60 s windows give
    6 kitchen readings, then 3 kitchen + 3 bedroom in the window of the move, then 6 bedroom."""
    ensure_stack("kafka", "registry", "flink")
    t0 = (int(time.time() * 1000) // MINUTE - 6) * MINUTE
    prefix = f"enrich{uuid.uuid4().hex[:6]}"
    cfg = base_cfg.derive(jobs={"device_stats": {"window_size_s": 60, "window_slide_s": 60}})

    def write(dep: Config) -> None:
        # the reference first, as `produce iot` writes it, then the readings, all before the
        # job starts: written after it, they had to come within flink.idle_timeout_s (10 s) of
        # its sources' start, or an idle readings source let the versions' watermark drop
        # the kitchen version (docs/event-time.md, idleness)
        ref = AvroKafkaProducer(dep, [topics.DEVICES_TOPIC], create_topics=False)
        moves = [_assignment(t0 - MINUTE, "h1", "kitchen", "ann"),
                 _assignment(t0 + 85_000, "h2", "bedroom", "bob")]  # fmt: skip
        assert ref.send_reference(moves) == 2
        w = Writer(dep)
        for s in range(0, 180, 10):
            w.avro(SENSOR, "plug", _reading(t0 + s * 1000, 100.0 + s))
        w.avro(SENSOR, "closer", _reading(t0 + 5 * MINUTE, 0.0, "closer"))
        w.flush()

    with deployment(cfg, prefix, ["device_stats"], before=write) as dep:
        stats = Reader(dep, "results.device-stats", avro=True)
        last = datetime.fromtimestamp((t0 + 2 * MINUTE) / 1000, UTC)
        stats.until(
            lambda r: any(
                v["device_id"] == "plug-1" and v["window_start"] == last for v in r.values
            ),
            240,
            "the last window of plug-1",
        )
        stats.settle(5)
        got = sorted(
            (int(v["window_start"].timestamp() * 1000) - t0, v["home_id"], v["room"], v["owner"],
             int(v["assigned_at"].timestamp() * 1000) - t0, v["samples"], v["last_value"])
            for v in stats.values
            if v["device_id"] == "plug-1"
        )  # fmt: skip
        stats.close()
    assert got == [
        (0, "h1", "kitchen", "ann", -MINUTE, 6, 150.0),
        (MINUTE, "h1", "kitchen", "ann", -MINUTE, 3, 180.0),
        (MINUTE, "h2", "bedroom", "bob", 85_000, 3, 210.0),
        (2 * MINUTE, "h2", "bedroom", "bob", 85_000, 6, 270.0),
    ]


def test_a_promoted_player_shows_the_new_tier_in_windows_ending_after_it(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """ana kills every 10 s for 3 minutes and is promoted from gold to platinum at t0 + 85 s:
    the running player_stats job's 60 s windows say gold, gold... until the one ending after the
    promotion, then platinum; every window has its 6 kills."""
    ensure_stack("kafka", "registry", "flink")
    t0 = (int(time.time() * 1000) // MINUTE - 6) * MINUTE
    prefix = f"enrichp{uuid.uuid4().hex[:6]}"
    cfg = base_cfg.derive(jobs={"player_stats": {"window_size_s": 60, "window_slide_s": 60}})

    def write(dep: Config) -> None:
        # the profiles, then the kills, before the job starts (as in the test above)
        ref = AvroKafkaProducer(dep, [topics.PLAYERS_TOPIC], create_topics=False)
        profiles = [
            ("ana", {"player_id": "ana", "region": "eu-west", "skill_tier": t, "updated_at": ts},
             topics.PLAYERS_TOPIC, ts)
            for t, ts in (("gold", t0 - MINUTE), ("platinum", t0 + 85_000))
        ]  # fmt: skip
        assert ref.send_reference(profiles) == 2
        w = Writer(dep)
        for s in range(0, 180, 10):
            w.avro("gaming.player-events", "ana", kill_event(s, t0 + s * 1000, "ana"))
        w.avro("gaming.player-events", "closer", kill_event(999, t0 + 5 * MINUTE, "closer"))
        w.flush()

    with deployment(cfg, prefix, ["player_stats"], before=write) as dep:
        stats = Reader(dep, "results.player-stats", avro=True)
        last = datetime.fromtimestamp((t0 + 2 * MINUTE) / 1000, UTC)
        stats.until(
            lambda r: any(v["player_id"] == "ana" and v["window_start"] == last for v in r.values),
            240,
            "the last window of ana",
        )
        stats.settle(5)
        got = sorted(
            (int(v["window_start"].timestamp() * 1000) - t0, v["region"], v["skill_tier"],
             v["kills"])
            for v in stats.values
            if v["player_id"] == "ana"
        )  # fmt: skip
        stats.close()
    assert got == [
        (0, "eu-west", "gold", 6),
        (MINUTE, "eu-west", "platinum", 6),
        (2 * MINUTE, "eu-west", "platinum", 6),
    ]


def test_the_security_log_is_attributed_to_the_room_in_force_at_each_event(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """door-1 is installed in h1's hall (owner ann) at t0 and moved to h2's garage (owner bob)
    at t0 + 60 s. Through the loader (iot.devices -> device_assignments, the security events'
    result topic -> security_events), security_events_enriched attributes each event to the
    assignment in force at its event time: at t0 and up to the move the hall, from the move on
    the garage (both bounds inclusive of the assignment's own time), before t0 and for a device
    never assigned nothing. The move is loaded after the events, and every version is then sent
    again: the view still has one row per event."""
    ensure_stack("kafka", "registry", "clickhouse")
    prefix = f"enrichq{uuid.uuid4().hex[:6]}"
    cfg = scoped(base_cfg, prefix).derive(kafka={"partitions": 2})
    t0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
    hall = ("door-1", {"device_id": "door-1", "home_id": "h1", "room": "hall", "owner": "ann",
                       "updated_at": t0}, topics.DEVICES_TOPIC, t0)  # fmt: skip
    garage = ("door-1", {"device_id": "door-1", "home_id": "h2", "room": "garage",
                         "owner": "bob", "updated_at": t0 + MINUTE}, topics.DEVICES_TOPIC,
              t0 + MINUTE)  # fmt: skip
    # (event id, device, event time); every event says h1's hall itself, as a stale device would
    events = [("e0", "door-1", t0 - 1), ("e1", "door-1", t0), ("e2", "door-1", t0 + MINUTE - 1),
              ("e3", "door-1", t0 + MINUTE), ("e4", "door-1", t0 + 2 * MINUTE),
              ("e5", "door-9", t0 + 30_000)]  # fmt: skip
    loader_topics = [topics.DEVICES_TOPIC, "results.security-events"]
    ch = None
    try:
        topics.ensure_topics(cfg, loader_topics)
        ref = AvroKafkaProducer(cfg, [topics.DEVICES_TOPIC], create_topics=False)
        assert ref.send_reference([hall]) == 1
        sec = cfg.kafka.topic("results.security-events")
        enc = Encoder(register(cfg.registry.url, f"{sec}-value", SECURITY_EVENT), SECURITY_EVENT)
        p = Producer(cfg.kafka.client_conf())
        for event_id, device, t in events:
            rec = {"event_id": event_id, "home_id": "h1", "device_id": device, "room": "hall",
                   "kind": "DOOR_OPEN", "event_time": t}  # fmt: skip
            p.produce(sec, key=b"h1", value=enc(rec))
        assert p.flush(30) == 0
        assert Loader(cfg, topics=loader_topics).run(once=True).rows == 1 + len(events)

        ch = client(cfg)
        view = f"`{prefix}`.security_events_enriched"
        query = (
            f"SELECT event_id, home_id, room, assigned_home_id, assigned_room, owner, "
            f"toUnixTimestamp64Milli(assigned_at) FROM {view} ORDER BY event_id"
        )
        before_move = ch.query(query).result_rows
        assert [r[3:6] for r in before_move] == [
            ("", "", ""), ("h1", "hall", "ann"), ("h1", "hall", "ann"), ("h1", "hall", "ann"),
            ("h1", "hall", "ann"), ("", "", ""),
        ]  # fmt: skip

        # the move arrives after the events were loaded; then both versions once more
        assert ref.send_reference([garage, hall, garage]) == 3
        assert Loader(cfg, topics=loader_topics).run(once=True).rows == 3
        assert ch.query(query).result_rows == [
            ("e0", "h1", "hall", "", "", "", 0),
            ("e1", "h1", "hall", "h1", "hall", "ann", t0),
            ("e2", "h1", "hall", "h1", "hall", "ann", t0),
            ("e3", "h1", "hall", "h2", "garage", "bob", t0 + MINUTE),
            ("e4", "h1", "hall", "h2", "garage", "bob", t0 + MINUTE),
            ("e5", "h1", "hall", "", "", "", 0),
        ]
        # what the Security dashboard's chart counts, read as Superset reads: the reader user
        ro = client(cfg, "reader")
        assert ro.query(
            f"SELECT owner, assigned_room, count() FROM {view} GROUP BY ALL ORDER BY ALL"
        ).result_rows == [("", "", 2), ("ann", "hall", 2), ("bob", "garage", 2)]
        ro.close()
        assert ch.query(
            f"SELECT device_id, room, toUnixTimestamp64Milli(updated_at), count() "
            f"FROM `{prefix}`.device_assignments FINAL GROUP BY ALL ORDER BY ALL"
        ).result_rows == [("door-1", "garage", t0 + MINUTE, 1), ("door-1", "hall", t0, 1)]
    finally:
        ch = ch or client(cfg)
        ch.command(f"DROP DATABASE IF EXISTS `{prefix}`")
        ch.close()


#: results.client-activity as the web_traffic job registers it (the loader reads what it needs)
_TS = {"type": "long", "logicalType": "timestamp-millis"}
CLIENT_ACTIVITY = flink_schema(
    [("window_start", _TS, False), ("window_end", _TS, False), ("client_ip", "string", False),
     ("country", "string", True), ("browser", "string", True), ("device", "string", True),
     ("requests", "long", False), ("errors", "long", False), ("bytes", "long", False)]
)  # fmt: skip


def test_client_activity_gets_the_network_of_its_address_from_the_bundled_ranges(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """client_activity rows loaded from results.client-activity; client_activity_asn names the
    AS of each client from the ranges of 014_ip_asn.sql: exact at a range's first and last
    address, nothing for an address between two ranges of one /8, outside every range, IPv6 or
    not an address. The bundled ranges are CIDRs of /8 or longer that do not overlap."""
    ensure_stack("kafka", "registry", "clickhouse")
    prefix = f"enricha{uuid.uuid4().hex[:6]}"
    cfg = scoped(base_cfg, prefix).derive(kafka={"partitions": 2})
    t0 = 1_767_225_600_000
    clients = ["8.8.8.0", "8.8.8.255", "8.8.5.1", "17.255.255.255", "203.0.113.9",
               "1.1.2.0", "100.64.0.1", "2001:db8::1", "not-an-ip"]  # fmt: skip
    ch = None
    try:
        topic = cfg.kafka.topic("results.client-activity")
        topics.ensure_topics(cfg, ["results.client-activity"])
        enc = Encoder(
            register(cfg.registry.url, f"{topic}-value", CLIENT_ACTIVITY), CLIENT_ACTIVITY
        )
        p = Producer(cfg.kafka.client_conf())
        for i, ip in enumerate(clients):
            rec = {"window_start": t0, "window_end": t0 + MINUTE, "client_ip": ip, "country": "ZZ",
                   "browser": None, "device": None, "requests": i + 1, "errors": 0, "bytes": 10}  # fmt: skip
            p.produce(topic, key=ip.encode(), value=enc(rec))
        assert p.flush(30) == 0
        assert Loader(cfg, topics=["results.client-activity"]).run(once=True).rows == len(clients)

        ch = client(cfg, "reader")
        got = ch.query(
            f"SELECT client_ip, requests, asn, as_org FROM `{prefix}`.client_activity_asn "
            "ORDER BY requests"
        ).result_rows
        assert got == [
            ("8.8.8.0", 1, 15169, "Google LLC"),
            ("8.8.8.255", 2, 15169, "Google LLC"),
            ("8.8.5.1", 3, 0, ""),  # between 8.8.4.0/24 and 8.8.8.0/24
            ("17.255.255.255", 4, 714, "Apple Inc."),
            ("203.0.113.9", 5, 64498, "Documentation (TEST-NET-3)"),
            ("1.1.2.0", 6, 0, ""),  # just past 1.1.1.0/24
            ("100.64.0.1", 7, 0, ""),
            ("2001:db8::1", 8, 0, ""),
            ("not-an-ip", 9, 0, ""),
        ]
        # the data's rules: /8 or longer (one first octet each) and no two ranges overlap
        assert ch.query(
            f"SELECT count(), countIf(toUInt8(splitByChar('/', cidr)[2]) >= 8) "
            f"FROM `{prefix}`.ip_asn FINAL"
        ).result_rows == [(11, 11)]
        assert (
            ch.query(
                f"SELECT a.cidr, b.cidr FROM `{prefix}`.ip_asn AS a FINAL, `{prefix}`.ip_asn AS b "
                f"FINAL WHERE a.cidr < b.cidr AND a.range_start <= b.range_end "
                f"AND b.range_start <= a.range_end"
            ).result_rows
            == []
        )
    finally:
        if ch is not None:
            ch.close()
        admin = client(cfg)
        admin.command(f"DROP DATABASE IF EXISTS `{prefix}`")
        admin.close()
