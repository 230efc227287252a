"""The raw archive in ClickHouse, its compression and retention: views over the Parquet (or JSON
lines) files the archive job (flink_jobs/archive.py) writes, gzip of closed hours of JSON lines,
expiry of old partitions.
See docs/archive.md."""

from __future__ import annotations

import ctypes
import gzip
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
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
#: how committed files are named: Flink's compaction (`compacted-part-…`) and `archive compress`
#: (`compressed-….jsonl.gz`). Everything else in a partition (`.uncompacted-part-…`,
#: `..uncompacted-part-….inprogress.…`) is the job's work in progress.
COMMITTED_PREFIXES = ("compacted-", "compressed-")


def table_dir(cfg: Config, table: str) -> Path:
    """The local directory of one archive table (the warehouse must be local for this)."""
    uri = cfg.archive.warehouse_uri(cfg.stack.state_path())
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise UsageError(f"archive.warehouse {uri} is not local: read it with ClickHouse's s3()")
    return Path(parts.path) / f"{cfg.kafka.topic_prefix}{table}"


def parquet_jars(cfg: Config) -> list[Path]:
    """flink-parquet and the Hadoop classes it needs (deploy/pom.xml), for the archive job."""
    d = cfg.stack.jars_path() / "flink-parquet"
    jars = sorted(d.glob("*.jar")) if d.is_dir() else []
    if not any(j.name.startswith("flink-parquet-") for j in jars):
        raise UsageError(f"archive.format parquet needs the jars in {d} — run `make setup`")
    return jars


def committed_files(directory: Path) -> list[Path]:
    """The committed files of one table directory, sorted (see COMMITTED_PREFIXES)."""
    return sorted(_committed(directory))


def _committed(directory: Path) -> Iterator[Path]:
    return (p for p in directory.glob("dt=*/hour=*/*") if p.name.startswith(COMMITTED_PREFIXES))


def committed_glob(directory: Path) -> str:
    """The ClickHouse file() glob of the same files: a view must never match a file in
    progress, or reading its schema fails ("Parquet file too short")."""
    names = ",".join(p.rstrip("-") for p in COMMITTED_PREFIXES)
    return f"{directory}/dt=*/hour=*/{{{names}}}-*"


def has_files(directory: Path) -> bool:
    """Whether a table directory holds a committed file (stops at the first)."""
    return next(_committed(directory), None) is not None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of one committed archive file: Parquet (by its magic bytes) or JSON lines
    (gzip when it ends in .gz). Parquet timestamps are datetimes, bytes bytes; JSON has them
    as text and base64."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()  # type: ignore[no-any-return]
    return [json.loads(line) for line in read_lines(path)]


def read_lines(path: Path) -> list[str]:
    """The JSON lines of one committed archive file (gzip when it ends in .gz)."""
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as f:
            return f.read().splitlines()
    return path.read_text().splitlines()


_HOUR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")
#: how long a swapped-out partition stays (hidden) for queries that listed it before the swap
_KEEP_OLD_S = 600


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE): a reader sees one or the
    other, never neither or both."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        raise UsageError("archive compress needs Linux (renameat2) for its atomic swap")
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, bytes(a), at_fdcwd, bytes(b), rename_exchange) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"renameat2({a}, {b}): {os.strerror(err)}")


def compress(cfg: Config, now: datetime | None = None) -> list[Path]:
    """Gzip the JSON lines of the hour partitions that ended archive.compress_after_s ago;
    returns them (Parquet files are compressed already: left as they are).

    A partition's committed files (JSON lines) become one `compressed-<uuid>.jsonl.gz` (files
    compressed before are kept), built in a hidden directory that is then swapped with the
    partition in one atomic step: a query sees the plain files or the compressed one, never
    both. A partition the job is writing (a hidden in-progress file, before or right after the
    swap) is left alone (swapped back): its records are committed as plain files, compressed
    by a later run. The swapped-out directory is deleted on a run 10 minutes later."""
    t = now or datetime.now(UTC)
    cutoff = t - timedelta(seconds=cfg.archive.compress_after_s)
    done = []
    for table in TABLES:
        d = table_dir(cfg, table)
        if not d.is_dir():
            continue
        for old in d.glob("dt=*/.hour=*.old-*"):
            if time.time() - old.stat().st_mtime > _KEEP_OLD_S:
                shutil.rmtree(old, ignore_errors=True)
        for part in sorted(d.glob("dt=*/hour=*")):
            m = _HOUR.match(f"{part.parent.name}/{part.name}")
            if not m:
                continue
            start = datetime.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H")
            if start.replace(tzinfo=UTC) + timedelta(hours=1) > cutoff:
                continue
            if _compress_partition(part, cfg.archive.compress_after_s):
                done.append(part)
    return done


def _compressed(f: Path) -> bool:
    """A gzip file of an earlier run, or a Parquet file (compressed by the job itself)."""
    if f.suffix == ".gz":
        return True
    with open(f, "rb") as h:
        return h.read(4) == b"PAR1"


def _compress_partition(part: Path, idle_s: float) -> bool:
    """One partition (see compress); False when there was nothing to do or the job writes it.
    A hidden file untouched for `idle_s` is abandoned (a stopped job's, the job rolls its files
    every roll_interval_s): it stays hidden in the swapped-out directory."""
    files = sorted(part.iterdir())
    plain = [f for f in files if not f.name.startswith(".") and not _compressed(f)]
    hidden = {f.name for f in files if f.name.startswith(".")}
    stale = {n for n in hidden if time.time() - (part / n).stat().st_mtime > idle_s}
    if not plain or hidden - stale:
        return False
    new = part.with_name(f".{part.name}.new")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    for f in files:
        if not f.name.startswith(".") and _compressed(f):
            os.link(f, new / f.name)  # already compressed: the same file
    out = new / f"compressed-{uuid.uuid4()}.jsonl.gz"
    with open(out, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            for f in plain:
                data = f.read_bytes()
                gz.write(data if data.endswith(b"\n") or not data else data + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    _exchange(new, part)  # `part` now holds the compressed file, `new` the plain ones
    if any(f.name.startswith(".") and f.name not in stale for f in new.iterdir()):
        _exchange(new, part)  # the job began a file in it meanwhile: give it back
        shutil.rmtree(new)
        return False
    new.rename(part.with_name(f".{part.name}.old-{int(time.time())}-{uuid.uuid4().hex[:8]}"))
    return True


#: archive.format -> the ClickHouse input format of its files (the views read these)
VIEW_FORMATS = {"parquet": "Parquet", "json": "JSONEachRow"}


def view_sql(cfg: Config, table: str) -> str:
    """CREATE OR REPLACE VIEW archive_<table>: every committed file, columns unified across
    schema versions (a field added later reads as NULL in older files), dt and hour from the
    Hive-style path."""
    db = cfg.clickhouse.database
    fmt = VIEW_FORMATS.get(cfg.archive.format)
    if fmt is None:
        raise UsageError(
            f"archive.format is {cfg.archive.format}: the archive_* views read formats "
            f"{' and '.join(VIEW_FORMATS)} (ClickHouse cannot read the Avro files Flink writes: "
            "their root schema is a union)"
        )
    glob = committed_glob(table_dir(cfg, table))
    return (
        f"CREATE OR REPLACE VIEW `{db}`.`archive_{table}` AS "
        f"SELECT * EXCEPT (dt, `hour`), toDate(dt) AS dt, toUInt8(`hour`) AS `hour` "
        f"FROM file('{glob}', '{fmt}') "
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
