"""The raw archive in ClickHouse and its retention: views over the Avro files the archive job
(flink_jobs/archive.py) writes, and expiry of old partitions. See docs/archive.md."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from flinkpulse.config import Config
from flinkpulse.errors import UsageError

#: source topic (logical) -> archive table
SOURCE_TABLES = {
    "gaming.player-events": "player_events",
    "iot.sensor-readings": "sensor_readings",
    "iot.security-events": "security_events",
    "web.access-logs": "access_logs",
}
#: the dead letters of every source, with their reasons
DEAD_LETTERS = "dead_letters"
TABLES = [*SOURCE_TABLES.values(), DEAD_LETTERS]

_PARTITION = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


def table_dir(cfg: Config, table: str) -> Path:
    """The local directory of one archive table (the warehouse must be local for this)."""
    uri = cfg.archive.warehouse_uri(cfg.stack.state_path())
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise UsageError(f"archive.warehouse {uri} is not local: read it with ClickHouse's s3()")
    return Path(parts.path) / f"{cfg.kafka.topic_prefix}{table}"


def has_files(directory: Path) -> bool:
    """Whether a table directory holds a committed file (in-progress ones start with a dot)."""
    return any(not p.name.startswith(".") for p in directory.glob("dt=*/hour=*/*"))


def read_lines(path: Path) -> list[str]:
    """The JSON lines of one committed archive file."""
    return path.read_text().splitlines()


def view_sql(cfg: Config, table: str) -> str:
    """CREATE OR REPLACE VIEW archive_<table>: every committed file, columns unified across
    schema versions (a field added later reads as NULL in older files), dt and hour from the
    Hive-style path."""
    db = cfg.clickhouse.database
    if cfg.archive.format != "json":
        raise UsageError(
            f"archive.format is {cfg.archive.format}: the archive_* views read format json "
            "(ClickHouse cannot read the Avro files Flink writes: their root schema is a union)"
        )
    glob = f"{table_dir(cfg, table)}/dt=*/hour=*/*"
    return (
        f"CREATE OR REPLACE VIEW `{db}`.`archive_{table}` AS "
        f"SELECT * EXCEPT (dt, `hour`), toDate(dt) AS dt, toUInt8(`hour`) AS `hour` "
        f"FROM file('{glob}', 'JSONEachRow') WHERE _file NOT LIKE '.%' "
        "SETTINGS use_hive_partitioning = 1, schema_inference_mode = 'union'"
    )


def create_views(cfg: Config) -> list[str]:
    """(Re)create the archive_* views of the tables that have files; returns their names.
    Run again after a schema change: a view's columns are fixed when it is created."""
    from flinkpulse.clickhouse.migrate import client

    ch = client(cfg, "writer")
    made = []
    try:
        ch.command(f"CREATE DATABASE IF NOT EXISTS `{cfg.clickhouse.database}`")
        for table in TABLES:
            if has_files(table_dir(cfg, table)):
                ch.command(view_sql(cfg, table))
                made.append(f"archive_{table}")
    finally:
        ch.close()
    return made


def expire(cfg: Config, now: datetime | None = None) -> list[Path]:
    """Delete the dt= partitions older than archive.retention_days (0: keep everything)."""
    days = cfg.archive.retention_days
    if days <= 0:
        return []
    cutoff = ((now or datetime.now(UTC)) - timedelta(days=days)).date()
    gone = []
    for table in TABLES:
        d = table_dir(cfg, table)
        for part in sorted(d.glob("dt=*")) if d.is_dir() else []:
            m = _PARTITION.match(part.name)
            if m and datetime.strptime(m.group(1), "%Y-%m-%d").date() < cutoff:
                shutil.rmtree(part)
                gone.append(part)
    return gone
