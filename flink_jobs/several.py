"""Several jobs from one client: `flink run -py flink_jobs/several.py --jobs a,b [job flags]`
builds and submits each job exactly as `flink run -py flink_jobs/<job>.py [job flags]` would,
one after the other, in the same Python process and client JVM.

Why: a `flink run` spends most of its time starting the client and warming its SQL planner
(about 20 s a job on 2 cores); one client for the four jobs pays that once
(`flinkpulse.flinkrun.submit_jobs`). Each job still runs as its own Flink job, with its own
name, state and restarts. Each prints `submitted <job>: job id <id>`; a job that fails to
build stops the ones after it, not the ones already submitted.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from flink_jobs import JOBS


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="several", add_help=False)
    p.add_argument("--jobs", required=True, help="comma-separated: " + ",".join(JOBS))
    args, rest = p.parse_known_args(argv)
    jobs = [j for j in args.jobs.split(",") if j]
    unknown = [j for j in jobs if j not in JOBS]
    if unknown or not jobs:
        p.error(f"unknown job(s) {', '.join(unknown) or '(none)'} (jobs: {', '.join(JOBS)})")
    for job in jobs:
        importlib.import_module(f"flink_jobs.{job}").main(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
