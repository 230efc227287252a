"""Helpers for tests against the running pipeline: deploy jobs under a prefix, write scripted
records with known offsets, read topics until a condition holds (bounded waits)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

from flinkpulse.bench.records import Encoder, register
from flinkpulse.config import Config
from flinkpulse.flinkrest import FlinkRest, job_name
from flinkpulse.flinkrun import submit_jobs
from flinkpulse.producer import Producer
from flinkpulse.schemas import latest_schema
from flinkpulse.topics import ensure_topics

RECORDS = {
    "gaming.player-events": "flinkpulse.gaming.PlayerEvent",
    "iot.sensor-readings": "flinkpulse.iot.SensorReading",
    "iot.security-events": "flinkpulse.iot.SecurityEvent",
    "web.access-logs": "flinkpulse.web.AccessLog",
}


@contextlib.contextmanager
def deployment(
    base: Config,
    prefix: str,
    jobs: list[str],
    before: Callable[[Config], None] | None = None,
) -> Iterator[Config]:
    """Submit `jobs` (with one client: flinkrun.submit_jobs) with topics prefixed `prefix.`;
    cancel them afterwards, also when a submission failed. `before(cfg)` writes input once the
    topics exist and before the jobs start (they read from the earliest offset)."""
    cfg = base.with_prefix(f"{prefix}.")
    ensure_topics(cfg)
    try:
        if before is not None:
            before(cfg)
        submit_jobs(cfg, jobs)
        yield cfg
    finally:
        rest = FlinkRest(cfg)
        for job in jobs:  # by name: a submission that timed out still left its job
            for j in rest.running(job_name(cfg, job)):
                with contextlib.suppress(Exception):
                    rest.cancel(j["jid"])


def scoped(base: Config, prefix: str) -> Config:
    """A copy of `base` whose topics are prefixed `prefix.` and whose ClickHouse database is
    `prefix` (one test's own data)."""
    cfg = base.derive(kafka={"topic_prefix": f"{prefix}."}, clickhouse={"database": prefix})
    return cfg


class Writer:
    """Produces to prefixed source topics, remembering (partition, offset) -> case of each record."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        # up to the broker's 4 MB limit (librdkafka's default of 1 MB would refuse a 2 MB record)
        self.p = Producer(
            {**cfg.kafka.client_conf(), "enable.idempotence": True, "message.max.bytes": 4_000_000}
        )
        self.encoders: dict[str, Encoder] = {}
        self.cases: dict[tuple[str, int, int], str] = {}
        self.produced: dict[str, dict[str, int]] = {}

    def encoder(self, logical: str) -> Encoder:
        if logical not in self.encoders:
            topic = self.cfg.kafka.topic(logical)
            schema = latest_schema(RECORDS[logical])
            self.encoders[logical] = Encoder(
                register(self.cfg.registry.url, f"{topic}-value", schema), schema
            )
        return self.encoders[logical]

    def send(
        self, logical: str, case: str, key: bytes | None, value: bytes, timestamp: int = 0
    ) -> None:
        """Produce one record; `timestamp` is its Kafka timestamp (ms), 0 = now."""
        topic = self.cfg.kafka.topic(logical)

        def done(err: Any, msg: Any) -> None:
            assert err is None, err
            self.cases[(msg.topic(), msg.partition(), msg.offset())] = case

        self.p.produce(topic, key=key, value=value, on_delivery=done, timestamp=timestamp)
        per = self.produced.setdefault(logical, {})
        per[case] = per.get(case, 0) + 1

    def avro(
        self, logical: str, case: str, rec: dict[str, Any], key: Any = "", ts: int | None = None
    ) -> None:
        """Encode and produce `rec`. Scripted records run on a simulated clock: their Kafka
        timestamp is their event time unless `ts` says when they reached Kafka."""
        k = rec.get(_KEY[logical]) if key == "" else key
        value = self.encoder(logical)(rec)
        stamp = rec["event_time"] if ts is None else ts
        self.send(logical, case, k.encode() if isinstance(k, str) else k, value, stamp)

    def security_events(self, prefix: str, events: list[tuple[int, str, str]]) -> None:
        """Scripted security events (time, home, kind): ids `<prefix>-<i>`, each home's one
        device `<home>-dev` in the hall."""
        for i, (t, home, kind) in enumerate(events):
            rec = {
                "event_id": f"{prefix}-{i}", "home_id": home, "device_id": f"{home}-dev",
                "room": "hall", "kind": kind, "event_time": t,
            }  # fmt: skip
            self.avro("iot.security-events", "scripted", rec)

    def flush(self) -> None:
        assert self.p.flush(30) == 0


def kill_event(i: int, t: int, player: str) -> dict[str, Any]:
    """A gaming.player-events KILL by `player` at event time `t`, event id ``k<i>``."""
    return {
        "event_id": f"k{i}", "match_id": "m1", "player_id": player, "team": "RED",
        "event_type": "KILL", "target_player_id": "victim", "damage": 100.0, "headshot": False,
        "weapon": "rifle", "event_time": t, "platform": None,
    }  # fmt: skip


_KEY = {
    "gaming.player-events": "player_id",
    "iot.sensor-readings": "device_id",
    "iot.security-events": "home_id",
    "web.access-logs": "client_ip",
}


class Reader:
    """Everything in one prefixed topic so far (read_committed), kept across polls."""

    def __init__(self, cfg: Config, logical: str, avro: bool = False) -> None:
        self.topic = cfg.kafka.topic(logical)
        self.c = Consumer(
            {
                **cfg.kafka.client_conf(),
                "group.id": f"reader-{time.time_ns()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "fetch.message.max.bytes": 8 * 1024 * 1024,
            }
        )
        md = self.c.list_topics(self.topic, timeout=10).topics[self.topic]
        self.partitions = sorted(md.partitions)
        self.c.assign([TopicPartition(self.topic, p, 0) for p in self.partitions])
        #: the consumer's errors, kept for a timeout's message
        self.errors: list[str] = [] if md.error is None else [f"metadata: {md.error}"]
        self.de = (
            AvroDeserializer(SchemaRegistryClient({"url": cfg.registry.url})) if avro else None
        )
        self.msgs: list[Any] = []
        self.values: list[Any] = []

    def poll(self, seconds: float = 1.0) -> list[Any]:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            m = self.c.poll(0.2)
            if m is None:
                continue
            if m.error():
                self.errors = [*self.errors[-4:], str(m.error())]
                continue
            self.msgs.append(m)
            self.values.append(self.de(m.value(), None) if self.de else m.value())
        return self.msgs

    def until(self, pred: Callable[[Reader], bool], timeout: float, what: str) -> Reader:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(1.0)
            if pred(self):
                return self
        raise AssertionError(
            f"timed out after {timeout:.0f}s waiting for {what} in {self.topic}: "
            f"{len(self.msgs)} read from partitions {self.partitions}, "
            f"watermarks {self.watermarks()}, errors {self.errors}"
        )

    def watermarks(self) -> dict[int, tuple[int, int]] | str:
        """partition -> (low, high) offsets, as the broker has them (for a timeout's message)."""
        try:
            return {
                p: self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5)
                for p in self.partitions
            }
        except Exception as e:  # noqa: BLE001 - only ever part of an error message
            return repr(e)

    def settle(self, quiet: float = 3.0) -> Reader:
        """Poll until nothing new arrived for `quiet` seconds (nothing more, e.g. no duplicate)."""
        n = -1
        while n != len(self.msgs):
            n = len(self.msgs)
            self.poll(quiet)
        return self

    def headers(self, m: Any) -> dict[str, str]:
        return {k: v.decode() for k, v in (m.headers() or [])}

    def close(self) -> None:
        self.c.close()


def settle_all(readers: Sequence[Reader], quiet: float = 3.0) -> None:
    """Poll `readers` in turn until none got anything new for `quiet` seconds: one wait for
    all of them, where `Reader.settle` on each waits `quiet` seconds per topic."""
    n = -1
    last = time.monotonic()
    while True:
        for r in readers:
            r.poll(0.2)
        got = sum(len(r.msgs) for r in readers)
        if got != n:
            n, last = got, time.monotonic()
        elif time.monotonic() - last >= quiet:
            return


def wait(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
