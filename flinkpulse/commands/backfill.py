"""`flinkpulse backfill JOB --from T1 --to T2`: recompute a job's results for a closed range."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from flinkpulse.commands.times import TIME_FORMS, epoch_ms
from flinkpulse.config import Config
from flinkpulse.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "backfill",
        help="recompute a job's windows and alerts for a closed time range",
        description="Re-runs JOB's .sql file (web_traffic in batch mode; the others as a "
        "bounded streaming run: temporal joins, incidents in arrival order) over the records "
        "of [FROM, TO) "
        "(a bounded Kafka read) and writes the windows wholly inside the range, and the alerts "
        "whose incident started in it, to the job's result topics. The loader's "
        "ReplacingMergeTree tables keep one row per window (read them with FINAL). "
        f"Times: {TIME_FORMS}.",
    )
    p.add_argument("job", help="player_stats | device_stats | web_traffic | security_alerts | all")
    p.add_argument(
        "--from", dest="start", type=epoch_ms, required=True, help="start of the range (inclusive)"
    )
    p.add_argument(
        "--to", dest="end", type=epoch_ms, required=True, help="end of the range (exclusive)"
    )
    p.set_defaults(func=_backfill)


def _backfill(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.commands.jobs import select_jobs
    from flinkpulse.flinkrest import backfill_name
    from flinkpulse.flinkrun import run_bounded

    jobs = select_jobs(args.job, extra=())
    start, end = args.start, args.end
    if end <= start:
        raise UsageError("--to must be after --from")
    # closed: every record of the range is in Kafka (it reaches Kafka up to the delay late)
    closed_at = end + int(cfg.flink.watermark_delay_s * 1000)
    if closed_at > time.time() * 1000:
        raise UsageError(
            f"the range is not closed yet: records of it may still arrive until "
            f"{datetime.fromtimestamp(closed_at / 1000, UTC):%Y-%m-%dT%H:%M:%S} UTC"
        )
    for job in jobs:
        t0 = time.monotonic()
        job_id = run_bounded(
            cfg,
            job,
            ["--from", str(start), "--to", str(end), "--backfill"],
            name=backfill_name(cfg, job),
        )
        took = time.monotonic() - t0
        print(f"{job:<16} backfilled [{start}, {end}) as {job_id} in {took:.0f} s", flush=True)
    return 0
