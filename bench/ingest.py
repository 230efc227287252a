"""Device ingestion: MQTT -> Kafka and HTTP -> Kafka, side by side with the direct producer.

Runs against the local stack (kafka, registry, mqtt, ingest up), on a fresh namespace:

* rate: N IoT records (`produce iot`'s generator, full speed) through (a) the Avro producer
  straight into Kafka, (b) the MQTT broker and the bridge (QoS 1; until the last is in Kafka),
  (c) the HTTP endpoint (batches of 500 JSON lines; every answer comes after Kafka's ack);
* latency: single messages at a low rate — MQTT publish -> visible to a Kafka consumer, and an
  HTTP request of one record -> its answer (= Kafka's acknowledgement): p50 and p95.

    .venv/bin/python bench/ingest.py [--events 20000] [--latency-events 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flinkpulse.config import Config, load_config  # noqa: E402


def _count_until(cfg: Config, topics: list[str], n: int, timeout: float = 300) -> float:
    """Wall time when the n-th record of `topics` was readable (polling from the start)."""
    from confluent_kafka import Consumer

    c = Consumer({**cfg.kafka.client_conf(), "group.id": uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5})  # fmt: skip
    c.subscribe([cfg.kafka.topic(t) for t in topics])
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < n and time.monotonic() < deadline:
        seen += sum(1 for m in c.consume(10_000, 0.2) if not m.error())
    c.close()
    return time.monotonic()


def rates(cfg: Config, n: int) -> dict[str, float]:
    from flinkpulse.ingest.send import send_http, send_mqtt
    from flinkpulse.topics import ensure_topics
    from producers import streams
    from producers.base import TimeConfig, take
    from producers.kafka import AvroKafkaProducer

    topics = streams.topics("iot")
    out: dict[str, float] = {}
    for via in ("kafka", "mqtt", "http"):
        c = cfg.with_prefix(f"b{uuid.uuid4().hex[:6]}-{via}.")
        ensure_topics(c, topics)
        events = take(
            streams.stream("iot", 1, TimeConfig(events_per_second=50_000), timed=False), n
        )
        if via == "kafka":
            p = AvroKafkaProducer(c, topics)
            t0 = time.monotonic()
            p.run(iter(events))
            out[via] = n / (time.monotonic() - t0)
            continue
        t0 = time.monotonic()
        if via == "mqtt":
            done: list[float] = []
            waiter = threading.Thread(
                target=lambda c=c, done=done: done.append(_count_until(c, topics, n))
            )
            waiter.start()
            send_mqtt(c, iter(events))
            waiter.join()
            out[via] = n / (done[0] - t0)
        else:
            send_http(c, iter(events))
            out[via] = n / (time.monotonic() - t0)
    return out


def latencies(cfg: Config, n: int) -> dict[str, dict[str, float]]:
    import requests
    from confluent_kafka import Consumer

    from flinkpulse.ingest import http_token
    from flinkpulse.ingest.mqtt import connect_client
    from flinkpulse.topics import ensure_topics

    ns = f"l{uuid.uuid4().hex[:6]}"
    c = cfg.with_prefix(f"{ns}.")
    ensure_topics(c, ["iot.sensor-readings"])
    consumer = Consumer({**c.kafka.client_conf(), "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "latest", "fetch.wait.max.ms": 5})  # fmt: skip
    consumer.subscribe([c.kafka.topic("iot.sensor-readings")])
    consumer.poll(3)  # joined: latest offsets fixed
    client = connect_client(c, f"bench-{ns}", clean=True)
    client.loop_start()
    mqtt_ms = []
    for i in range(n):
        body = {"value": i, "unit": "C", "event_time": int(time.time() * 1000)}
        t0 = time.perf_counter()
        client.publish(f"{ns}/homes/h/r/d/temperature", json.dumps(body), qos=1)
        while True:
            m = consumer.poll(1)
            if m is not None and not m.error():
                break
        mqtt_ms.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.02)
    client.loop_stop()
    consumer.close()
    url = f"http://{c.stack.host}:{c.stack.ingest_port}/v1/topics/{ns}.iot.sensor-readings/records"
    s = requests.Session()
    auth = {"Authorization": f"Bearer {http_token(c)}"}
    http_ms = []
    rec = {"device_id": "d", "home_id": "h", "room": "r", "sensor_type": "LIGHT", "value": 1.0,
           "unit": "lx", "appliance": None}  # fmt: skip
    for _ in range(n):
        t0 = time.perf_counter()
        r = s.post(
            url, data=json.dumps({**rec, "event_time": int(time.time() * 1000)}), headers=auth
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        http_ms.append((time.perf_counter() - t0) * 1000)
        time.sleep(max(0.0, 1 / c.ingest.http_rate))

    def q(xs: list[float]) -> dict[str, float]:
        qs = statistics.quantiles(xs, n=20)
        return {"p50_ms": round(statistics.median(xs), 1), "p95_ms": round(qs[18], 1)}

    return {"mqtt_publish_to_consumer": q(mqtt_ms), "http_request_to_kafka_ack": q(http_ms)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--latency-events", type=int, default=200)
    args = ap.parse_args(argv)
    cfg = load_config()
    r = rates(cfg, args.events)
    lat = latencies(cfg, args.latency_events)
    print(json.dumps({"events": args.events, "rate_per_s": {k: round(v) for k, v in r.items()},
                      "ratio_to_kafka": {k: round(v / r["kafka"], 3) for k, v in r.items()},
                      "latency": lat}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
