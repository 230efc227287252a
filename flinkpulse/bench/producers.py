"""Producers: Avro events/s per domain on one core vs raw-bytes confluent-kafka `produce()`.

The one implementation behind `flinkpulse bench --sections producers` and
bench/producer_throughput.py. Per domain, one process pinned to one core (before librdkafka
starts its threads, so they share it): generation alone, encoding alone (the producer's own
encoder: compiled, fastavro as fallback), raw-bytes `produce()` of the already-encoded values (no
Avro, no generation, no delivery callback), and the real path — generate + encode + Confluent
framing + `produce()` with delivery accounting (`AvroKafkaProducer.run`, as `flinkpulse produce
--rate 0`). Pool set-up (players, homes, IP pools) is not timed. Rates are per wall-clock
second and, steadier on a shared machine, per CPU-second of the process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from flinkpulse.config import Config


def run(
    cfg: Config, events: int, cpu: int = 0, domains: Sequence[str] | None = None
) -> dict[str, Any]:
    """Measure each domain (all three by default); rows of events/s and the Avro/raw ratio."""
    from producers import streams

    cfg = cfg.with_prefix(f"{cfg.kafka.topic_prefix}prod.")
    before = os.sched_getaffinity(0)
    pinned = cpu >= 0 and cpu in before
    rows = []
    try:
        if pinned:
            os.sched_setaffinity(0, {cpu})
        for domain in domains or streams.DOMAINS:
            rows.append(_domain(cfg, domain, events))
    finally:
        if pinned:
            os.sched_setaffinity(0, before)
    return {"events_per_domain": events, "pinned_cpu": cpu if pinned else None, "rows": rows}


def _domain(cfg: Config, domain: str, n: int) -> dict[str, Any]:
    from producers import streams
    from producers.base import TimeConfig, take
    from producers.kafka import AvroKafkaProducer

    load = os.getloadavg()[0]
    tc = TimeConfig(events_per_second=50_000)
    prod = AvroKafkaProducer(cfg, streams.topics(domain), producer_conf={"log_level": 0})
    # generation alone (pools are set up by the first next(), untimed)
    stream = streams.stream(domain, 1, tc)
    next(stream)
    t0 = time.perf_counter()
    batch = take(stream, n)
    gen = n / (time.perf_counter() - t0)
    # encoding alone, on the generated records
    encode = prod.encode
    t0 = time.perf_counter()
    values = [encode(t, r) for _, r, t in batch]
    enc = n / (time.perf_counter() - t0)
    # raw bytes: the same payloads, no Avro, no generation, no delivery callback
    physical = {t: tp.physical for t, tp in prod.topics.items()}
    payloads = [(physical[t], v, k.encode()) for (k, _, t), v in zip(batch, values, strict=True)]
    del batch, values
    p = prod.producer
    t0, c0 = time.perf_counter(), time.process_time()
    for topic, value, key in payloads:
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)
    raw = n / (time.perf_counter() - t0)
    raw_cpu = n / (time.process_time() - c0)
    del payloads
    # the real path, on a fresh stream (its set-up untimed)
    stream = streams.stream(domain, 2, tc)
    prod.send(*next(stream))
    sent0 = prod.stats.sent
    c0 = time.process_time()
    stats = prod.run(stream, count=n)
    avro_cpu = (stats.sent - sent0) / (time.process_time() - c0)
    avro = (stats.sent - sent0) / stats.elapsed
    return {
        "domain": domain,
        "avro_events_per_s": round(avro),
        "raw_bytes_msgs_per_s": round(raw),
        "ratio": round(avro / raw, 3),
        # per CPU-second of this process (librdkafka threads included): steadier than wall
        # clock on a shared machine, where the pinned core is not ours alone
        "avro_events_per_cpu_s": round(avro_cpu),
        "raw_bytes_msgs_per_cpu_s": round(raw_cpu),
        "cpu_ratio": round(avro_cpu / raw_cpu, 3),
        "generate_per_s": round(gen),
        "encode_per_s": round(enc),
        "failed": stats.failed,
        "invalid": stats.invalid,
        "undelivered": stats.sent + stats.bad - stats.delivered - stats.failed,
        "load_average": round(load, 2),
    }
