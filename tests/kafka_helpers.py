"""Small Kafka helpers for tests: create topics, produce, consume everything until quiet."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from flinkpulse.producer import Producer


def create_topics(bootstrap: str, topics: list[str], partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics]
    )
    for _t, f in futures.items():
        try:
            f.result(timeout=30)
        except Exception as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for k, v in records:
        p.produce(topic, key=k, value=v)
    assert p.flush(30) == 0


def consume(
    bootstrap: str,
    topic: str,
    expect: int | None = None,
    timeout: float = 60,
    quiet: float = 3.0,
    committed: bool = True,
) -> list[Any]:
    """All messages of `topic` (read_committed); stops at `expect` messages or when quiet."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                if expect is None and out and time.monotonic() - last > quiet:
                    break
                continue
            out.append(m)
            last = time.monotonic()
            if expect is not None and len(out) >= expect:
                break
    finally:
        c.close()
    return out
