"""`flinkpulse clickhouse ...`: the embedded ClickHouse server (and, later, its schema).

Each subcommand is a ``_add_<name>(sub)`` function registered in :data:`SUBCOMMANDS`; add one
there to extend the group.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from flinkpulse.config import Config


def _serve(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.clickhouse.server import serve

    port = args.port if args.port is not None else cfg.stack.clickhouse_port
    host = args.host or cfg.stack.host
    serve(args.path, port, host=host, users_file=args.users)
    return 0


def _add_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the ClickHouse HTTP interface over a chDB data directory (foreground)",
        description="Run the ClickHouse engine (chDB) on DIR and serve the ClickHouse HTTP "
        "interface until SIGTERM/Ctrl-C.",
    )
    p.add_argument("--path", required=True, metavar="DIR", help="chDB data directory (created)")
    p.add_argument(
        "--port", type=int, default=None, help="HTTP port (default stack.clickhouse_port)"
    )
    p.add_argument("--host", default=None, help="address to bind (default stack.host, 127.0.0.1)")
    p.add_argument("--users", default=None, metavar="FILE", help="users YAML (SHA-256 hashes)")
    p.set_defaults(func=_serve)


def _migrate(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.clickhouse.migrate import migrate

    db = args.database or cfg.clickhouse.database
    ran = migrate(cfg, db)
    if not ran:
        print(f"  {db}: schema up to date")
    return 0


def _add_migrate(sub: Any) -> None:
    p = sub.add_parser(
        "migrate",
        help="create/upgrade the flinkpulse tables (sql/clickhouse/NNN_*.sql, idempotent)",
        description="Apply the numbered migrations in sql/clickhouse/ that the database has "
        "not recorded in its schema_migrations table. Safe to re-run.",
    )
    p.add_argument("--database", default=None, help="database (default clickhouse.database)")
    p.set_defaults(func=_migrate)


#: subcommand registrars of `flinkpulse clickhouse`
SUBCOMMANDS: list[Callable[[Any], None]] = [_add_serve, _add_migrate]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("clickhouse", help="embedded ClickHouse server (chDB)")
    group = p.add_subparsers(dest="clickhouse_command", metavar="SUBCOMMAND", parser_class=type(p))
    group.required = True
    for add in SUBCOMMANDS:
        add(group)
