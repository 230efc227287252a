"""`flinkpulse ingest mqtt`: the bridge from device topics on the MQTT broker to Kafka.

Devices publish JSON, QoS 1, to ``[<namespace>/]homes/<home_id>/<room>/<device_id>/<kind>``:

* ``kind = security`` -> ``iot.security-events`` (a SecurityEvent: ``kind``, ``event_time``,
  ``event_id`` — derived from the topic and payload when absent, so a redelivery keeps it);
* ``kind`` = a sensor type in lower case (``temperature``, ``power``...) ->
  ``iot.sensor-readings`` (a SensorReading: ``value``, ``unit``, ``event_time``...).

``home_id``, ``room``, ``device_id`` (and ``sensor_type``) come from the topic; the payload may
repeat them but not contradict them. A namespace becomes a Kafka topic prefix (``<ns>.``).

Delivery: the bridge keeps a persistent session (fixed client id, clean session off) and
acknowledges each message (PUBACK, paho's ``manual_ack``) only once Kafka has acknowledged its
record or its dead letter. A bridge killed at any point loses nothing: the broker redelivers
what was not acknowledged. What Kafka had already taken before the kill is written again:
at-least-once (docs/ingest.md says what the jobs make of a duplicate).
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError, ServiceUnreachable
from flinkpulse.ingest import mqtt_credentials, write_status
from flinkpulse.ingest.core import (
    TRANSIENT,
    Delivered,
    Ingestor,
    Target,
    target_in,
    valid_namespace,
)

log = logging.getLogger("flinkpulse.ingest.mqtt")

#: the device topics the bridge subscribes to (QoS 1), without and with a namespace
SUBSCRIPTIONS = ["homes/+/+/+/+", "+/homes/+/+/+/+"]
SECURITY_KIND = "security"
#: MQTT 3.1.1 CONNACK codes paho reports as reason codes
_BAD_CREDENTIALS = {4, 5, 134, 135}


def route(cfg: Config, topic: str) -> tuple[Target, dict[str, Any]] | None:
    """The Kafka target of a device topic and the fields the topic gives; None if it is not one."""
    parts = topic.split("/")
    namespace = None
    if len(parts) == 6 and valid_namespace(parts[0]):
        namespace, parts = parts[0], parts[1:]
    if len(parts) != 5 or parts[0] != "homes" or not all(parts):
        return None
    _, home, room, device, kind = parts
    fill: dict[str, Any] = {"home_id": home, "room": room, "device_id": device}
    if kind == SECURITY_KIND:
        return target_in(cfg, namespace, "iot.security-events"), fill
    return target_in(cfg, namespace, "iot.sensor-readings"), {**fill, "sensor_type": kind.upper()}


def device_topic(logical: str, record: dict[str, Any], namespace: str | None = None) -> str:
    """The MQTT topic a device publishes `record` of source topic `logical` to."""
    kind = SECURITY_KIND if logical == "iot.security-events" else record["sensor_type"].lower()
    path = f"homes/{record['home_id']}/{record['room']}/{record['device_id']}/{kind}"
    return f"{namespace}/{path}" if namespace else path


def derived_event_id(topic: str, payload: bytes) -> str:
    """A stable event id for a security event that came without one (same message, same id)."""
    digest = hashlib.sha256(topic.encode() + b"\0" + payload).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


def connect_client(
    cfg: Config, client_id: str, clean: bool, wait: float = 0.0, inflight: int = 20, **kw: Any
) -> Any:
    """A connected paho client (MQTT 3.1.1) with the configured credentials, loop not started,
    at most `inflight` QoS 1 publishes unacknowledged; ServiceUnreachable if the broker does not
    answer (within `wait` seconds)."""
    import paho.mqtt.client as paho

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=paho.MQTTv311,
        **kw,
    )
    client.username_pw_set(*mqtt_credentials(cfg))
    client.max_inflight_messages_set(inflight)
    host, _, port = cfg.ingest.mqtt_broker.rpartition(":")
    deadline = time.monotonic() + wait
    while True:
        try:
            client.connect(host, int(port), keepalive=30)
            return client
        except OSError:
            if time.monotonic() >= deadline:
                raise ServiceUnreachable("MQTT broker", cfg.ingest.mqtt_broker) from None
            time.sleep(0.2)


class Bridge:
    """Subscribes to the device topics and ingests every message (see the module doc)."""

    def __init__(self, cfg: Config, status_file: Path | None = None) -> None:
        self.cfg = cfg
        self.status_file = status_file
        self.ingestor = Ingestor(cfg)
        self.received = 0
        self.acked = 0
        self.unroutable = 0
        self.state = "starting"
        self._client: Any = None
        self._stop = threading.Event()

    # -- paho callbacks (the network thread) ----------------------------------------------------
    def _on_connect(self, client: Any, _u: Any, flags: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            log.error("MQTT broker refused the bridge: %s", rc)
            if rc.value in _BAD_CREDENTIALS:
                self.state = "refused"
            return
        log.info("connected to %s (session present: %s)", self.cfg.ingest.mqtt_broker,
                 flags.session_present)  # fmt: skip
        client.subscribe([(s, 1) for s in SUBSCRIPTIONS])

    def _on_subscribe(self, *_a: Any) -> None:
        self.state = "running"

    def _on_disconnect(self, *_a: Any) -> None:
        if not self._stop.is_set() and self.state != "refused":
            log.warning("disconnected from the MQTT broker; reconnecting")
            self.state = "reconnecting"

    def _on_message(self, client: Any, _u: Any, msg: Any) -> None:
        self.received += 1
        mid, qos = msg.mid, msg.qos

        def done(d: Delivered) -> None:
            if d.error is not None:  # not written: no ack, the broker redelivers on reconnect
                log.error("Kafka refused a record of %s: %s", msg.topic, d.error)
                return
            if d.reason:
                log.warning("dead-lettered %s to %s@%d: %s", msg.topic, d.topic, d.offset,
                            d.reason)  # fmt: skip
            client.ack(mid, qos)
            self.acked += 1

        routed = route(self.cfg, msg.topic)
        if routed is None:  # not a device topic (a subscription of the bridge never gives one)
            self.unroutable += 1
            client.ack(mid, qos)
            return
        target, fill = routed
        defaults = None
        if target.logical == "iot.security-events":
            defaults = {"event_id": derived_event_id(msg.topic, msg.payload)}
        headers = [("mqtt.topic", msg.topic.encode())]
        while True:
            try:
                self.ingestor.send(target, msg.payload, done, fill, headers, defaults)
                return
            except TRANSIENT as e:  # never the message's fault: wait, keep it
                log.error("%s; retrying in 2 s", e)
                time.sleep(2)

    # -- main loop ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        c = self.ingestor.counts
        return {
            "state": self.state,
            "broker": self.cfg.ingest.mqtt_broker,
            "received": self.received,
            "records": c["records"],
            "dead_letters": c["dead_letters"],
            "unacked": self.received - self.acked - self.unroutable,
            "clock_steps": c["clock_steps"],
        }

    def run(self, max_seconds: float | None = None) -> int:
        """Bridge until SIGTERM/SIGINT (or `max_seconds`); flush Kafka, then disconnect."""
        self.ingestor.check_kafka()
        client = connect_client(
            self.cfg, self.cfg.ingest.mqtt_client_id, clean=False, wait=30, manual_ack=True
        )
        self._client = client
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        client.loop_start()
        t0 = time.monotonic()
        last = (t0, 0)
        written = ""
        try:
            # counters every second, and at once when the state changes (`stack up` waits for
            # "running")
            while not self._stop.wait(0.1):
                if self.state == "refused":
                    raise FlinkpulseError(
                        f"the MQTT broker at {self.cfg.ingest.mqtt_broker} refused the "
                        "bridge's credentials"
                    )
                now = time.monotonic()
                if now - last[0] < 1.0 and self.state == written:
                    continue
                doc = self.status()
                doc["rate"] = (doc["received"] - last[1]) / max(now - last[0], 1e-6)
                last, written = (now, doc["received"]), self.state
                if self.status_file is not None:
                    write_status(self.status_file, doc)
                if max_seconds is not None and now - t0 >= max_seconds:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            left = self.ingestor.close(10)
            client.disconnect()
            client.loop_stop()
            if self.status_file is not None:
                write_status(self.status_file, {**self.status(), "state": "stopped"})
            log.info("stopped: %s (%d not acknowledged by Kafka)", self.status(), left)
        return 0
