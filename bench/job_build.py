"""How long a warm PyFlink client takes to build the four jobs (issue 17, 2026-12-07).

    .venv/bin/python -u bench/job_build.py [--rounds 3]

No stack needed: one local PyFlink client (its own gateway JVM) builds each job once to warm
up, then builds all four `--rounds` times; each build is the job's `build()` and
`attach_inserts()`, what the warm job client (flinkpulse/submitter.py) does before it submits,
without the submission. Prints each round's seconds per job and the median four-job total.
What it measured: the sinks' schemas taken through PyFlink's Python types cost ~1.4 s a job
(bench/README.md).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_once(cfg: Any, job: str) -> float:
    """Seconds to build `job` into a new table environment of this client."""
    from flink_jobs import common

    mod = importlib.import_module(f"flink_jobs.{job}")
    _, t_env = common.create_env(cfg, job)
    ctx = common.JobContext(cfg=cfg, t_env=t_env, job=job, startup_mode="earliest-offset")
    start = time.perf_counter()
    mod.build(t_env, cfg, ctx)
    common.attach_inserts(ctx)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    from flink_jobs import JOBS
    from flinkpulse.config import load_config

    p = argparse.ArgumentParser(prog="job_build")
    p.add_argument("--rounds", type=int, default=3)
    args, _ = p.parse_known_args(argv)
    cfg = load_config()
    for job in JOBS:
        print(f"warm-up {job}: {build_once(cfg, job):.2f} s", flush=True)
    totals = []
    for n in range(args.rounds):
        each = {job: build_once(cfg, job) for job in JOBS}
        totals.append(sum(each.values()))
        print(f"round {n + 1}: " + ", ".join(f"{j} {s:.2f} s" for j, s in each.items()), flush=True)
    print(f"four jobs, median of {args.rounds}: {statistics.median(totals):.2f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
