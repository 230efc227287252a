"""How long the loader takes to start and find nothing to load (issue 17, 2026-12-05).

    .venv/bin/python -u bench/loader_start.py [--runs 2] [--partitions 3]

On the running stack (kafka, registry, clickhouse). Under a fresh prefix and database, runs
`Loader(every topic).run(once=True)` `--runs` times (the first one also creates the topics and
migrates the database) and prints each run's seconds; then drops the database and the topics.
What it measured: end offsets asked one partition at a time on the consumer's fetch connection
took ~17 s of every such run (bench/README.md).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    from flinkpulse.clickhouse.migrate import client
    from flinkpulse.config import load_config
    from flinkpulse.loader.core import Loader
    from flinkpulse.topics import delete_prefixed

    p = argparse.ArgumentParser(prog="loader_start")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--partitions", type=int, default=3)
    args, _ = p.parse_known_args(argv)
    prefix = f"ls{uuid.uuid4().hex[:6]}"
    cfg = load_config(
        overrides=[
            f"kafka.topic_prefix={prefix}.",
            f"clickhouse.database={prefix}",
            f"kafka.partitions={args.partitions}",
        ]
    )
    try:
        for i in range(args.runs):
            t0 = time.monotonic()
            rows = Loader(cfg).run(once=True).rows
            print(f"run {i + 1}: {time.monotonic() - t0:.1f} s, {rows} rows", flush=True)
    finally:
        ch = client(cfg)
        ch.command(f"DROP DATABASE IF EXISTS `{prefix}`")
        ch.close()
        delete_prefixed(cfg)


if __name__ == "__main__":
    main(sys.argv[1:])
