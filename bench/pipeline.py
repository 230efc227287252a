"""The whole pipeline's sustained rate: the four jobs and a loader of every table (issue 17).

    .venv/bin/python -u bench/pipeline.py [--steps 5000,10000,20000,50000] [--step-seconds 120]
        [--heap]

On the running stack (kafka, registry, clickhouse, flink), as configured (no setting changed
but the loader's flush interval, at most 0.5 s as in the latency run), on topics and a
ClickHouse database of its own. The background producer sends all three domains at each
step's rate; a step holds when the producer kept the rate and the summed lag of the four jobs
and the loader shows no upward trend over the step's second half (a least-squares fit: the
lag saws with each window's results; flinkpulse/bench/e2e.py, `pipeline`). The full
`flinkpulse bench` runs the same as part of its e2e section. Prints one line per step as it
ends (its lag samples, their trend and every job's latest checkpoint), then a summary line.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from flink_jobs import JOBS
    from flinkpulse.bench.e2e import pipeline
    from flinkpulse.config import load_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", default="5000,10000,20000,50000", help="events/s, comma-separated")
    p.add_argument("--step-seconds", type=float, default=120)
    p.add_argument(
        "--twin",
        action="append",
        default=[],
        choices=list(JOBS),
        help="run this job as its built-in twin (diagnostic; repeatable)",
    )
    p.add_argument(
        "--heap",
        action="store_true",
        help="at each step's end, the TaskManagers' live objects by class (jcmd; a full GC)",
    )
    a = p.parse_args(argv)
    from flinkpulse.bench import stop_on_sigterm

    stop_on_sigterm()  # a killed run cancels its jobs
    try:
        steps = [float(x) for x in a.steps.split(",") if x]
    except ValueError:
        p.error(f"--steps: comma-separated numbers, not {a.steps!r}")
    cfg = load_config().with_prefix(f"pipe{uuid.uuid4().hex[:6]}.")
    res = pipeline(
        cfg,
        steps,
        a.step_seconds,
        tuple(a.twin),
        on_step=lambda s: print(json.dumps(s), flush=True),  # with its lag samples
        heap=a.heap,
    )
    print(json.dumps({k: v for k, v in res.items() if k != "steps"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
