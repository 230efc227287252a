"""`flinkpulse clickhouse migrate`: apply ``sql/clickhouse/NNN_*.sql`` once per database.

Each file is a numbered migration; applied ones are recorded in ``<database>.schema_migrations``
(version, name, checksum). Re-running applies only what is missing, so it is safe to run on
every start. Every statement in the files is idempotent too (IF NOT EXISTS), so a migration
interrupted half-way (crash before it was recorded) simply runs again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError, ServiceUnreachable, UsageError
from flinkpulse.paths import ROOT

MIGRATIONS_DIR = ROOT / "sql" / "clickhouse"
_FILE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def client(cfg: Config, role: str = "writer", database: str | None = None, **kw: Any) -> Any:
    """A clickhouse-connect client for `cfg.clickhouse.url` as `role` (see ``credentials``).

    Raises :class:`ServiceUnreachable` (one line for the CLI) if ClickHouse does not answer.
    """
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import OperationalError

    # its warnings would reach stderr as stray lines before our one-line error
    logging.getLogger("clickhouse_connect").addHandler(logging.NullHandler())
    from flinkpulse.clickhouse import credentials

    user, password = credentials(cfg, role)
    u = urlsplit(cfg.clickhouse.url)
    secure = u.scheme == "https"
    try:
        return clickhouse_connect.get_client(
            host=u.hostname or "127.0.0.1",
            port=u.port or (8443 if secure else 8123),
            interface="https" if secure else "http",
            username=user,
            password=password,
            database=database or "",
            **kw,
        )
    except OperationalError:
        raise ServiceUnreachable("ClickHouse", cfg.clickhouse.url) from None


def check_database_name(name: str) -> str:
    if not _IDENT.match(name):
        raise UsageError(
            f"clickhouse.database {name!r} is not a plain identifier (letters, digits, _)"
        )
    return name


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; two files with one number are an error."""
    out: dict[int, Migration] = {}
    for p in sorted(directory.glob("*.sql")):
        m = _FILE.match(p.name)
        if not m:
            raise FlinkpulseError(f"{p}: migration files are named NNN_name.sql")
        v = int(m.group(1))
        if v in out:
            raise FlinkpulseError(f"{p}: version {v} is used twice ({out[v].path.name})")
        out[v] = Migration(v, m.group(2), p)
    return [out[v] for v in sorted(out)]


def statements(text: str, database: str) -> list[str]:
    """Split a commented .sql file into statements, ``{database}`` replaced (backquoted)."""
    lines = [re.sub(r"--.*$", "", line) for line in text.splitlines()]
    body = "\n".join(lines).replace("{database}", f"`{database}`")
    return [s.strip() for s in body.split(";") if s.strip()]


def _ensure_bookkeeping(ch: Any, db: str) -> None:
    ch.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    ch.command(
        f"CREATE TABLE IF NOT EXISTS `{db}`.schema_migrations ("
        "version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)"
        ") ENGINE = ReplacingMergeTree ORDER BY version"
    )


def applied(ch: Any, db: str) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of the migrations recorded in `db`."""
    rows = ch.query(
        f"SELECT version, argMax(name, applied_at), argMax(checksum, applied_at) "
        f"FROM `{db}`.schema_migrations GROUP BY version"
    ).result_rows
    return {int(v): (n, c) for v, n, c in rows}


def migrate(
    cfg: Config,
    database: str | None = None,
    directory: Path = MIGRATIONS_DIR,
    log: Any = print,
) -> list[Migration]:
    """Apply the missing migrations to `database` (default cfg.clickhouse.database).

    Returns the migrations applied now ([] when up to date). A changed file whose version
    was already applied is reported, not re-run (write a new migration instead).
    """
    db = check_database_name(database or cfg.clickhouse.database)
    ch = client(cfg, "writer")
    try:
        _ensure_bookkeeping(ch, db)
        done = applied(ch, db)
        ran: list[Migration] = []
        for m in discover(directory):
            if m.version in done:
                if done[m.version][1] != m.checksum and log:
                    log(
                        f"  warning: {m.path.name} changed after it was applied to {db}; "
                        "not re-run (add a new migration for the change)"
                    )
                continue
            for stmt in statements(m.text, db):
                try:
                    ch.command(stmt)
                except Exception as e:
                    first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
                    raise FlinkpulseError(
                        f"migration {m.path.name} failed on {db}: {first[:400]}"
                    ) from None
            ch.insert(
                f"`{db}`.schema_migrations",
                [[m.version, m.name, m.checksum]],
                column_names=["version", "name", "checksum"],
            )
            if log:
                log(f"  applied {m.path.name} to {db}")
            ran.append(m)
        return ran
    finally:
        ch.close()
