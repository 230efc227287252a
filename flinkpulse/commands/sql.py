"""`flinkpulse sql [-f FILE] [--print-catalog]`: the Flink SQL client with the catalog preloaded."""

from __future__ import annotations

import argparse
import json
import re
import subprocess

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError, UsageError
from flinkpulse.paths import ROOT, pyflink_home

_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sql", help="Flink SQL client with every source topic as a table")
    p.add_argument("-f", "--file", help="run this SQL script non-interactively, then exit")
    p.add_argument("--print-catalog", action="store_true", help="print the rendered catalog.sql")
    p.add_argument("--topic-prefix")
    p.add_argument("--jobmanager", help="host:port of the JobManager REST endpoint")
    p.set_defaults(func=_run)


def render_catalog(cfg: Config) -> str:
    """sql/flink/catalog.sql with the configured addresses, topics and schemas filled in."""
    from producers.schemas import latest_schema

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
    props = cfg.kafka.java_properties()
    if props:  # production security settings go into every table's WITH clause
        extra = "".join(
            f",\n  'properties.{k}' = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in props.items()
        )
        out = out.replace(
            "\n) WITH (\n  'connector' = 'kafka',",
            "\n) WITH (\n  'connector' = 'kafka'" + extra + ",",
        )
    return out


def _run(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.flinkrest import flink_env
    from flinkpulse.stack.java import flink_connector_jars

    if args.topic_prefix is not None:
        cfg.kafka.topic_prefix = args.topic_prefix
    if args.jobmanager:
        cfg.flink.jobmanager = args.jobmanager
    catalog = render_catalog(cfg)
    if args.print_catalog:
        print(catalog)
        return 0
    init = cfg.stack.state_path() / "ship" / "catalog.sql"
    init.parent.mkdir(parents=True, exist_ok=True)
    settings = (
        "SET 'sql-client.execution.result-mode' = 'tableau';\n"
        f"SET 'rest.address' = '{cfg.flink.jobmanager.rsplit(':', 1)[0]}';\n"
        f"SET 'rest.port' = '{cfg.flink.jobmanager.rsplit(':', 1)[1]}';\n"
        "SET 'execution.target' = 'remote';\n"
    )
    init.write_text(settings + catalog)
    cmd = [str(pyflink_home() / "bin" / "sql-client.sh"), "-i", str(init)]
    for jar in flink_connector_jars(cfg):
        cmd += ["-j", str(jar)]
    if args.file:
        script = ROOT / args.file if not args.file.startswith("/") else None
        path = script if script and script.exists() else __import__("pathlib").Path(args.file)
        if not path.exists():
            raise UsageError(f"no such SQL file: {args.file}")
        cmd += ["-f", str(path)]
    try:
        return subprocess.call(cmd, env=flink_env(cfg))
    except FileNotFoundError:
        raise FlinkpulseError(
            "the Flink SQL client is missing from the apache-flink wheel"
        ) from None
