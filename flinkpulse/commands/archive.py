"""`flinkpulse archive views|compress|expire`: the raw archive's ClickHouse views, compression
and retention."""

from __future__ import annotations

import argparse

from flinkpulse.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "archive",
        help="ClickHouse views over the raw archive, and its retention",
        description="The archive job (`flinkpulse jobs submit archive`) writes Parquet (or JSON "
        "lines) files to archive.warehouse; these commands query, compress and expire them "
        "(docs/archive.md).",
    )
    ss = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    ss.required = True
    v = ss.add_parser("views", help="(re)create the archive_* views in ClickHouse")
    v.set_defaults(func=_views)
    e = ss.add_parser("expire", help="delete partitions older than archive.retention_days")
    e.set_defaults(func=_expire)
    c = ss.add_parser(
        "compress", help="gzip the JSON lines of hours that ended archive.compress_after_s ago"
    )
    c.set_defaults(func=_compress)


def _views(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.archive import create_views

    made = create_views(cfg)
    for name in made:
        print(f"{cfg.clickhouse.database}.{name}")
    if not made:
        print("no archived files yet (is `flinkpulse jobs submit archive` running?)")
    return 0


def _expire(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.archive import expire

    gone = expire(cfg)
    print(f"deleted {len(gone)} partition(s) older than {cfg.archive.retention_days} days")
    for p in gone:
        print(f"  {p}")
    return 0


def _compress(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.archive import compress

    done = compress(cfg)
    print(
        f"compressed {len(done)} partition(s) (hours ended over {cfg.archive.compress_after_s} s ago)"
    )
    for p in done:
        print(f"  {p}")
    return 0
