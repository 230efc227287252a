"""`flinkpulse demo`: the whole pipeline on the embedded stack (what `make demo` runs)."""

from __future__ import annotations

import argparse

from flinkpulse.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="run the whole pipeline on the local stack and show results")
    p.add_argument("--seconds", type=float, default=120, help="how long to produce (default 120)")
    p.add_argument("--rate", type=float, default=1500, help="events/s over all domains")
    p.add_argument("--timeout", type=float, default=240, help="extra seconds to wait for results")
    p.set_defaults(func=_run)


def _run(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import demo
    from flinkpulse.errors import UsageError

    if args.seconds <= 0 or args.rate <= 0:
        raise UsageError("--seconds and --rate must be positive")
    return demo.run(cfg, seconds=args.seconds, rate=args.rate, timeout=args.timeout)
