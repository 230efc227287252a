"""Cancel a busy job again and again; did a TaskManager die of it? (issue 17, vectorized decode)

    .venv/bin/python -u bench/cancel_repro.py [--job device_stats] [--vectorized] [--times 6]
        [--events 1000000] [--after 8,20]

On the running stack (kafka, registry, flink). Fills the job's topics once under a fresh
prefix, then `--times` times: submits the job over that bounded range, lets it read for a
random time in `--after` (seconds, once its source has read records), cancels it through the
REST API, and checks the TaskManagers: still registered, and no "FATAL" in their logs since the
start. A cancel interrupts the task thread, as a failover does; see bench/README.md for why
the pandas (Arrow) decode cannot survive that interrupt.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _fatal_lines(logs: list[Path], offsets: dict[Path, int]) -> list[str]:
    """Lines of the TaskManager logs, written since `offsets`, that report a fatal error."""
    out = []
    for log in logs:
        with log.open("rb") as f:
            f.seek(offsets.get(log, 0))
            text = f.read().decode("utf-8", "replace")
        out += [ln for ln in text.splitlines() if "FATAL" in ln or "Fatal error" in ln]
    return out


def main(argv: list[str] | None = None) -> int:
    from flinkpulse.bench.jobs import JOB_TOPICS, fill, source_reads
    from flinkpulse.config import load_config
    from flinkpulse.flinkrest import FlinkRest
    from flinkpulse.flinkrun import submit
    from producers import streams

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--job", choices=sorted(JOB_TOPICS), default="device_stats")
    p.add_argument("--vectorized", action="store_true", help="flink.vectorized_decode = true")
    p.add_argument("--times", type=int, default=6)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--after", default="8,20", help="min,max seconds of reading before cancel")
    p.add_argument(
        "--arrow-batch", type=int, default=0, help="flink.arrow_batch_size (0: as configured)"
    )
    p.add_argument(
        "--read-timeout", type=float, default=180, help="seconds a run may take to read a record"
    )
    a = p.parse_args(argv)
    lo, hi = (float(x) for x in a.after.split(","))

    base = load_config()
    flink: dict[str, object] = {"vectorized_decode": a.vectorized}
    if a.arrow_batch:
        flink["arrow_batch_size"] = a.arrow_batch
    cfg = base.with_prefix(f"cx{uuid.uuid4().hex[:6]}.").derive(flink=flink)
    # the domains that write the job's source topics
    domains = tuple(d for d in streams.DOMAINS if set(streams.topics(d)) & set(JOB_TOPICS[a.job]))
    filled = fill(cfg, a.events, domains=domains)
    print(json.dumps({"filled": filled["per_topic"], "fill_s": filled["fill_s"]}), flush=True)
    logs = sorted((base.stack.state_path() / "flink" / "log").glob("flink-taskmanager-*.log"))
    offsets = {log: log.stat().st_size for log in logs}
    rest = FlinkRest(cfg)
    tms = len(rest.call("GET", "/taskmanagers")["taskmanagers"])
    extra = ["--from", str(filled["from_ms"]), "--to", str(filled["to_ms"])]
    for i in range(a.times):
        jid = submit(cfg, a.job, extra_args=extra)
        deadline = time.monotonic() + a.read_timeout
        while not source_reads(rest, jid):  # until it reads: the Python workers are up, busy
            if time.monotonic() > deadline:  # a job that fails before reading would hang here
                why = rest.exception(jid)  # before the cancel, which would be the newest
                rest.cancel(jid)
                print(json.dumps({"round": i, "error": f"no record read in {a.read_timeout:g} s",
                                  "exception": why[:500]}), flush=True)  # fmt: skip
                return 1
            time.sleep(0.5)
        after = random.uniform(lo, hi)
        time.sleep(after)
        rest.cancel(jid)
        state = rest.wait_state(jid, ("CANCELED", "FINISHED", "FAILED"))
        time.sleep(3)  # a TaskManager that dies of it deregisters within seconds
        alive = len(rest.call("GET", "/taskmanagers")["taskmanagers"])
        fatal = _fatal_lines(logs, offsets)
        row = {"round": i, "cancel_after_s": round(after, 1), "state": state}
        print(json.dumps(row | {"taskmanagers": f"{alive}/{tms}", "fatal": fatal[:3]}), flush=True)
        if fatal or alive < tms:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
