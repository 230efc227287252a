"""`flinkpulse report`: findings and system performance of a period, as PDF (and HTML/JSON)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flinkpulse.commands.times import TIME_FORMS, duration, utc_time
from flinkpulse.config import Config
from flinkpulse.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="findings report of a period (PDF, optionally HTML) from ClickHouse and Flink",
        description="Write a findings report: incidents by rule, energy by home and appliance, "
        "climate per room, K/D leaders and cheaters, web traffic, data quality; and the "
        "system's performance (Flink jobs' throughput, lag and checkpoints, the loader's rate "
        "and lag, the newest benchmark). Default period: the last 24 hours. Times are UTC.",
    )
    p.add_argument("--last", type=duration, metavar="DURATION", help="the period up to now: 24h")
    p.add_argument(
        "--from", dest="start", type=utc_time, metavar="TIME", help=f"period start: {TIME_FORMS}"
    )
    p.add_argument("--to", dest="end", type=utc_time, metavar="TIME", help="end (default now)")
    p.add_argument("--out", default="report.pdf", metavar="FILE", help="PDF (default report.pdf)")
    p.add_argument("--html", action="store_true", help="also write the HTML version (FILE.html)")
    p.add_argument("--json", action="store_true", help="also write the figures as JSON (FILE.json)")
    p.add_argument("--database", default=None, help="ClickHouse database (clickhouse.database)")
    p.set_defaults(func=_run)


def period_of(args: argparse.Namespace, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) from --last or --from/--to; inconsistent combinations are usage errors."""
    if args.last is not None and (args.start is not None or args.end is not None):
        raise UsageError("--last cannot be combined with --from/--to")
    if args.last is not None:
        return now - args.last, now
    if args.start is None:
        if args.end is not None:
            raise UsageError("--to needs --from (or use --last)")
        return now - timedelta(hours=24), now
    end = args.end or now
    if end <= args.start:
        raise UsageError(f"--from must be before --to, got {args.start} .. {end}")
    return args.start, end


def _run(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import report
    from flinkpulse.report import render

    out = Path(args.out)
    if out.suffix.lower() != ".pdf":
        raise UsageError(f"--out must name a .pdf file, got {args.out!r}")
    start, end = period_of(args, datetime.now(UTC))
    r = report.build(cfg, report.Period(start, end), database=args.database)
    written = render.write(r, out, html_too=args.html)
    if args.json:
        j = out.with_suffix(".json")
        j.write_text(json.dumps(r.to_dict(), indent=1, ensure_ascii=False) + "\n")
        written.append(j)
    for path in written:
        print(f"wrote {path}")
    for label, value in r.summary:
        print(f"  {label}: {value}")
    return 0
