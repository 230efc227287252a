"""Issue 21: device ingestion over MQTT (Mosquitto + the bridge) and HTTP, on the real stack.

Each test publishes under its own namespace (= topic prefix), so the stack's one bridge and one
endpoint serve every test without mixing data.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import paho.mqtt.client as paho
import pytest
import requests

from flinkpulse import stack
from flinkpulse.config import Config
from flinkpulse.ingest import http_token, mqtt_credentials
from flinkpulse.ingest.mqtt import derived_event_id
from flinkpulse.schemas import latest_schema
from flinkpulse.topics import SOURCE_KEYS, dlq_topic, ensure_topics
from tests.pipeline_helpers import Reader

pytestmark = pytest.mark.integration

SEC, SENSOR = "iot.security-events", "iot.sensor-readings"


@pytest.fixture
def ingest_cfg(ensure_stack: Any, cfg: Config) -> Config:
    ensure_stack("kafka", "registry", "mqtt", "ingest")
    ensure_topics(cfg, [SEC, SENSOR, dlq_topic(SEC), dlq_topic(SENSOR)])
    return cfg


def _client(cfg: Config, client_id: str, credentials: bool = True) -> paho.Client:
    """A plain paho-mqtt client (MQTT 3.1.1), connected, its network loop running."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
    if credentials:
        c.username_pw_set(*mqtt_credentials(cfg))
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect(cfg.stack.host, cfg.stack.mqtt_port)
    c.loop_start()
    assert connected.wait(10)
    return c


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_mqtt_to_kafka_avro_exact_and_dead_letters(ingest_cfg: Config, prefix: str) -> None:
    cfg = ingest_cfg
    now = int(time.time() * 1000)
    t1, t2 = now - 2000, now - 1000
    ns = prefix
    door = f"{ns}/homes/h-7/hallway/door-1/security"
    temp = f"{ns}/homes/h-7/kitchen/th-2/temperature"
    power = f"{ns}/homes/h-7/kitchen/plug-3/power"
    good: list[tuple[str, bytes]] = [
        (door, json.dumps({"kind": "ARM_AWAY", "event_time": t1, "event_id": "e-1"}).encode()),
        (door, json.dumps({"kind": "DOOR_OPEN", "event_time": t2}).encode()),  # id derived
        (temp, json.dumps({"value": 21, "unit": "C", "event_time": t1}).encode()),
        (
            power,
            json.dumps(
                {
                    "value": 1250.5,
                    "unit": "W",
                    "appliance": "oven",
                    "home_id": "h-7",
                    "event_time": _dt(t2).isoformat(),
                }
            ).encode(),
        ),  # fmt: skip
    ]
    bad: list[tuple[str, bytes, str, str]] = [
        (temp, b"{not json", SENSOR, "not JSON: "),
        (door, json.dumps({"kind": "BREAK_IN", "event_time": t1}).encode(), SEC,
         "field 'kind': 'BREAK_IN' is not one of ['DOOR_OPEN', 'DOOR_CLOSE', 'MOTION', "
         "'ARM_AWAY', 'DISARM']"),
        (temp, json.dumps({"value": 1, "unit": "C", "event_time": t1, "home_id": "h-8"}).encode(),
         SENSOR, "home_id 'h-8' in the payload contradicts 'h-7' of the topic"),
        (temp, json.dumps({"value": 1, "event_time": t1}).encode(), SENSOR,
         "SensorReading: missing field 'unit'"),
        (f"{ns}/homes/h-7/kitchen/x-1/smell", json.dumps({"value": 1, "unit": "?",
         "event_time": t1}).encode(), SENSOR, "field 'sensor_type': 'SMELL' is not one of"),
    ]  # fmt: skip
    pub = _client(cfg, f"{prefix}-devices")
    before = int(time.time() * 1000)
    try:
        infos = [pub.publish(t, p, qos=1) for t, p in good]
        infos += [pub.publish(t, p, qos=1) for t, p, _, _ in bad]
        for info in infos:
            info.wait_for_publish(10)
            assert info.rc == paho.MQTT_ERR_SUCCESS
    finally:
        pub.loop_stop()
        pub.disconnect()

    sec = Reader(cfg, SEC, avro=True).until(lambda r: len(r.msgs) >= 2, 60, "2 security events")
    sen = Reader(cfg, SENSOR, avro=True).until(lambda r: len(r.msgs) >= 2, 60, "2 readings")
    sec.settle(2)
    sen.settle(1)
    after = int(time.time() * 1000)
    # decoded by confluent-kafka's AvroDeserializer, value for value
    assert sec.values == [
        {"event_id": "e-1", "home_id": "h-7", "device_id": "door-1", "room": "hallway",
         "kind": "ARM_AWAY", "event_time": _dt(t1)},
        {"event_id": derived_event_id(door, good[1][1]), "home_id": "h-7", "device_id": "door-1",
         "room": "hallway", "kind": "DOOR_OPEN", "event_time": _dt(t2)},
    ]  # fmt: skip
    assert sorted(sen.values, key=lambda v: v["device_id"]) == [
        {"device_id": "plug-3", "home_id": "h-7", "room": "kitchen", "sensor_type": "POWER",
         "value": 1250.5, "unit": "W", "appliance": "oven", "event_time": _dt(t2)},
        {"device_id": "th-2", "home_id": "h-7", "room": "kitchen", "sensor_type": "TEMPERATURE",
         "value": 21.0, "unit": "C", "appliance": None, "event_time": _dt(t1)},
    ]  # fmt: skip
    # keys as the producers write them; Kafka timestamp = ingest time (CreateTime, not event time)
    assert [m.key() for m in sec.msgs] == [b"h-7", b"h-7"]
    assert sorted(m.key() for m in sen.msgs) == [b"plug-3", b"th-2"]
    for m in sec.msgs + sen.msgs:
        kind, ts = m.timestamp()
        assert kind == 1 and before <= ts <= after, (kind, ts, before, after)

    got = []
    for logical in (SEC, SENSOR):
        n = sum(1 for b in bad if b[2] == logical)
        r = Reader(cfg, dlq_topic(logical)).until(lambda r, n=n: len(r.msgs) >= n, 30, "DLQ")
        got += [(m.value(), logical, r.headers(m)) for m in r.settle(1).msgs]
    got.sort(key=lambda g: (g[0], g[1]))
    want = sorted((payload, logical, topic, reason) for topic, payload, logical, reason in bad)
    assert [g[:2] for g in got] == [w[:2] for w in want]  # the raw bytes, in the topic's DLQ
    for (_, logical, headers), (_, _, topic, reason) in zip(got, want, strict=True):
        assert headers["mqtt.topic"] == topic
        assert headers["source.topic"] == cfg.kafka.topic(logical)
        assert reason in headers["error"], headers


def test_anonymous_mqtt_refused_and_services_bind_loopback(ingest_cfg: Config) -> None:
    cfg = ingest_cfg
    refused: list[Any] = []
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="anon", protocol=paho.MQTTv311)
    c.on_connect = lambda _c, _u, _f, rc, _p: refused.append(rc)
    c.connect(cfg.stack.host, cfg.stack.mqtt_port)
    c.loop_start()
    deadline = time.monotonic() + 10
    while not refused and time.monotonic() < deadline:
        time.sleep(0.1)
    c.loop_stop()
    assert refused and refused[0].is_failure and "authorized" in str(refused[0]).lower()

    # both listen on 127.0.0.1 only (the local address of their listening sockets)
    listening = {
        int(cols[1].rsplit(":", 1)[1], 16): cols[1].split(":")[0]
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for cols in (ln.split() for ln in Path(table).read_text().splitlines()[1:])
        if cols[3] == "0A"
    }
    assert listening[cfg.stack.mqtt_port] == "0100007F"
    assert listening[cfg.stack.ingest_port] == "0100007F"

    # a non-loopback address without credentials is refused, with one line
    env = {**os.environ, "FLINKPULSE_INGEST__HTTP_AUTH": "false"}
    res = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "ingest", "http", "--host", "0.0.0.0", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "flinkpulse: error: ingest http on 0.0.0.0 would accept records from the network "
        "without credentials: keep 127.0.0.1, or leave ingest.http_auth on (bearer token)"
    ]
    # a bridge with a wrong password: the broker refuses it, one line, exit 1
    env = {**os.environ, "FLINKPULSE_INGEST__MQTT_USERNAME": "flinkpulse",
           "FLINKPULSE_INGEST__MQTT_PASSWORD": "wrong"}  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "--set", "ingest.mqtt_client_id=intruder",
         "ingest", "mqtt", "--seconds", "20"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"flinkpulse: error: the MQTT broker at {cfg.ingest.mqtt_broker} refused the bridge's "
        "credentials"
    )
    env = {**os.environ, "FLINKPULSE_STACK__HOST": "0.0.0.0"}
    res = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "stack", "up", "mqtt", "ingest"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2 and "without credentials" in res.stderr, res.stderr


def test_http_offsets_dead_letters_and_refusals(ingest_cfg: Config, prefix: str) -> None:
    cfg = ingest_cfg
    base = f"http://{cfg.stack.host}:{cfg.stack.ingest_port}"
    url = f"{base}/v1/topics/{cfg.kafka.topic(SEC)}/records"
    auth = {"Authorization": f"Bearer {http_token(cfg)}"}
    now = int(time.time() * 1000)
    rec = [
        {"event_id": f"e{i}", "home_id": f"h{i % 2}", "device_id": "d1", "room": "hall",
         "kind": "MOTION", "event_time": now - i}
        for i in range(3)
    ]  # fmt: skip
    bad_line = json.dumps({**rec[0], "kind": "SMOKE"}).encode()
    body = b"\n".join(
        [json.dumps(rec[0]).encode(), bad_line, *(json.dumps(r).encode() for r in rec[1:])]
    )
    s = requests.Session()
    r = s.post(url, data=body, headers={**auth, "Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["topic"], doc["accepted"], doc["rejected"]) == (cfg.kafka.topic(SEC), 3, 1)
    res = doc["results"]
    assert [x["error_code"] for x in res] == [200, 422, 200, 200]
    assert res[1]["message"].endswith("field 'kind': 'SMOKE' is not one of ['DOOR_OPEN', "
                                      "'DOOR_CLOSE', 'MOTION', 'ARM_AWAY', 'DISARM']")  # fmt: skip
    assert res[1]["dead_letter"]["topic"] == cfg.kafka.topic(dlq_topic(SEC))
    # one record, pretty-printed over several lines
    r1 = s.post(url, data=json.dumps(rec[2], indent=2), headers=auth)
    assert r1.status_code == 200 and r1.json()["accepted"] == 1, r1.text
    res.append(r1.json()["results"][0])

    # every answered offset holds exactly that record
    reader = Reader(cfg, SEC, avro=True).until(lambda r: len(r.msgs) >= 4, 30, "4 records")
    at = {(m.partition(), m.offset()): v for m, v in zip(reader.msgs, reader.values, strict=True)}
    sent = [rec[0], rec[1], rec[2], rec[2]]
    for x, want in zip([res[0], res[2], res[3], res[4]], sent, strict=True):
        got = at[(x["partition_id"], x["offset"])]
        assert got == {**want, "event_time": _dt(want["event_time"])}
    dlq = Reader(cfg, dlq_topic(SEC)).until(lambda r: len(r.msgs) >= 1, 30, "the dead letter")
    (m,) = dlq.settle(1).msgs
    assert (m.partition(), m.offset()) == (
        res[1]["dead_letter"]["partition_id"],
        res[1]["dead_letter"]["offset"],
    )
    assert m.value() == bad_line and m.key() == b"h0"
    assert dict(m.headers())["error"].decode() == res[1]["message"]

    # refusals: no token, a wrong one, an unknown topic, an oversized body
    assert s.post(url, data=body).status_code == 401
    wrong = s.post(url, data=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    other = s.post(f"{base}/v1/topics/{prefix}.alerts/records", data=body, headers=auth)
    assert other.status_code == 404
    big = b"\n".join([json.dumps(rec[0]).encode()] * (cfg.ingest.http_max_body // 100 + 1000))
    assert len(big) > cfg.ingest.http_max_body
    too_big = s.post(url, data=big, headers=auth)
    assert too_big.status_code == 413, too_big.text

    # a flood from one client: 429 with Retry-After once over the rate; the service stays up
    def hit(_: int) -> int:
        return requests.post(f"{base}/v1/topics/nope/records", data=b"{}", headers=auth).status_code

    with ThreadPoolExecutor(16) as pool:
        flood = list(pool.map(hit, range(int(cfg.ingest.http_rate * 8))))
    assert 429 in flood and set(flood) == {404, 429}, sorted(set(flood))
    assert s.get(f"{base}/health").status_code == 200
    time.sleep(2.5)  # the bucket refills
    again = s.post(url, data=json.dumps(rec[0]), headers=auth)
    assert again.status_code == 200 and again.json()["accepted"] == 1
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "stack", "status", "ingest", "mqtt"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    row = next(ln for ln in out.stdout.splitlines() if ln.startswith("ingest "))
    assert " healthy " in row and "dead letters" in row and "x 429" in row, out.stdout


def test_kill_bridge_during_qos1_stream_loses_nothing(
    ingest_cfg: Config, base_cfg: Config, prefix: str, reliability: Any
) -> None:
    """At-least-once: every message is in Kafka; duplicates are byte-identical copies."""
    cfg = ingest_cfg
    n, rate = 3000, 600.0
    pub = _client(cfg, f"{prefix}-stream")
    t0 = int(time.time() * 1000)
    infos: list[Any] = []

    def publish() -> None:
        start = time.monotonic()
        for i in range(n):
            payload = {"value": i, "unit": "state", "event_time": t0 + i}
            infos.append(pub.publish(f"{prefix}/homes/h1/lab/dev-{i % 8}/switch",
                                     json.dumps(payload), qos=1))  # fmt: skip
            ahead = start + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    th = threading.Thread(target=publish)
    th.start()
    time.sleep(n / rate / 3)
    mqtt = stack.component(base_cfg, "mqtt")
    unacked = json.loads(mqtt.status_file.read_text()).get("unacked")  # type: ignore[attr-defined]
    mqtt.kill("mqtt-bridge")
    assert "mqtt-bridge" not in mqtt.pids() and "mqtt" in mqtt.pids()
    time.sleep(2)
    up = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "stack", "up", "mqtt"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    # the new bridge resumed the persistent session the broker kept (and its queued messages)
    logs = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "stack", "logs", "mqtt", "-n", "400"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    bridge_log = logs.stdout.rsplit("flinkpulse: starting mqtt-bridge", 1)[-1]
    assert "(session present: True)" in bridge_log, logs.stdout[-3000:]
    th.join()
    for info in infos:
        info.wait_for_publish(30)
    pub.loop_stop()
    pub.disconnect()

    r = Reader(cfg, SENSOR)
    seen: dict[int, list[bytes]] = {}

    def complete(rd: Reader) -> bool:
        for m in rd.msgs[sum(len(v) for v in seen.values()) :]:
            i = int(_value_of(m.value()))
            seen.setdefault(i, []).append(m.value())
        return len(seen) == n

    try:
        r.until(complete, 120, f"all {n} messages")
    except AssertionError as e:  # say which ones and where: a loss must be traceable
        missing = sorted(set(range(n)) - set(seen))
        per_partition = Counter(m.partition() for m in r.msgs)
        status = mqtt.status_file.read_text()  # type: ignore[attr-defined]
        raise AssertionError(
            f"{e}: missing values {missing[:20]} ({len(missing)}), records per partition "
            f"{dict(sorted(per_partition.items()))}, unacked at the kill {unacked}, "
            f"new bridge {status}"
        ) from None
    r.settle(3)
    complete(r)
    missing = n - len(seen)
    dups = sum(len(v) - 1 for v in seen.values())
    assert missing == 0
    assert all(len(set(v)) == 1 for v in seen.values())  # a duplicate is the same record
    reliability(
        "ingest",
        "kill -9 of the MQTT bridge during a QoS 1 stream, then `stack up mqtt`",
        "every message in Kafka (at-least-once: duplicates are identical records)",
        {"messages": n, "in Kafka": len(r.msgs), "unacked at kill": unacked},
        lost=missing,
        duplicated=dups,
    )


_READING = fastavro.parse_schema(latest_schema("flinkpulse.iot.SensorReading"))


def _value_of(value: bytes) -> float:
    """The `value` field of a SensorReading in Confluent wire format (the one writer schema)."""
    rec = fastavro.schemaless_reader(io.BytesIO(value[5:]), _READING, None)
    return float(rec["value"])  # type: ignore[call-overload,index]


def test_break_in_over_mqtt_raises_one_incident_in_clickhouse(
    ensure_stack: Any, ingest_cfg: Config, prefix: str
) -> None:
    """Devices -> Mosquitto -> bridge -> Kafka -> security_alerts -> loader -> ClickHouse."""
    import clickhouse_connect

    from flinkpulse.clickhouse import credentials
    from flinkpulse.loader.core import Loader
    from tests.pipeline_helpers import deployment, wait

    ensure_stack("clickhouse", "flink")
    cfg = ingest_cfg.derive(clickhouse={"database": prefix})
    home = "home-mq"
    panel, door, pir = (f"{prefix}/homes/{home}/{room}/{dev}/security" for room, dev in
                        (("hall", "panel"), ("kitchen", "door-back"), ("kitchen", "pir")))  # fmt: skip
    ch = clickhouse_connect.get_client(
        host=cfg.stack.host, port=cfg.stack.clickhouse_port, username=credentials(cfg, "writer")[0],
        password=credentials(cfg, "writer")[1],
    )  # fmt: skip
    sent: list[tuple[str, str, int]] = []
    with deployment(cfg, prefix, ["security_alerts"]) as dep:
        pub = _client(dep, f"{prefix}-home")
        try:
            # live, as devices send: each event at its own time; after the DISARM, quiet door
            # closes keep the partition's watermark (Kafka time - 5 s) moving past the break-in
            script = [(panel, "ARM_AWAY"), (door, "DOOR_OPEN"), (pir, "MOTION"), (panel, "DISARM")]
            script += [(door, "DOOR_CLOSE")] * 14
            for topic, kind in script:
                t = int(time.time() * 1000)
                pub.publish(
                    topic, json.dumps({"kind": kind, "event_time": t}), qos=1
                ).wait_for_publish(10)
                sent.append((topic, kind, t))
                time.sleep(0.5)
        finally:
            pub.loop_stop()
            pub.disconnect()

        def loaded() -> bool:
            Loader(dep).run(until_idle=3)
            n = ch.command(f"SELECT count() FROM {prefix}.security_events WHERE home_id = '{home}'")
            rule = ch.command(
                f"SELECT count() FROM {prefix}.alerts FINAL WHERE rule = 'door_open_while_armed'"
            )
            return n == len(sent) and rule == 1

        wait(loaded, 180, "the break-in's incident and every security event in ClickHouse")
        rows = ch.query(
            f"SELECT entity_id, severity, first_event_time, last_event_time, event_count, "
            f"occurrences FROM {prefix}.alerts FINAL WHERE rule = 'door_open_while_armed'"
        ).result_rows
        armed, opened = sent[0][2], sent[1][2]
        assert rows == [(home, "CRITICAL", _naive(armed), _naive(opened), 2, 1)]
        got = ch.query(
            f"SELECT kind, event_time FROM {prefix}.security_events FINAL "
            f"WHERE home_id = '{home}' ORDER BY event_time"
        ).result_rows
        assert got == [(kind, _naive(t)) for _, kind, t in sent]
        ch.command(f"DROP DATABASE IF EXISTS {prefix}")


def _naive(ms: int) -> datetime:
    """Epoch ms as clickhouse-connect returns DateTime64: naive UTC."""
    return _dt(ms).replace(tzinfo=None)


@pytest.mark.parametrize(("domain", "via", "n"), [("iot", "mqtt", 300), ("web", "http", 600)])
def test_simulators_send_through_the_ingest_tier(
    ingest_cfg: Config, domain: str, via: str, n: int
) -> None:
    """`produce iot --via mqtt` / `produce web --via http`: every record, once, in the same
    topics a direct producer writes (which records a live run makes follows the clock)."""
    from producers import streams

    cfg = ingest_cfg
    ensure_topics(cfg, streams.topics(domain))
    t0 = int(time.time() * 1000)
    res = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "--set", f"kafka.topic_prefix={cfg.kafka.topic_prefix}",
         "produce", domain, "--via", via, "--count", str(n), "--rate", "0", "--seed", "7"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"acknowledged {n:,}, dead-lettered 0, failed 0" in res.stdout, res.stdout
    # every record once, decodable, keyed as a direct producer keys it, stamped now
    got = 0
    for logical in streams.topics(domain):
        r = Reader(cfg, logical, avro=True).settle(1.5)
        for m, v in zip(r.msgs, r.values, strict=True):
            assert t0 - 10_000 <= int(v["event_time"].timestamp() * 1000) <= time.time() * 1000
            assert m.key().decode() == v[SOURCE_KEYS[logical]]
            assert t0 <= m.timestamp()[1] <= time.time() * 1000
        got += len(r.msgs)
    assert got == n
