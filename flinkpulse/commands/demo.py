"""`flinkpulse demo`: the whole pipeline on the embedded stack (what `make demo` runs)."""

from __future__ import annotations

import argparse

from flinkpulse.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on the local stack and show results",
        description="Stack up, schemas, tables, dashboards, the four jobs; then every domain "
        "on the live clock (event time = the wall clock, never ahead of it) with one scripted "
        "incident per alert rule spliced in, each event produced when the wall clock reaches its "
        "event time (they span 90 s and start at most a quarter in, early enough to end 5 s "
        "before the run when --seconds is 100 or more); then a summary from ClickHouse.",
    )
    p.add_argument("--seconds", type=float, default=120, help="how long to produce (default 120)")
    p.add_argument("--rate", type=float, default=1500, help="events/s over all domains")
    p.add_argument("--timeout", type=float, default=240, help="extra seconds to wait for results")
    p.set_defaults(func=_run)


def _run(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import demo
    from flinkpulse.errors import UsageError
    from flinkpulse.loader.component import LoaderComponent

    if args.seconds <= 0 or args.rate <= 0:
        raise UsageError("--seconds and --rate must be positive")
    # the stack's loader is one process, which `stack up` reuses while it runs: one started with
    # other topics or another database would never load what this demo produces
    running = LoaderComponent(cfg).started_config()
    if running is not None:
        theirs = (running.kafka.topic_prefix, running.clickhouse.database)
        ours = (cfg.kafka.topic_prefix, cfg.clickhouse.database)
        if theirs != ours:
            raise UsageError(
                f"the stack's loader is running for topic prefix {theirs[0]!r} and database "
                f"{theirs[1]!r}, this demo would use {ours[0]!r} and {ours[1]!r}: run it with "
                "the same settings, or stop the loader first (`flinkpulse stack down loader`)"
            )
    return demo.run(cfg, seconds=args.seconds, rate=args.rate, timeout=args.timeout)
