"""Producer throughput: Avro events/s per domain (generation + fastavro encoding + produce)
vs raw-bytes confluent-kafka produce, in the same run, one process pinned to one core.

    .venv/bin/python bench/producer_throughput.py [--events 200000] [--cpu 0] [--domains gaming,iot,web]

Needs Kafka and the schema registry (`flinkpulse stack up kafka registry`). Writes to topics
prefixed `bench.<pid>.` and deletes them afterwards. Goal: >= 50,000 Avro events/s per core.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

from flinkpulse.config import load_config
from producers import streams
from producers.base import TimeConfig, take
from producers.kafka import AvroKafkaProducer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--cpu", type=int, default=0, help="core to pin the process to (-1: no pin)")
    ap.add_argument("--domains", default="gaming,iot,web")
    args = ap.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})  # before librdkafka starts its threads
    cfg = copy.deepcopy(load_config())
    cfg.kafka.topic_prefix = f"bench.{os.getpid()}."
    n = args.events
    tc = TimeConfig(events_per_second=50_000)
    print(f"{n:,} events per domain, pinned to cpu {args.cpu}, load {os.getloadavg()[0]:.1f}")
    rows = []
    created: list[str] = []
    for domain in args.domains.split(","):
        prod = AvroKafkaProducer(cfg, streams.topics(domain), producer_conf={"log_level": 0})
        created += [cfg.kafka.topic(t) for t in streams.topics(domain)]
        # generation alone (the one-off setup of pools is not timed)
        stream = streams.stream(domain, 1, tc)
        events = [next(stream)]
        t0 = time.perf_counter()
        events += take(stream, n - 1)
        gen = (n - 1) / (time.perf_counter() - t0)
        # encoding alone (on the generated records)
        t0 = time.perf_counter()
        for _, rec, topic in events:
            prod.encode(topic, rec)
        enc = n / (time.perf_counter() - t0)
        # raw bytes produce: the same payload sizes, no Avro
        payloads = [(k.encode(), prod.encode(t, r), prod.topics[t].physical) for k, r, t in events]
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
        raw = n / (time.perf_counter() - t0)
        del payloads, events
        # the real thing: generate + encode + produce with delivery accounting
        stream = streams.stream(domain, 2, tc)  # setup (pools) outside the timing
        first = next(stream)
        prod.send(*first)
        stats = prod.run(stream, count=n)
        full = n / stats.elapsed
        assert stats.failed == 0 and stats.invalid == 0
        rows.append((domain, full, raw, full / raw, gen, enc))
    print()
    print(
        "| domain | Avro events/s (gen+encode+produce) | raw-bytes produce msgs/s | ratio | generate only /s | encode only /s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for d, full, raw, ratio, gen, enc in rows:
        print(f"| {d} | {full:,.0f} | {raw:,.0f} | {ratio:.2f} | {gen:,.0f} | {enc:,.0f} |")
    from confluent_kafka.admin import AdminClient

    AdminClient(cfg.kafka.client_conf()).delete_topics(created)


if __name__ == "__main__":
    main()
