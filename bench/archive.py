"""Archive job throughput (issue 18): N generated records per source are in Kafka before the
archive job starts; the figure is the time from the job RUNNING until every record is in a
committed file (Parquet row counts from the footers, JSON lines counted), so it includes up
to one checkpoint interval of commit latency. Prints one line; record it in bench/README.md.

    .venv/bin/python bench/archive.py --records 25000 [--format json]
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from flinkpulse import archive, topics
from flinkpulse.bench.records import Encoder, register
from flinkpulse.config import load_config
from flinkpulse.flinkrest import FlinkRest, job_name
from flinkpulse.flinkrun import submit
from flinkpulse.schemas import TOPIC_RECORDS, latest_schema
from producers import streams
from producers.base import TimeConfig


def _rows(path: Path) -> int:
    if path.read_bytes()[:4] == b"PAR1":
        import pyarrow.parquet as pq

        return int(pq.read_metadata(path).num_rows)
    return len(archive.read_lines(path))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=25_000, help="per source")
    p.add_argument("--format", default="parquet", choices=["parquet", "json"])
    args = p.parse_args()
    n = args.records
    prefix = f"bencharch{uuid.uuid4().hex[:6]}."
    cfg = load_config(overrides=[f"archive.format={args.format}"]).with_prefix(prefix)
    topics.ensure_topics(cfg)
    producer = Producer({**cfg.kafka.client_conf(), "linger.ms": 50})
    enc = {}
    for logical in archive.SOURCE_TABLES:
        schema = latest_schema(TOPIC_RECORDS[logical])
        subject = f"{cfg.kafka.topic(logical)}-value"
        enc[logical] = Encoder(register(cfg.registry.url, subject, schema), schema)
    start = int(time.time() * 1000) - 1_200_000
    gen = streams.stream("all", 7, TimeConfig(start_ms=start, events_per_second=2000.0),
                         anomalies=False, timed=False)  # fmt: skip
    sent = dict.fromkeys(archive.SOURCE_TABLES, 0)
    clock = 0
    while any(v < n for v in sent.values()):
        key, rec, logical = next(gen)
        if sent[logical] < n:
            sent[logical] += 1
            clock = max(clock, int(rec["event_time"]))
            producer.produce(cfg.kafka.topic(logical), key=key.encode(),
                             value=enc[logical](rec), timestamp=clock)  # fmt: skip
            producer.poll(0)
    assert producer.flush(60) == 0

    def committed() -> int:
        return sum(
            _rows(f)
            for t in archive.SOURCE_TABLES.values()
            for f in archive.committed_files(archive.table_dir(cfg, t))
        )

    submit(cfg, "archive")
    t0 = time.monotonic()
    try:
        while committed() < 4 * n:
            assert time.monotonic() - t0 < 900, "timed out"
            time.sleep(1)
        took = time.monotonic() - t0
    finally:
        rest = FlinkRest(cfg)
        for j in rest.running(job_name(cfg, "archive")):
            with contextlib.suppress(Exception):
                rest.cancel(j["jid"])
    print(
        f"archive {args.format}: {4 * n} records (4 sources) committed {took:.1f} s after "
        f"RUNNING: {4 * n / took:,.0f} records/s (parallelism {cfg.flink.parallelism}, "
        f"checkpoint every {cfg.flink.checkpoint_interval_s:g} s)"
    )


if __name__ == "__main__":
    main()
