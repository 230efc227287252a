"""Backfill of one hour vs the streaming rate, and the checkpointed state as it grows (issues
18 and 22); see bench/README.md, "Backfill of an hour".

    .venv/bin/python bench/backfill_hour.py [device_stats] [--rate 300] [--rounds 1]

On the running stack (kafka, registry, flink). Produces an hour of event time at --rate events/s
of event time on a simulated clock two hours back, then per round streams it and backfills it
(flinkpulse/bench/backfill.py). Prints one JSON line per run, then the state-size points.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from flinkpulse.bench.backfill import run
    from flinkpulse.bench.jobs import JOB_TOPICS
    from flinkpulse.config import load_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("job", nargs="?", default="device_stats", choices=sorted(JOB_TOPICS))
    p.add_argument("--rate", type=float, default=300.0, help="events/s of event time")
    p.add_argument("--rounds", type=int, default=1)
    a = p.parse_args(argv)
    res = run(load_config(), a.job, a.rate, a.rounds)
    print(json.dumps({"job": res["job"], "events": res["events"], "hour": res["hour"]}))
    for r in res["runs"]:
        print(json.dumps({k: v for k, v in r.items() if k != "checkpoints"}))
    for r in res["runs"]:
        for c in r.get("checkpoints", []):
            print(json.dumps({"round": r["round"], **c}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
