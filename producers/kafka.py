"""The Kafka side of the producers: Avro in Confluent wire format, rate control, accounting.

Values are encoded with fastavro against each topic's latest schema in ``avro_schemas/`` and
framed as Confluent wire format (magic byte 0, 4-byte schema id, Avro body); the id comes from
registering the schema under ``<topic>-value`` in the schema registry (idempotent). Keys are
UTF-8 strings (DESIGN: player_id, device_id, home_id, client_ip). A record that does not match
its schema is not sent: it is counted and reported with the field at fault, and the run goes on.
``bad_fraction`` sends malformed values on purpose (garbage, wrong magic byte, unknown schema id,
truncated Avro) to exercise the jobs' dead-letter path.

Kafka timestamps (CreateTime) are the reference the jobs judge event time against: an event
``(key, record, topic)`` is stamped by librdkafka with the wall clock at ``produce()``; a timed
event ``(key, record, topic, ts_ms)`` (a simulated clock, a scripted scenario) carries its own.
"""

from __future__ import annotations

import io
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import fastavro

from flinkpulse.avro import header
from flinkpulse.clock import ClockStep, ClockSteps
from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError, ServiceUnreachable
from flinkpulse.schemas import TOPIC_RECORDS, latest_schema, schema_str, subject_for
from flinkpulse.topics import ensure_topics
from producers.base import Event, TimedEvent
from producers.encoder import Encoder, compile_encoder

#: kinds of malformed values --bad-fraction sends, in turn
BAD_KINDS = ("garbage", "bad_magic", "unknown_schema_id", "truncated")
#: schema id no registry hands out (unknown_schema_id)
UNKNOWN_ID = 2**31 - 1


class InvalidRecord(ValueError):
    """A record that does not match its Avro schema; the message names the field."""


@dataclass
class Stats:
    """What a run did; `delivered + failed == sent + bad` once flushed."""

    sent: int = 0  # valid records handed to Kafka
    bad: int = 0  # malformed values sent on purpose
    invalid: int = 0  # records rejected by the schema (not sent)
    delivered: int = 0
    failed: int = 0  # delivery errors reported by Kafka
    elapsed: float = 0.0
    interrupted: bool = False
    per_topic: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # first few messages, for the summary
    #: steps of the wall clock while sending (live timestamps are the wall clock's)
    clock_steps: list[ClockStep] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return (self.sent + self.bad) / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        topics = ", ".join(f"{t}={n:,}" for t, n in sorted(self.per_topic.items()))
        head = "interrupted: " if self.interrupted else ""
        return (
            f"{head}sent {self.sent:,} records ({topics}) in {self.elapsed:.1f}s = "
            f"{self.rate:,.0f}/s; delivered {self.delivered:,}, delivery errors {self.failed:,}, "
            f"invalid (not sent) {self.invalid:,}, malformed on purpose {self.bad:,}"
            + (
                f"; wall clock stepped {', '.join(map(str, self.clock_steps))}"
                if self.clock_steps
                else ""
            )
        )


class _Topic:
    """One topic's encoder: parsed schema, schema id, the wire-format header and, for flat
    schemas, a compiled encoder that writes header + Avro body in one go (fastavro otherwise,
    and for any record the compiled one does not take)."""

    __slots__ = ("logical", "physical", "schema", "schema_id", "header", "record", "fast")

    def __init__(self, logical: str, physical: str, schema: dict[str, Any], schema_id: int) -> None:
        self.logical = logical
        self.physical = physical
        self.record = schema["name"]
        self.schema_id = schema_id
        self.header = header(schema_id)
        self.fast: Encoder | None = compile_encoder(schema, self.header)
        self.schema = fastavro.parse_schema(schema)


def describe_invalid(record: dict[str, Any], schema: Any, record_name: str, err: Exception) -> str:
    """A one-line reason naming the field, from fastavro's validator (falls back to `err`)."""
    from fastavro.validation import ValidationError, validate

    try:
        validate(record, schema, raise_errors=True)
    except ValidationError as ve:
        parts = []
        for e in ve.errors:
            name = str(getattr(e, "field", "") or "").rsplit(".", 1)[-1]
            expected = getattr(e, "schema", "")
            if isinstance(expected, dict):
                kind = expected.get("type")
                expected = f"one of {expected.get('symbols')}" if kind == "enum" else str(kind)
            datum = getattr(e, "datum", None)
            parts.append(f"field '{name}': {datum!r} is not {expected}")
        if parts:
            return f"{record_name}: " + "; ".join(parts)
    except Exception:  # noqa: BLE001 - the validator itself choked: use the writer's error
        pass
    return f"{record_name}: {type(err).__name__}: {err}"


class AvroKafkaProducer:
    """Registers the schemas, then encodes and sends events; accounting in :attr:`stats`."""

    def __init__(
        self,
        cfg: Config,
        topics: Iterable[str],
        *,
        schemas: dict[str, dict[str, Any]] | None = None,
        bad_fraction: float = 0.0,
        seed: int = 0,
        producer_conf: dict[str, Any] | None = None,
        create_topics: bool = True,
    ) -> None:
        """`topics` are logical names; `schemas` overrides the writer schema per logical topic."""
        from flinkpulse.producer import Producer

        self.cfg = cfg
        self.stats = Stats()
        self.bad_fraction = bad_fraction
        self._rng = random.Random(seed ^ 0x5EED)
        self._buf = io.BytesIO()
        self._bad_i = 0
        self.topics: dict[str, _Topic] = {}
        logical = list(dict.fromkeys(topics))
        ids = self.register(logical, schemas or {})
        for t in logical:
            writer = (schemas or {}).get(t) or latest_schema(TOPIC_RECORDS[t])
            self.topics[t] = _Topic(t, cfg.kafka.topic(t), writer, ids[t])
        if create_topics:
            ensure_topics(cfg, list(self.topics))
        conf: dict[str, Any] = {
            **cfg.kafka.client_conf(),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "log_level": 3,
        }
        conf.update(producer_conf or {})
        self.producer = Producer(conf)

    # -- registry ------------------------------------------------------------------------------
    def register(self, topics: list[str], schemas: dict[str, dict[str, Any]]) -> dict[str, int]:
        """Register each topic's writer schema under `<physical topic>-value`; their ids."""
        from flinkpulse.avro import Registry, RegistryError

        client = Registry(self.cfg.registry.url)
        ids = {}
        for t in topics:
            writer = schemas.get(t) or latest_schema(TOPIC_RECORDS[t])
            subject = subject_for(self.cfg.kafka.topic(t))
            try:
                ids[t] = client.register(subject, schema_str(writer))
            except RegistryError as e:  # an outage is RegistryUnavailable: "not reachable"
                raise FlinkpulseError(
                    f"schema registry refused {writer['name']} for {subject}: {e.message}"
                ) from None
        return ids

    # -- sending -------------------------------------------------------------------------------
    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            if len(self.stats.errors) < 10:
                self.stats.errors.append(f"delivery failed: {err}")

    def encode(self, logical: str, record: dict[str, Any]) -> bytes:
        """Confluent wire-format bytes of `record`; raises InvalidRecord naming the field."""
        tp = self.topics[logical]
        if tp.fast is not None:
            try:
                return tp.fast(record)
            except Exception:  # noqa: BLE001, S110 - not exactly typed: fastavro decides below
                pass
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        try:
            fastavro.schemaless_writer(buf, tp.schema, record)
        except Exception as e:  # noqa: BLE001 - fastavro raises many types for bad data
            raise InvalidRecord(describe_invalid(record, tp.schema, tp.record, e)) from None
        return tp.header + buf.getvalue()

    def _produce(self, topic: str, value: bytes, key: bytes, timestamp: int = 0) -> None:
        """Enqueue one message, waiting while librdkafka's local queue is full. `timestamp`
        (ms, CreateTime): 0 = the wall clock now (live data); scripted data passes its clock."""
        while True:
            try:
                self.producer.produce(
                    topic, value, key, on_delivery=self._on_delivery, timestamp=timestamp
                )
                return
            except BufferError:  # local queue full: let librdkafka drain it
                self.producer.poll(0.05)

    def _malformed(self, good: bytes) -> bytes:
        kind = BAD_KINDS[self._bad_i % len(BAD_KINDS)]
        self._bad_i += 1
        if kind == "garbage":
            return b"this is not avro " + bytes(self._rng.getrandbits(8) for _ in range(12))
        if kind == "bad_magic":
            return b"\x07" + good[1:]
        if kind == "unknown_schema_id":
            return b"\x00" + UNKNOWN_ID.to_bytes(4, "big") + good[5:]
        return good[: max(6, len(good) // 3)]  # truncated Avro body

    def send(
        self, key: str, record: dict[str, Any], logical: str, timestamp: int | None = None
    ) -> bool:
        """Encode and enqueue one event; False (and counted) if the record is invalid.
        `timestamp`: the Kafka timestamp (ms) of a simulated clock; None = now."""
        try:
            value = self.encode(logical, record)
        except InvalidRecord as e:
            self.stats.invalid += 1
            if len(self.stats.errors) < 10:
                self.stats.errors.append(str(e))
            return False
        bad = self.bad_fraction > 0 and self._rng.random() < self.bad_fraction
        if bad:
            value = self._malformed(value)
        self._produce(self.topics[logical].physical, value, key.encode(), timestamp or 0)
        if bad:
            self.stats.bad += 1
        else:
            self.stats.sent += 1
            self.stats.per_topic[logical] += 1
        return True

    def send_reference(self, records: Iterable[TimedEvent], timeout: float = 30.0) -> int:
        """Write reference records (key, record, topic, Kafka timestamp), e.g. the devices of
        `produce iot` before its first event, and wait until Kafka has them all: events sent
        after find them. Not counted in :attr:`stats` (they are not events); their number."""
        n = 0
        for key, record, logical, ts in records:
            value = self.encode(logical, record)
            while True:
                try:  # no delivery callback: the stats count events only
                    self.producer.produce(
                        self.topics[logical].physical, value, key.encode(), timestamp=ts
                    )
                    break
                except BufferError:
                    self.producer.poll(0.05)
            n += 1
        if self.producer.flush(timeout) != 0:
            raise ServiceUnreachable("Kafka", self.cfg.kafka.bootstrap_servers)
        return n

    def run(
        self,
        events: Iterator[Event | TimedEvent],
        *,
        rate: float | None = None,
        duration: float | None = None,
        count: int | None = None,
        progress: TextIO | None = None,
        label: str = "",
    ) -> Stats:
        """Send events at `rate`/s (None: as fast as possible) until `count`, `duration` or
        Ctrl-C; then flush and return the stats. Timed events keep their Kafka timestamp."""
        st = self.stats
        t0 = time.monotonic()
        report_every = _report_every(progress) if progress is not None else 1.0
        next_report = t0 + report_every
        check_every = 256 if rate is None else max(1, min(1000, int(rate / 200)))
        i = 0
        produce_poll = self.producer.poll
        # the hot path of send(), inlined: compiled encoder, produce, count. Records the
        # compiled encoder refuses, and every record when malformed values are mixed in, go
        # through send() (fastavro, InvalidRecord accounting, --bad-fraction).
        produce = self.producer.produce
        on_delivery = self._on_delivery
        topics = self.topics
        per_topic = st.per_topic
        send = self.send
        inline = self.bad_fraction <= 0
        # the wall clock against the monotonic one: a step makes live events late in Kafka
        # (stamped before it, sent after it), which the summary then says
        clock = ClockSteps()
        clock.observe()
        st.clock_steps = clock.steps
        try:
            for ev in events:
                if count is not None and i >= count:
                    break
                i += 1
                if len(ev) == 3:
                    key, record, logical = ev  # type: ignore[misc]
                    ts = 0
                else:
                    key, record, logical, ts = ev  # type: ignore[misc]
                tp = topics.get(logical) if inline else None
                if tp is None or tp.fast is None:
                    send(key, record, logical, ts)
                else:
                    try:
                        value = tp.fast(record)
                    except Exception:  # noqa: BLE001 - not exactly typed: send() decides
                        send(key, record, logical, ts)
                    else:
                        k = key.encode()
                        try:  # a timestamp= argument costs ~0.3 us: only when there is one
                            if ts:
                                produce(
                                    tp.physical, value, k, on_delivery=on_delivery, timestamp=ts
                                )
                            else:
                                produce(tp.physical, value, k, on_delivery=on_delivery)
                        except BufferError:
                            self._produce(tp.physical, value, k, ts)
                        st.sent += 1
                        per_topic[logical] += 1
                if i % check_every == 0:
                    now = time.monotonic()
                    step = clock.observe()
                    if step is not None and progress is not None:
                        progress.write(
                            f"\n{label}the wall clock stepped {step}: events stamped before it "
                            "reach Kafka after it, late (late.*)\n"
                        )
                    if duration is not None and now - t0 >= duration:
                        break
                    if rate is not None:
                        ahead = t0 + i / rate - now
                        if ahead > 0:
                            time.sleep(ahead)
                    produce_poll(0)  # serve delivery callbacks
                    if progress is not None and now >= next_report:
                        st.elapsed = now - t0
                        self._progress(progress, label)
                        next_report = now + report_every
        except KeyboardInterrupt:
            st.interrupted = True
        st.elapsed = time.monotonic() - t0
        self.flush()
        if progress is not None:
            self._progress(progress, label, final=True)
        return st

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; the number still undelivered."""
        try:
            return int(self.producer.flush(timeout))
        except KeyboardInterrupt:
            return int(self.producer.flush(5))

    def _progress(self, out: TextIO, label: str, final: bool = False) -> None:
        st = self.stats
        line = (
            f"{label}{st.sent + st.bad:>12,} sent {st.rate:>9,.0f}/s  delivered {st.delivered:,}  "
            f"errors {st.failed:,}  invalid {st.invalid:,}  malformed {st.bad:,}"
        )
        out.write(("\r" + line + ("\n" if final else "")) if _terminal(out) else line + "\n")
        out.flush()


def _terminal(out: TextIO) -> bool:
    """Whether progress goes to a terminal, where its line is rewritten in place."""
    return hasattr(out, "isatty") and out.isatty()


def _report_every(out: TextIO) -> float:
    """Seconds between progress lines: 1 on a terminal (the line is rewritten in place), 10 in
    a log or pipe, where each is a line of its own (120 lines for the demo's two minutes)."""
    return 1.0 if _terminal(out) else 10.0


def progress_stream() -> TextIO:
    return sys.stderr
