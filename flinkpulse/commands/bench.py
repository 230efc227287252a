"""`flinkpulse bench [--quick]`: every stage measured as ratios in one run (flinkpulse.bench)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flinkpulse.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bench",
        help="benchmark producers, jobs (and their profile), loader, end to end and start-up "
        "on the local stack",
        description="Runs on the local stack (kafka, registry, clickhouse, flink must be up); "
        "writes bench/results/<date>-<machine>.json, .md and PNG plots.",
    )
    p.add_argument("--quick", action="store_true", help="a smoke check in under 3 minutes")
    p.add_argument("--sections", help="comma-separated: producers,jobs,profile,loader,e2e,startup")
    p.add_argument("--out", type=Path, help="output directory (default bench/results)")
    p.add_argument("--rate", type=float, help="end-to-end background rate, events/s")
    p.add_argument("--step-seconds", type=float, help="seconds per sustained-rate step")
    p.add_argument("--steps", help="comma-separated sustained-rate steps, events/s")
    p.add_argument("--events", type=int, help="events per domain for the job and profile runs")
    p.set_defaults(func=_run)


def _run(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.bench import stop_on_sigterm
    from flinkpulse.bench.runner import ALL_SECTIONS, Profile, quick_profile, run
    from flinkpulse.errors import UsageError

    prof = quick_profile() if args.quick else Profile()
    if args.rate:
        prof.e2e_rate = args.rate
    if args.step_seconds:
        prof.e2e_step_s = args.step_seconds
    if args.steps:
        prof.e2e_steps = [float(x) for x in args.steps.split(",") if x]
    if args.events:
        prof.job_events_per_domain = args.events
        prof.profile_events_per_domain = args.events
    sections = [s for s in (args.sections or "").split(",") if s]
    bad = set(sections) - set(ALL_SECTIONS)
    if bad:
        raise UsageError(f"unknown section(s) {', '.join(sorted(bad))} ({', '.join(ALL_SECTIONS)})")
    if sections:
        for s in sections:
            prof.skip.pop(s, None)
    stop_on_sigterm()  # a killed run cancels its jobs
    js, md = run(cfg, prof, sections or None, args.out, quick=args.quick)
    print(f"bench: results {js}\nbench: summary {md}")
    return 0
