"""How long `jobs submit all` takes with Python UDF workers forked from a warm interpreter
(``stack.flink_udf_fork``, the default) against fresh ones (issue 17, 2026-12-07).

    .venv/bin/flinkpulse stack up kafka registry flink
    .venv/bin/python -u bench/worker_start.py [--rounds 2]

Each round submits the four jobs twice, interleaved: once as is (the cluster's
`python.executable`, the launcher of flinkpulse/stack/udf_fork.py) and once with the jobs'
`python.executable` set to the venv's interpreter (a fresh interpreter per worker, as before).
`jobs submit` returns when every task of a job is RUNNING, which is after its Python workers
have connected. Every job of the stack is cancelled before each submission. Prints the seconds
of each submission and the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLINKPULSE = [sys.executable, "-m", "flinkpulse"]


def cancel_all(rest: str) -> None:
    """Cancel every job of the cluster and wait until none runs."""
    with urllib.request.urlopen(f"{rest}/jobs", timeout=10) as r:
        jobs = json.loads(r.read())["jobs"]
    live = [j["id"] for j in jobs if j["status"] not in ("FINISHED", "CANCELED", "FAILED")]
    for jid in live:
        req = urllib.request.Request(f"{rest}/jobs/{jid}?mode=cancel", method="PATCH")
        urllib.request.urlopen(req, timeout=10).close()
    deadline = time.monotonic() + 60
    while live and time.monotonic() < deadline:
        with urllib.request.urlopen(f"{rest}/jobs", timeout=10) as r:
            states = {j["id"]: j["status"] for j in json.loads(r.read())["jobs"]}
        live = [j for j in live if states.get(j) not in ("CANCELED", "FINISHED", "FAILED")]
        time.sleep(0.5)
    time.sleep(3)  # the workers exit


def submit_all(extra: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [*FLINKPULSE, *extra, "jobs", "submit", "all"], cwd=ROOT, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rest", default="http://127.0.0.1:8081")
    args = p.parse_args(argv)
    fresh = ["--set", f"flink.extra_options=python.executable={Path(sys.executable)}"]
    times: dict[str, list[float]] = {"forked": [], "fresh": []}
    for n in range(1, args.rounds + 1):
        for name, extra in (("fresh", fresh), ("forked", [])):
            cancel_all(args.rest)
            times[name].append(submit_all(extra))
            print(f"round {n} {name}: {times[name][-1]:.1f} s", flush=True)
    cancel_all(args.rest)
    for name, ts in times.items():
        print(f"{name}: median {statistics.median(ts):.1f} s of {len(ts)}")


if __name__ == "__main__":
    main()
