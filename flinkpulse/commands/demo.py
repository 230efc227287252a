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
    from flinkpulse.config import load_config
    from flinkpulse.errors import UsageError

    if args.seconds <= 0 or args.rate <= 0:
        raise UsageError("--seconds and --rate must be positive")
    # the stack's loader (a process of its own) and the dashboards read the topics of the config
    # file and environment: a prefix given only here would produce results nothing loads
    stack_prefix = load_config().kafka.topic_prefix
    if cfg.kafka.topic_prefix != stack_prefix:
        raise UsageError(
            f"--topic-prefix {cfg.kafka.topic_prefix!r}: the demo's loader and dashboards read "
            f"the stack's topics (prefix {stack_prefix!r}); run the demo without it, or set "
            "FLINKPULSE_KAFKA__TOPIC_PREFIX for the stack too"
        )
    return demo.run(cfg, seconds=args.seconds, rate=args.rate, timeout=args.timeout)
