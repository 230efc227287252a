"""The jobs' Python decode alone: µs per record of `decode_batch` (issue 17), no Flink, no services.

    .venv/bin/python bench/decode.py [--records 50000] [RECORD_NAME ...]

Encodes the first `--records` records of each source schema that the producers' seeded stream
writes (newest .avsc, Confluent framing) and times `flink_jobs.decoding.decode_batch` over them
with the job's validation, as the decode UDF runs it per Arrow batch. Best of 3 passes; the
registry is told the schema (`Registry.known`), not asked.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: the schema id the records are framed with (the registry is told it, not asked)
SCHEMA_ID = 1
#: event time of the first record: 2026-01-02, as the producers' simulated clock
START_MS = 1_767_312_000_000


def source_topic(record: str) -> str:
    """The logical source topic `record` is written to (topics.SOURCE_RECORDS, inverted)."""
    from flinkpulse.topics import SOURCE_RECORDS

    return {rec: t for t, rec in SOURCE_RECORDS.items()}[record]


def records(record: str, n: int) -> list[bytes]:
    """The first `n` records of `record` that the producers' seeded stream writes, framed."""
    from flinkpulse.bench.records import Encoder
    from flinkpulse.schemas import latest_schema
    from producers.base import TimeConfig
    from producers.streams import stream

    topic = source_topic(record)
    encode = Encoder(SCHEMA_ID, latest_schema(record))
    events = stream(topic.split(".")[0], 1, TimeConfig(start_ms=START_MS), False, timed=False)
    out: list[bytes] = []
    for _key, rec, t in events:
        if t == topic:
            out.append(encode(rec))
            if len(out) == n:
                return out
    raise SystemExit(f"{record}: the stream ended after {len(out)} records")


def measure(record: str, n: int, passes: int = 3) -> float:
    """µs per record of decode_batch over `n` framed records of `record`, best of `passes`."""
    from flink_jobs import validation
    from flink_jobs.decoding import (
        decode_batch,
        job_reader,
        job_registry,
        reader_fields,
        timestamp_fields,
    )
    from flinkpulse.schemas import latest_schema

    validate = validation.BY_TOPIC[source_topic(record)]
    schema = latest_schema(record)
    values = records(record, n)
    registry = job_registry("http://unused")
    registry.known(SCHEMA_ID, schema)  # no registry service
    reader = job_reader(schema)
    names = [name for name, _ in reader_fields(record)]
    millis = timestamp_fields(record)
    best = float("inf")
    for _ in range(passes):
        t = time.perf_counter()
        cols = decode_batch(registry, reader, values, names, millis, validate)
        best = min(best, time.perf_counter() - t)
        bad = [e for e in cols["error"] if e]
        if bad:
            raise SystemExit(f"{record}: {len(bad)} records refused, e.g. {bad[0]}")
    return best * 1e6 / n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("schemas", nargs="*", help="record names (default: the four sources)")
    p.add_argument("--records", dest="n", type=int, default=50_000)
    a = p.parse_args(argv)
    from flinkpulse.topics import SOURCE_RECORDS

    names = a.schemas or list(SOURCE_RECORDS.values())
    for record in names:
        us = measure(record, a.n)
        print(f"{record:<32} {us:6.2f} µs/record  {1e6 / us:>9,.0f} records/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
