"""The ingest tier's one path into Kafka: JSON from a device -> the source topic's Avro record
(validated against its ``.avsc``) -> Confluent wire format through the registry -> Kafka, stamped
with the ingest time; a payload that fails goes to ``dlq.<topic>`` with its reason and raw bytes.

Both the MQTT bridge (:mod:`flinkpulse.ingest.mqtt`) and the HTTP endpoint
(:mod:`flinkpulse.ingest.http`) use :class:`Ingestor`; each passes a callback that runs once
Kafka has acknowledged the record (or its dead letter), so neither answers its client before.

Topics: a source topic, optionally under a namespace — ``<ns>.iot.security-events`` — which is
a Kafka topic prefix (one broker, several sites or test runs). The ingest tier's own
``kafka.topic_prefix`` comes first.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import fastavro

from flinkpulse.avro import Registry, RegistryError, RegistryUnavailable
from flinkpulse.clock import ClockSteps
from flinkpulse.config import Config
from flinkpulse.errors import ServiceUnreachable
from flinkpulse.topics import (
    SOURCE_KEYS,
    SOURCE_RECORDS,
    SOURCE_TOPICS,
    TopicsNotServed,
    dlq_topic,
    ensure_topics,
)

log = logging.getLogger(__name__)

#: a namespace (Kafka topic prefix without its dot; MQTT: the first topic level)
NAMESPACE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: namespaces that would name a side topic of the default one (dlq.<topic>, late.<topic>)
RESERVED_NAMESPACES = {"dlq", "late"}


def valid_namespace(ns: str) -> bool:
    """A namespace may prefix the source topics: safe characters, not a side-topic prefix."""
    return bool(NAMESPACE.match(ns)) and ns not in RESERVED_NAMESPACES


#: dead-letter reasons are cut to this many characters
MAX_REASON = 500


class Rejected(ValueError):
    """The payload cannot become a record of its topic; the message is the dead-letter reason."""


#: what :meth:`Ingestor.send` raises before sending anything, never the payload's fault: the
#: caller keeps the payload and tries again (the bridge) or answers 503 (the HTTP endpoint)
TRANSIENT = (RegistryUnavailable, TopicsNotServed)

#: a record unacknowledged this long is reported in the log (every as many seconds)
UNACKED_WARN_S = 30.0


@dataclass(frozen=True)
class Target:
    """Where a record goes: a source topic under a prefix (the ingest tier's + a namespace)."""

    prefix: str
    logical: str

    @property
    def topic(self) -> str:
        return f"{self.prefix}{self.logical}"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}{dlq_topic(self.logical)}"


def target_of(cfg: Config, topic: str) -> Target | None:
    """The target of a Kafka topic name `<kafka.topic_prefix>[<ns>.]<source topic>`, or None."""
    base = cfg.kafka.topic_prefix
    if not topic.startswith(base):
        return None
    rest = topic[len(base) :]
    for logical in SOURCE_TOPICS:
        if rest == logical:
            return Target(base, logical)
        ns = rest[: -len(logical) - 1]
        if rest.endswith("." + logical) and valid_namespace(ns):
            return Target(f"{base}{ns}.", logical)
    return None


def target_in(cfg: Config, namespace: str | None, logical: str) -> Target:
    """The target of a source topic under an optional namespace."""
    return Target(cfg.kafka.topic_prefix + (f"{namespace}." if namespace else ""), logical)


# -- JSON -> Avro record --------------------------------------------------------------------------


def _iso_millis(value: str) -> int:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError("no time zone")
    return int(t.timestamp() * 1000)


def _coerce(name: str, value: Any, typ: Any) -> Any:
    """`value` (from JSON) as the Avro type `typ` of field `name`; Rejected says why not."""
    if isinstance(typ, list):
        if value is None and "null" in typ:
            return None
        others = [t for t in typ if t != "null"]
        if len(others) == 1:
            return _coerce(name, value, others[0])
        raise Rejected(f"field '{name}': unions of several types are not supported")
    if isinstance(typ, dict):
        kind = typ.get("type")
        if kind == "enum":
            if not isinstance(value, str) or value not in typ["symbols"]:
                raise Rejected(f"field '{name}': {value!r} is not one of {typ['symbols']}")
            return value
        if typ.get("logicalType") == "timestamp-millis" and kind == "long":
            if isinstance(value, str):
                try:
                    return _iso_millis(value)
                except ValueError:
                    raise Rejected(
                        f"field '{name}': {value!r} is not epoch milliseconds or ISO-8601 "
                        "with a time zone"
                    ) from None
            return _coerce(name, value, "long")
        return _coerce(name, value, kind)
    ok = {
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31,
        "long": isinstance(value, int)
        and not isinstance(value, bool)
        and -(2**63) <= value < 2**63,
        "double": isinstance(value, int | float) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
    }.get(str(typ))
    if ok is None:
        raise Rejected(f"field '{name}': type {typ} is not supported from JSON")
    if not ok:
        raise Rejected(f"field '{name}': {value!r} is not {typ}")
    return float(value) if typ in ("double", "float") else value


def record_from_json(doc: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """The Avro record of a JSON object for a flat record schema: every field present (or its
    default), no unknown field, each value of the field's type; Rejected names the field."""
    name = schema["name"]
    if not isinstance(doc, dict):
        raise Rejected(f"{name}: expected a JSON object, got {type(doc).__name__}")
    fields = {f["name"]: f for f in schema["fields"]}
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise Rejected(f"{name}: unknown field(s) {', '.join(map(repr, unknown))}")
    out: dict[str, Any] = {}
    for fname, f in fields.items():
        if fname in doc:
            out[fname] = _coerce(fname, doc[fname], f["type"])
        elif "default" in f:
            out[fname] = f["default"]
        else:
            raise Rejected(f"{name}: missing field '{fname}'")
    return out


def parse_json(raw: bytes) -> Any:
    """The JSON document of a payload; Rejected if it is not UTF-8 JSON."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise Rejected(f"not JSON: {e}") from None


# -- Kafka ---------------------------------------------------------------------------------------


@dataclass
class Delivered:
    """What Kafka acknowledged for one ingested payload (or why it could not)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    #: the dead-letter reason; None when the record itself was written
    reason: str | None = None
    #: Kafka's delivery error, if it failed (nothing was written)
    error: str | None = None


class _Schema:
    """One target's writer schema, its registry id and wire-format header."""

    def __init__(self, schema: dict[str, Any], schema_id: int) -> None:
        self.raw = schema
        self.parsed = fastavro.parse_schema(schema)
        self.header = b"\x00" + schema_id.to_bytes(4, "big")


class Ingestor:
    """Validates, encodes and produces; calls back once Kafka has acknowledged each payload.

    One librdkafka producer (idempotent, acks=all, no delivery timeout: a Kafka outage stalls
    the acknowledgements instead of failing them) and a thread that serves its callbacks.
    """

    def __init__(
        self,
        cfg: Config,
        producer_conf: dict[str, Any] | None = None,
        clock: ClockSteps | None = None,
        unacked_warn_s: float = UNACKED_WARN_S,
    ) -> None:
        """`clock`: what watches this host's wall clock, which stamps the records;
        `unacked_warn_s`: after how long an unacknowledged record is reported in the log."""
        from flinkpulse.producer import Producer

        self.cfg = cfg
        self._schemas: dict[Target, _Schema] = {}
        self._registry = Registry(cfg.registry.url)
        self._lock = threading.Lock()
        conf: dict[str, Any] = {
            **cfg.kafka.client_conf(),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 0,
            "compression.type": "lz4",
            "message.max.bytes": 4_000_000,
            "log_level": 3,
            **(producer_conf or {}),
        }
        self.producer = Producer(conf)
        self.counts = {"records": 0, "dead_letters": 0, "failed": 0, "clock_steps": 0}
        self.clock = clock or ClockSteps()
        #: produce() time and topic of each record Kafka has not acknowledged yet, by number
        self._unacked: dict[int, tuple[float, str]] = {}
        self._numbers = itertools.count()
        self._next_watch = 0.0
        self._warn_after = unacked_warn_s
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)  # also writes again what Kafka gave no offset
            step = self.clock.observe()  # records are stamped with this host's wall clock
            if step is not None:
                self.counts["clock_steps"] += 1
                log.warning(
                    "the wall clock stepped %s: records are stamped with it, so those around "
                    "the step are late (late.*) or ahead of their devices' event times",
                    step,
                )
            self._watch()

    def _watch(self) -> None:
        """A warning (at most once per `unacked_warn_s`) if a record has waited that long for
        Kafka's acknowledgement: its client is not answered meanwhile, so say where it waits."""
        now = time.monotonic()
        if now < self._next_watch:
            return
        self._next_watch = now + self._warn_after
        pending = self._unacked.copy().values()  # copy(): one step, while produce() adds
        old = [(t, topic) for t, topic in pending if now - t >= self._warn_after]
        if old:
            log.warning(
                "%d record(s) not acknowledged by Kafka for %g s or more (the oldest %.0f s), "
                "to %s",
                len(old), self._warn_after, now - min(old)[0], ", ".join(sorted({t for _, t in old})),
            )  # fmt: skip

    def check_kafka(self, timeout: float = 10.0) -> None:
        """ServiceUnreachable unless the brokers answer."""
        try:
            self.producer.list_topics(timeout=timeout)
        except Exception:
            raise ServiceUnreachable("Kafka", self.cfg.kafka.bootstrap_servers) from None

    def schema(self, target: Target) -> _Schema:
        """The target's latest ``.avsc``, registered under ``<topic>-value`` (once), its topics
        created with the source-topic configuration."""
        got = self._schemas.get(target)
        if got is not None:
            return got
        with self._lock:
            got = self._schemas.get(target)
            if got is None:
                got = self._register(target)
                self._schemas[target] = got
        return got

    def _register(self, target: Target) -> _Schema:

        from flinkpulse.schemas import latest_schema, schema_str, subject_for

        writer = latest_schema(SOURCE_RECORDS[target.logical])
        subject = subject_for(target.topic)
        try:  # an outage raises RegistryUnavailable: the caller retries, nothing is sent
            schema_id = self._registry.register(subject, schema_str(writer))
        except RegistryError as e:  # e.g. an incompatible schema under the subject
            raise Rejected(
                f"schema registry refused {writer['name']} for {subject}: {e.message}"
            ) from None
        sub = self.cfg.with_prefix(target.prefix)
        ensure_topics(sub, [target.logical, dlq_topic(target.logical)])  # and served
        return _Schema(writer, schema_id)

    def encode(
        self,
        target: Target,
        doc: Any,
        fill: dict[str, Any] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> bytes:
        """Confluent wire-format bytes of a JSON document. `fill`: fields known from elsewhere
        (the MQTT topic), which the document may omit but not contradict; `defaults`: values
        for fields the document omits."""
        sch = self.schema(target)
        if fill or defaults:
            if not isinstance(doc, dict):
                raise Rejected(
                    f"{sch.raw['name']}: expected a JSON object, got {type(doc).__name__}"
                )
            for k, v in (fill or {}).items():
                if k in doc and doc[k] != v:
                    raise Rejected(f"{k} {doc[k]!r} in the payload contradicts {v!r} of the topic")
            doc = {**(defaults or {}), **(fill or {}), **doc}
        record = record_from_json(doc, sch.raw)
        buf = io.BytesIO()
        buf.write(sch.header)
        try:
            fastavro.schemaless_writer(buf, sch.parsed, record)
        except Exception as e:  # noqa: BLE001 - fastavro raises many types for bad data
            raise Rejected(f"{sch.raw['name']}: {e}") from None
        return buf.getvalue()

    def key_of(self, target: Target, doc: Any) -> bytes | None:
        key = doc.get(SOURCE_KEYS[target.logical]) if isinstance(doc, dict) else None
        return key.encode() if isinstance(key, str) else None

    def send(
        self,
        target: Target,
        raw: bytes,
        done: Callable[[Delivered], None],
        fill: dict[str, Any] | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        """Ingest one payload: the record to its topic, or (invalid) the raw bytes to its DLQ
        with the reason; `done` runs once Kafka has acknowledged either. RegistryUnavailable
        and TopicsNotServed are raised before anything is sent (never the payload's fault)."""
        now = int(time.time() * 1000)
        doc: Any = None
        try:
            doc = parse_json(raw)
            value = self.encode(target, doc, fill, defaults)
        except Rejected as e:
            reason = str(e)[:MAX_REASON]
            key = self.key_of(target, doc)
            hdrs = [("error", reason.encode()), ("source.topic", target.topic.encode())]
            self._produce(target.dlq, raw, key, now, hdrs + (headers or []), done, reason)
            return
        key = self.key_of(target, {**(fill or {}), **doc})  # a JSON object: encode() took it
        self._produce(target.topic, value, key, now, None, done, None)

    def _produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        ts: int,
        headers: list[Any] | None,
        done: Callable[[Delivered], None],
        reason: str | None,
    ) -> None:
        number = next(self._numbers)
        self._unacked[number] = (time.monotonic(), topic)

        def delivered(err: Any, msg: Any) -> None:
            self._unacked.pop(number, None)
            if err is not None:
                self.counts["failed"] += 1
                done(Delivered(topic, -1, -1, ts, reason, str(err)))
                return
            self.counts["dead_letters" if reason else "records"] += 1
            done(Delivered(topic, msg.partition(), msg.offset(), ts, reason))

        while True:
            try:
                self.producer.produce(
                    topic, value, key, on_delivery=delivered, timestamp=ts, headers=headers
                )
                return
            except BufferError:  # local queue full: the poller drains it
                time.sleep(0.01)

    def close(self, timeout: float = 10.0) -> int:
        """Flush; the number of payloads still unacknowledged (their clients were not answered)."""
        left = int(self.producer.flush(timeout))
        self._stop.set()
        return left
