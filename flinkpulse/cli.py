"""The `flinkpulse` command line: one readable line on any error, never a traceback.

Subcommands live in `flinkpulse.commands.<name>` modules, each with ``add_parser(sub)`` that
registers its parser and sets ``func(cfg, args) -> int`` as the handler.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from flinkpulse.config import Config, add_config_args, config_from_args
from flinkpulse.errors import FlinkpulseError

#: subcommand modules, in the order `flinkpulse --help` lists them
COMMAND_MODULES = [
    "flinkpulse.commands.demo",
    "flinkpulse.commands.stack",
    "flinkpulse.commands.produce",
    "flinkpulse.commands.schemas",
    "flinkpulse.commands.clickhouse",
    "flinkpulse.commands.dashboards",
    "flinkpulse.commands.jobs",
    "flinkpulse.commands.backfill",
    "flinkpulse.commands.archive",
    "flinkpulse.commands.sql",
    "flinkpulse.commands.load",
    "flinkpulse.commands.ingest",
    "flinkpulse.commands.alerts",
    "flinkpulse.commands.dlq",
    "flinkpulse.commands.rules",
    "flinkpulse.commands.bench",
    "flinkpulse.commands.report",
    "flinkpulse.commands.notebook",
]


#: the distributions whose versions `flinkpulse --version` names: what a bug report needs
VERSIONED = ["apache-flink", "confluent-kafka", "chdb", "clickhouse-connect", "fastavro"]


def version_text() -> str:
    """One line: flinkpulse's version, Python's, and those of the libraries it drives."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from flinkpulse import __version__

    def of(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    libs = ", ".join(f"{d} {of(d)}" for d in VERSIONED)
    return f"flinkpulse {__version__} (Python {platform.python_version()}; {libs})"


class _Version(argparse.Action):
    """`--version`: print version_text() and exit 0 (computed only when asked)."""

    def __init__(
        self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None
    ) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(version_text())
        parser.exit(0)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look for help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> Parser:
    p = Parser(prog="flinkpulse", description="Real-time analytics with Flink, Kafka, ClickHouse.")
    p.add_argument("--version", action=_Version, help="print the versions and exit")
    add_config_args(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).add_parser(sub)
    for leaf in _leaves(p):
        add_config_args(leaf, shortcuts_only=True)
    return p


def _leaves(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of the innermost subcommands (`jobs submit`, `stack up`, `sql`...)."""
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [p]
    return [leaf for a in subs for child in a.choices.values() for leaf in _leaves(child)]


def main(argv: list[str] | None = None, cfg: Config | None = None) -> int:
    """Run one command; `cfg`: an in-process caller's config (the demo's), used instead of what
    the config flags, the environment and ./flinkpulse.toml give."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        if cfg is None:
            cfg = config_from_args(args)
        return int(args.func(cfg, args) or 0)
    except FlinkpulseError as e:
        print(f"flinkpulse: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("flinkpulse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
