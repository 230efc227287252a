"""``system.query_log`` kept by the HTTP server: chDB keeps no query log of its own, so the
server records every query (id, user, text, duration, rows, error) in a MergeTree table it
owns, ``flinkpulse_system.query_log``, and maps ``system.query_log`` in query text to it.

Rows are buffered and written every few seconds, and always before a query that reads the
log, so a client finds its ``query_id`` right after the query answered.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from flinkpulse.clickhouse import sql
from flinkpulse.clickhouse.engine import Connection, Engine, EngineError

log = logging.getLogger("flinkpulse.clickhouse")

DATABASE = "flinkpulse_system"
TABLE = f"{DATABASE}.query_log"
#: as ClickHouse's log_queries_cut_to_length: inline data (e.g. Parquet in $$...$$) is cut
MAX_QUERY_CHARS = 100_000
RETENTION_DAYS = 30

DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    type Enum8('QueryFinish' = 2, 'ExceptionBeforeStart' = 3, 'ExceptionWhileProcessing' = 4),
    event_date Date DEFAULT toDate(event_time),
    event_time DateTime,
    query_start_time_microseconds DateTime64(6),
    query_duration_ms UInt64,
    read_rows UInt64,
    read_bytes UInt64,
    written_rows UInt64,
    written_bytes UInt64,
    query String,
    query_id String,
    user String,
    exception_code Int32,
    exception String
) ENGINE = MergeTree PARTITION BY event_date ORDER BY (event_time, query_id)
TTL event_date + INTERVAL {RETENTION_DAYS} DAY"""


class QueryLog:
    """The server's query log: `record` from request threads, `flush` writes the rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.flush_lock = threading.Lock()
        self.conn: Connection | None = None

    def open(self) -> None:
        """Create the log table if needed, on a connection of its own (not any user's)."""
        self.conn = self.engine.connect()
        self.conn.query(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        self.conn.query(DDL)

    def record(
        self,
        *,
        query_id: str,
        user: str,
        query: bytes,
        start: float,
        end: float,
        summary: dict[str, Any] | None,
        error: EngineError | None,
        started: bool,
    ) -> None:
        """Buffer one finished (or failed) query; `started`: it reached the engine."""
        s = summary or {}
        row = {
            "type": "QueryFinish"
            if error is None
            else ("ExceptionWhileProcessing" if started else "ExceptionBeforeStart"),
            "event_time": int(end),
            "query_start_time_microseconds": f"{start:.6f}",
            "query_duration_ms": int((end - start) * 1000),
            "read_rows": int(s.get("read_rows", 0)),
            "read_bytes": int(s.get("read_bytes", 0)),
            "written_rows": int(s.get("written_rows", 0)),
            "written_bytes": int(s.get("written_bytes", 0)),
            "query": query[:MAX_QUERY_CHARS].decode("utf-8", errors="replace"),
            "query_id": query_id,
            "user": user,
            "exception_code": error.code if error else 0,
            "exception": error.message if error else "",
        }
        with self.lock:
            self.pending.append(row)

    def flush(self) -> None:
        """Write the buffered rows (one insert); a failure is logged, never raised."""
        with self.flush_lock:
            with self.lock:
                rows, self.pending = self.pending, []
            if not rows or self.conn is None:
                return
            data = b"\n".join(json.dumps(r).encode() for r in rows)
            try:
                self.conn.query(b"INSERT INTO " + TABLE.encode() + b" FORMAT JSONEachRow\n" + data)
            except EngineError as e:
                log.warning("query log: %d rows lost: %s", len(rows), e.message)

    def close(self) -> None:
        self.flush()
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def map_system_tables(query: bytes) -> bytes:
    """`query` with ``system.query_log`` (outside strings and comments) replaced by our table."""
    toks = sql.tokens_if_mentions(query, b"query_log")
    if toks is None:
        return query
    out, last = [], 0
    for a, dot, b in zip(toks, toks[1:], toks[2:], strict=False):
        if (
            sql.ident(a).lower() == "system"
            and dot.text == b"."
            and sql.ident(b).lower() == "query_log"
            and dot.start == a.end
            and b.start == dot.end
        ):
            out += [query[last : a.start], TABLE.encode()]
            last = b.end
    return b"".join(out) + query[last:] if out else query
