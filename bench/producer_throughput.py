"""Producer throughput: Avro events/s per domain (generation + encoding + produce) vs raw-bytes
confluent-kafka produce, in the same run, one process pinned to one core.

    .venv/bin/python bench/producer_throughput.py [--events 200000] [--cpu 0] [--domains gaming,iot,web]

A thin front end to flinkpulse/bench/producers.py (the same measurement as `flinkpulse bench
--sections producers`), printing a Markdown table. Needs Kafka and the schema registry
(`flinkpulse stack up kafka registry`). Writes to topics prefixed `bench.<pid>.` and deletes
them afterwards. Goal: >= 50,000 Avro events/s per core.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    """Parse the options, run the harness, print one row per domain."""
    from flinkpulse import topics
    from flinkpulse.bench import producers
    from flinkpulse.config import load_config

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--cpu", type=int, default=0, help="core to pin the process to (-1: no pin)")
    ap.add_argument("--domains", default="gaming,iot,web")
    args = ap.parse_args()
    cfg = load_config().with_prefix(f"bench.{os.getpid()}.")
    print(f"{args.events:,} events per domain, cpu {args.cpu}, load {os.getloadavg()[0]:.2f}")
    try:
        res = producers.run(cfg, args.events, args.cpu, args.domains.split(","))
    finally:
        topics.delete_prefixed(cfg)
    print()
    print("| domain (load) | Avro events/s | raw-bytes msgs/s | ratio | Avro /CPU-s | raw /CPU-s | "
          "CPU ratio | generate only /s | encode only /s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in res["rows"]:
        print(
            f"| {r['domain']} ({r['load_average']:.1f}) | {r['avro_events_per_s']:,} | "
            f"{r['raw_bytes_msgs_per_s']:,} | {r['ratio']:.2f} | {r['avro_events_per_cpu_s']:,} | "
            f"{r['raw_bytes_msgs_per_cpu_s']:,} | {r['cpu_ratio']:.2f} | {r['generate_per_s']:,} | "
            f"{r['encode_per_s']:,} |"
        )
        if r["failed"] or r["invalid"] or r["undelivered"]:
            print(f"  {r['domain']}: failed {r['failed']}, invalid {r['invalid']}, "
                  f"undelivered {r['undelivered']}")  # fmt: skip


if __name__ == "__main__":
    main()
