"""`flinkpulse produce … --via mqtt|http`: the simulators as real devices and web servers would
send — JSON over MQTT (QoS 1) to the device topics, or batches of JSON lines to the HTTP
endpoint — instead of Avro straight into Kafka. The ingest tier stamps the Kafka timestamps.

The producer's ``kafka.topic_prefix`` ``<ns>.`` becomes the namespace ``<ns>`` (MQTT topic level,
HTTP topic prefix), so the records land in the same topics a direct producer would write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flinkpulse.config import Config
from flinkpulse.errors import UsageError

#: records per HTTP request, and the longest a record waits for its batch (seconds)
HTTP_BATCH, HTTP_LINGER_S = 500, 0.2


@dataclass
class SendStats:
    """What a run sent and what the broker / endpoint acknowledged."""

    sent: int = 0
    acked: int = 0
    rejected: int = 0  # HTTP: invalid records (dead-lettered by the endpoint)
    failed: int = 0  # not acknowledged
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)

    def summary(self, via: str) -> str:
        rate = self.sent / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"sent {self.sent:,} records via {via} in {self.elapsed:.1f}s = {rate:,.0f}/s; "
            f"acknowledged {self.acked:,}, dead-lettered {self.rejected:,}, failed {self.failed:,}"
        )


def namespace(cfg: Config) -> str | None:
    """The namespace that makes the ingest tier write to this config's prefixed topics."""
    from flinkpulse.ingest.core import valid_namespace

    prefix = cfg.kafka.topic_prefix
    if not prefix:
        return None
    ns = prefix[:-1] if prefix.endswith(".") else ""
    if not valid_namespace(ns):
        raise UsageError(
            f"kafka.topic_prefix {prefix!r} cannot be sent --via mqtt/http: it must be "
            "<namespace>. with letters, digits, _ or -"
        )
    return ns


def _paced(
    events: Iterator[Any], rate: float | None, duration: float | None, count: int | None
) -> Iterator[Any]:
    """The events at `rate`/s until `count` or `duration`."""
    t0 = time.monotonic()
    for i, ev in enumerate(events):
        if count is not None and i >= count:
            return
        now = time.monotonic()
        if duration is not None and now - t0 >= duration:
            return
        if rate:
            ahead = t0 + i / rate - now
            if ahead > 0:
                time.sleep(ahead)
        yield ev


def send_mqtt(
    cfg: Config,
    events: Iterator[Any],
    rate: float | None = None,
    duration: float | None = None,
    count: int | None = None,
) -> SendStats:
    """Publish each IoT record as a device would (QoS 1), then wait for every PUBACK."""
    import paho.mqtt.client as paho

    from flinkpulse.ingest.mqtt import connect_client, device_topic

    ns = namespace(cfg)
    st = SendStats()
    client = connect_client(cfg, f"flinkpulse-sim-{time.time_ns()}", clean=True, inflight=1000)
    client.loop_start()
    t0 = time.monotonic()
    infos = []
    try:
        for _key, record, logical, *_ in _paced(events, rate, duration, count):
            info = client.publish(device_topic(logical, record, ns), json.dumps(record), qos=1)
            infos.append(info)
            st.sent += 1
        for info in infos:
            info.wait_for_publish(30)
            if info.rc == paho.MQTT_ERR_SUCCESS and info.is_published():
                st.acked += 1
            else:
                st.failed += 1
    finally:
        client.disconnect()
        client.loop_stop()
    st.elapsed = time.monotonic() - t0
    return st


def send_http(
    cfg: Config,
    events: Iterator[Any],
    rate: float | None = None,
    duration: float | None = None,
    count: int | None = None,
    url: str | None = None,
) -> SendStats:
    """POST the records in batches of JSON lines per topic; count the per-record answers."""
    import requests

    from flinkpulse.ingest import http_token

    namespace(cfg)  # the endpoint takes <namespace>.<topic> only
    base = url or f"http://{cfg.stack.host}:{cfg.stack.ingest_port}"
    headers = {
        "Authorization": f"Bearer {http_token(cfg)}",
        "Content-Type": "application/x-ndjson",
    }
    session = requests.Session()
    st = SendStats()
    batches: dict[str, list[bytes]] = {}
    oldest = time.monotonic()

    def flush(topic: str) -> None:
        lines = batches.pop(topic, [])
        if not lines:
            return
        try:
            r = session.post(
                f"{base}/v1/topics/{topic}/records", data=b"\n".join(lines), headers=headers
            )
        except requests.ConnectionError:
            raise UsageError(f"the HTTP ingest endpoint is not reachable at {base}") from None
        while r.status_code == 429:  # over the rate limit: as told, wait and resend
            time.sleep(float(r.headers.get("Retry-After", "1")))
            r = session.post(
                f"{base}/v1/topics/{topic}/records", data=b"\n".join(lines), headers=headers
            )
        if r.status_code != 200:
            st.failed += len(lines)
            if len(st.errors) < 10:
                st.errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
            return
        for res in r.json()["results"]:
            code = res["error_code"]
            st.acked += code == 200
            st.rejected += code == 422
            st.failed += code not in (200, 422)

    t0 = time.monotonic()
    for _key, record, logical, *_ in _paced(events, rate, duration, count):
        topic = cfg.kafka.topic(logical)
        if not batches:
            oldest = time.monotonic()
        batches.setdefault(topic, []).append(json.dumps(record).encode())
        st.sent += 1
        if len(batches[topic]) >= HTTP_BATCH:
            flush(topic)
        elif time.monotonic() - oldest >= HTTP_LINGER_S:
            for t in list(batches):
                flush(t)
    for t in list(batches):
        flush(t)
    st.elapsed = time.monotonic() - t0
    return st
