"""`flinkpulse load`: the exactly-once loader, result topics -> ClickHouse (foreground)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from flinkpulse.config import Config


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "load",
        help="load result topics and alerts into ClickHouse, exactly once (foreground)",
        description="Consume the result topics, alerts and raw security events, decode Avro "
        "through the registry and insert into ClickHouse. Resumes from the offsets ClickHouse "
        "holds, so a restart after any crash loads every record exactly once. Runs until "
        "SIGTERM/Ctrl-C, or see --once / --until-idle.",
    )
    p.add_argument(
        "--topic",
        dest="topics",
        action="append",
        metavar="TOPIC",
        help="logical topic to load (repeatable; default: all result topics and alerts)",
    )
    p.add_argument("--database", help="ClickHouse database (default clickhouse.database)")
    p.add_argument(
        "--once",
        action="store_true",
        help="load what the topics hold now, then exit",
    )
    p.add_argument(
        "--until-idle",
        type=float,
        metavar="SECONDS",
        help="exit once nothing new arrived for SECONDS and everything is inserted",
    )
    p.add_argument("--batch-rows", type=int, help="rows per insert (default loader.batch_rows)")
    p.add_argument(
        "--flush-interval", type=float, help="seconds a row may wait (loader.flush_interval_s)"
    )
    p.add_argument("--status-file", help="write metrics as JSON here (stack component)")
    p.add_argument("--no-migrate", action="store_true", help="do not apply missing migrations")
    p.set_defaults(func=_load)


def _load(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.loader.core import Loader, install_signal_handlers

    if args.database:
        cfg = cfg.derive(clickhouse={"database": args.database})
    loader_flags = {
        "batch_rows": args.batch_rows or cfg.loader.batch_rows,
        "flush_interval_s": cfg.loader.flush_interval_s
        if args.flush_interval is None
        else args.flush_interval,
        "migrate": cfg.loader.migrate and not args.no_migrate,
    }
    cfg = cfg.derive(loader=loader_flags)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("urllib3", "clickhouse_connect"):  # the loader logs each failure once itself
        logging.getLogger(noisy).setLevel(logging.ERROR)
    loader = Loader(
        cfg, topics=args.topics, status_file=Path(args.status_file) if args.status_file else None
    )
    install_signal_handlers(loader)
    stats = loader.run(until_idle=args.until_idle, once=args.once)
    print(
        f"loaded {stats.rows} rows in {stats.inserts} inserts into {cfg.clickhouse.database}, "
        f"{stats.dead_letters} dead letters",
        flush=True,
    )
    return 0
