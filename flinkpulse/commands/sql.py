"""`flinkpulse sql [-f FILE] [--bounded] [--print-catalog]`: Flink's SQL client, catalog preloaded.

Interactive, Ctrl-C belongs to the client (it cancels the running query, the prompt stays).
With `-f` the script stops at its first failing statement and the command exits 1, so scripts
and CI can rely on the exit code; its output carries no terminal warnings or colour codes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError, ServiceUnreachable, UsageError
from flinkpulse.paths import ROOT, pyflink_home

_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
#: how each table's WITH clause starts in catalog.sql (options are inserted after it)
_KAFKA_WITH = "\n) WITH (\n  'connector' = 'kafka',"
#: the client's two error messages; they may follow its echo of the statement on one line
_ERROR = re.compile(r"\[ERROR\] (?:Could not execute SQL statement\.|The input is invalid)")
#: ANSI escape sequences (colours, cursor movement)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: where a result table or a message starts right after the client's echo of a statement
_GLUED = re.compile(r"(?<=.)(?=\+-+\+|\[(?:INFO|WARNING|ERROR)\] )")
#: jline: a dumb terminal when stdout is not a TTY, without the warning and without colours
_PLAIN_TERMINAL = "-Dorg.jline.terminal.dumb=true -Dorg.jline.terminal.dumb.color=false"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "sql",
        help="Flink SQL client with every source topic as a table",
        description="Flink's SQL client on the session cluster with every source topic as a "
        "table. Ctrl-C cancels the running query and keeps the prompt. With -f, the script "
        "stops at the first failing statement and the command exits 1.",
    )
    p.add_argument("-f", "--file", help="run this SQL script non-interactively, then exit")
    p.add_argument(
        "--bounded",
        action="store_true",
        help="read every topic up to its current end in batch mode: queries end and print "
        "final rows only (no +U/-U changelog)",
    )
    p.add_argument("--print-catalog", action="store_true", help="print the rendered catalog.sql")
    p.set_defaults(func=_run)


def parse_jobmanager(value: str) -> tuple[str, int]:
    """(host, port) of a JobManager REST address `host:port` (an http:// prefix is allowed)."""
    hostport = re.sub(r"^https?://", "", value).rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--jobmanager must be host:port, got {value!r}")
    return host, int(port)


def render_catalog(cfg: Config, bounded: bool = False) -> str:
    """sql/flink/catalog.sql with the configured addresses, topics and schemas filled in.

    `bounded` makes every table end at the topic's current end offset (for batch mode).
    """
    from flinkpulse.schemas import latest_schema

    text = (ROOT / "sql" / "flink" / "catalog.sql").read_text()

    def value(m: re.Match[str]) -> str:
        key = m.group(1)
        if key.startswith("topic:"):
            v = cfg.kafka.topic(key[len("topic:") :])
        elif key.startswith("schema:"):
            v = json.dumps(latest_schema(key[len("schema:") :]), separators=(",", ":"))
        elif key == "kafka.bootstrap_servers":
            v = cfg.kafka.bootstrap_servers
        elif key == "registry.url":
            v = cfg.registry.url
        elif key == "watermark_delay_s":
            v = f"{cfg.flink.watermark_delay_s:.3f}"
        else:
            raise UsageError(f"catalog.sql: unknown placeholder ${{{key}}}")
        return v.replace("'", "''")  # SQL string literal

    out = _PLACEHOLDER.sub(value, text)
    options = {f"properties.{k}": v for k, v in cfg.kafka.java_properties().items()}
    if bounded:
        options["scan.bounded.mode"] = "latest-offset"
    if options:  # production security settings and bounds go into every table's WITH clause
        extra = "".join(
            f",\n  '{k}' = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in options.items()
        )
        out = out.replace(_KAFKA_WITH, "\n) WITH (\n  'connector' = 'kafka'" + extra + ",")
    return out


def client_settings(host: str, port: int, bounded: bool) -> str:
    """The SET statements that point the client at the cluster (and pick batch mode)."""
    lines = [
        "SET 'sql-client.execution.result-mode' = 'tableau';",
        f"SET 'rest.address' = '{host}';",
        f"SET 'rest.port' = '{port}';",
        "SET 'execution.target' = 'remote';",
    ]
    if bounded:
        lines.append("SET 'execution.runtime-mode' = 'batch';")
    return "\n".join(lines) + "\n"


def _script_path(name: str) -> Path:
    """The SQL file to run: as given, or relative to the repository."""
    path = Path(name)
    if not path.is_absolute() and not path.exists() and (ROOT / name).exists():
        path = ROOT / name
    if not path.is_file():
        raise UsageError(f"no such SQL file: {name}")
    return path


def _run(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.flinkrest import FlinkRest
    from flinkpulse.flinkrun import flink_env
    from flinkpulse.stack.java import flink_connector_jars

    host, port = parse_jobmanager(cfg.flink.jobmanager)
    catalog = render_catalog(cfg, bounded=args.bounded)
    if args.print_catalog:
        print(catalog)
        return 0
    script = _script_path(args.file) if args.file else None
    try:  # the client itself would retry for a minute, then print a Java stack trace
        FlinkRest(cfg).call("GET", "/config", timeout=5)
    except ServiceUnreachable:
        raise ServiceUnreachable("Flink", f"{host}:{port}") from None
    init = cfg.stack.state_path() / "ship" / f"catalog-{os.getpid()}.sql"
    init.parent.mkdir(parents=True, exist_ok=True)
    init.write_text(client_settings(host, port, args.bounded) + catalog)
    cmd = [str(pyflink_home() / "bin" / "sql-client.sh"), "-i", str(init)]
    for jar in flink_connector_jars(cfg):
        cmd += ["-j", str(jar)]
    if script is not None:
        cmd += ["-f", str(script)]
    env = flink_env(cfg)
    plain = script is not None or not sys.stdout.isatty()
    if plain:
        env["JVM_ARGS"] = f"{env.get('JVM_ARGS', '')} {_PLAIN_TERMINAL}".strip()
    try:
        with _sigint_to_child():
            return _run_plain(cmd, env) if plain else subprocess.call(cmd, env=env)
    except FileNotFoundError:
        raise FlinkpulseError(
            "the Flink SQL client is missing from the apache-flink wheel"
        ) from None
    finally:
        init.unlink(missing_ok=True)


def _run_plain(cmd: list[str], env: dict[str, str]) -> int:
    """Run the client with its output passed on as plain text; 1 if a statement failed."""
    failed = False
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, errors="replace") as p:
        assert p.stdout is not None
        for raw in p.stdout:
            line = _ANSI.sub("", raw)
            if not line.startswith(("|", "+")):  # result rows are left alone
                failed = failed or bool(_ERROR.search(line))
                line = _GLUED.sub("\n", line, count=1)
            sys.stdout.write(line)
            sys.stdout.flush()
    return p.returncode or (1 if failed else 0)


@contextlib.contextmanager
def _sigint_to_child() -> Iterator[None]:
    """Leave Ctrl-C to the client while it runs: it cancels the query, the prompt stays.

    A do-nothing Python handler, not SIG_IGN: exec resets it, so the client still gets SIGINT.
    """
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
