"""The jobs' Python decode alone: µs per record of `decode_batch` (issue 17), no Flink, no services.

    .venv/bin/python bench/decode.py [--records 50000] [RECORD_NAME ...]

Encodes `--records` seeded records of each source schema (newest .avsc, Confluent framing) and
times `flink_jobs.decoding.decode_batch` over them with the job's validation, as the decode UDF
runs it per Arrow batch. Best of 3 passes; the registry is pre-filled (one schema id).
"""

from __future__ import annotations

import argparse
import io
import random
import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sample(schema: Any, rng: random.Random) -> dict[str, Any]:
    """A seeded record of `schema` (timestamps in 2026, numbers valid for the job's checks)."""

    def value(t: Any) -> Any:
        if isinstance(t, list):
            return value([x for x in t if x != "null"][0])
        if isinstance(t, dict):
            if t.get("logicalType") == "timestamp-millis":
                return 1_767_323_045_678 + rng.randrange(100_000)
            if t["type"] == "enum":
                return t["symbols"][rng.randrange(len(t["symbols"]))]
            if t["type"] == "map":
                return {"k": value(t["values"])}
            if t["type"] == "array":
                return [value(t["items"])]
            return value(t["type"])
        return {
            "string": f"s{rng.randrange(1000)}", "double": rng.random() * 100, "float": 1.0,
            "int": 200, "long": rng.randrange(1000), "boolean": True, "bytes": b"x",
        }[t]  # fmt: skip

    return {f["name"]: value(f["type"]) for f in schema["fields"]}


def measure(record: str, n: int, passes: int = 3) -> float:
    """µs per record of decode_batch over `n` framed records of `record`, best of `passes`."""
    import fastavro

    from flink_jobs import validation
    from flink_jobs.decoding import (
        decode_batch,
        job_reader,
        job_registry,
        reader_fields,
        timestamp_fields,
    )
    from flinkpulse.avro import millis_as_long
    from flinkpulse.schemas import latest_schema

    validate = {
        "flinkpulse.iot.SensorReading": validation.sensor_reading,
        "flinkpulse.gaming.PlayerEvent": validation.player_event,
        "flinkpulse.web.AccessLog": validation.access_log,
        "flinkpulse.iot.SecurityEvent": validation.security_event,
    }.get(record)
    schema = latest_schema(record)
    writer = fastavro.parse_schema(schema)
    rng = random.Random(1)
    values = []
    for _ in range(n):
        buf = io.BytesIO()
        buf.write(b"\x00" + struct.pack(">I", 1))
        fastavro.schemaless_writer(buf, writer, sample(schema, rng))
        values.append(buf.getvalue())
    registry = job_registry("http://unused")
    registry.raw[1] = schema  # pre-filled: no registry service
    registry._parsed[1] = fastavro.parse_schema(millis_as_long(schema))
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
    names = a.schemas or [
        "flinkpulse.iot.SensorReading",
        "flinkpulse.gaming.PlayerEvent",
        "flinkpulse.web.AccessLog",
        "flinkpulse.iot.SecurityEvent",
    ]
    for record in names:
        us = measure(record, a.n)
        print(f"{record:<32} {us:6.2f} µs/record  {1e6 / us:>9,.0f} records/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
