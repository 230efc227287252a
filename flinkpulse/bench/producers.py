"""Producers: Avro events/s per domain on one core vs raw-bytes confluent-kafka `produce()`.

The logic of bench/producer_throughput.py: per domain, on the same generated records, the real
path (generate + fastavro encode + Confluent framing + produce with delivery accounting, as
`flinkpulse produce --rate 0`) and a raw-bytes produce of the already-encoded values. The
process is pinned to one core while measuring (librdkafka's threads started then share it).
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

from flinkpulse.config import Config


def run(cfg: Config, events: int, cpu: int = 0) -> dict[str, Any]:
    from producers import streams
    from producers.base import TimeConfig, take
    from producers.kafka import AvroKafkaProducer

    cfg = copy.deepcopy(cfg)
    cfg.kafka.topic_prefix = f"{cfg.kafka.topic_prefix}prod."
    before = os.sched_getaffinity(0)
    pinned = cpu >= 0 and cpu in before
    rows = []
    try:
        if pinned:
            os.sched_setaffinity(0, {cpu})
        tc = TimeConfig(events_per_second=50_000)
        for domain in streams.DOMAINS:
            prod = AvroKafkaProducer(cfg, streams.topics(domain), producer_conf={"log_level": 0})
            stream = streams.stream(domain, 1, tc)
            batch = take(stream, events)
            payloads = [
                (k.encode(), prod.encode(t, r), prod.topics[t].physical) for k, r, t in batch
            ]
            p = prod.producer
            t0 = time.perf_counter()
            for key, value, topic in payloads:
                while True:
                    try:
                        p.produce(topic, value, key)
                        break
                    except BufferError:
                        p.poll(0.05)
            p.flush(60)
            raw = events / (time.perf_counter() - t0)
            del payloads, batch
            # the same stream goes on (its pools were set up before any timing)
            stats = prod.run(stream, count=events)
            avro = events / stats.elapsed
            rows.append(
                {
                    "domain": domain,
                    "avro_events_per_s": round(avro),
                    "raw_bytes_msgs_per_s": round(raw),
                    "ratio": round(avro / raw, 3),
                    "failed": stats.failed,
                }
            )
    finally:
        if pinned:
            os.sched_setaffinity(0, before)
    return {"events_per_domain": events, "pinned_cpu": cpu if pinned else None, "rows": rows}
