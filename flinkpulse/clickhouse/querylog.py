"""``system.query_log`` and ``system.session_log`` kept by the HTTP server: chDB keeps no
logs of its own, so the server records every query (id, user, text, duration, rows, error)
and every HTTP session's login/logout (and failed logins) in MergeTree tables it owns,
``flinkpulse_system.query_log``/``session_log``, and maps ``system.<name>`` in query text
to them.

Rows are buffered and written every few seconds, and always before a query that reads the
log, so a client finds its ``query_id`` right after the query answered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from flinkpulse.clickhouse import sql
from flinkpulse.clickhouse.engine import Connection, Engine, EngineError, Session

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

SESSION_TABLE = f"{DATABASE}.session_log"
SESSION_DDL = f"""CREATE TABLE IF NOT EXISTS {SESSION_TABLE} (
    type Enum8('LoginFailure' = 0, 'LoginSuccess' = 1, 'Logout' = 2),
    auth_id UUID,
    session_id String,
    event_date Date DEFAULT toDate(event_time),
    event_time DateTime,
    event_time_microseconds DateTime64(6),
    user String,
    interface Enum8('TCP' = 1, 'HTTP' = 2),
    client_address IPv6,
    client_port UInt16,
    http_user_agent String,
    failure_reason String
) ENGINE = MergeTree PARTITION BY event_date ORDER BY (event_time, auth_id)
TTL event_date + INTERVAL {RETENTION_DAYS} DAY"""

NO_AUTH_ID = "00000000-0000-0000-0000-000000000000"  # a failed login has no session

#: system.<name> in query text -> the server's own table
MAPPED = {b"query_log": TABLE.encode(), b"session_log": SESSION_TABLE.encode()}


class SystemLog:
    """A log table the server keeps: `append` rows from request threads, `flush` writes them
    in one insert, on a connection of its own (not any user's)."""

    def __init__(self, engine: Engine, ddl: str, table: str) -> None:
        self.engine = engine
        self.ddl = ddl
        self.table = table
        self.pending: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.flush_lock = threading.Lock()
        self.conn: Connection | None = None

    def open(self) -> None:
        """Create the log table if needed."""
        self.conn = self.engine.connect()
        self.conn.query(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        self.conn.query(self.ddl)

    def append(self, row: dict[str, Any]) -> None:
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
                self.conn.query(
                    b"INSERT INTO " + self.table.encode() + b" FORMAT JSONEachRow\n" + data
                )
            except EngineError as e:
                log.warning("%s: %d rows lost: %s", self.table, len(rows), e.message)

    def close(self) -> None:
        self.flush()
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class QueryLog(SystemLog):
    """``system.query_log``: one row per query over HTTP."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, DDL, TABLE)

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
        self.append(
            {
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
        )


class SessionLog(SystemLog):
    """``system.session_log``: HTTP sessions (``session_id``) opened and closed, and every
    failed login."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, SESSION_DDL, SESSION_TABLE)

    def opened(self, s: Session) -> None:
        self._add("LoginSuccess", s.user, s.session_id, s.auth_id, s.client, s.user_agent, "")

    def closed(self, s: Session) -> None:
        self._add("Logout", s.user, s.session_id, s.auth_id, s.client, s.user_agent, "")

    def failed(
        self, user: str, session_id: str, client: tuple[str, int], user_agent: str, reason: str
    ) -> None:
        self._add("LoginFailure", user, session_id, NO_AUTH_ID, client, user_agent, reason)

    def _add(
        self, kind: str, user: str, session_id: str, auth_id: str,
        client: tuple[str, int], user_agent: str, reason: str,
    ) -> None:  # fmt: skip
        now = time.time()
        self.append(
            {
                "type": kind,
                "auth_id": auth_id,
                "session_id": session_id,
                "event_time": int(now),
                "event_time_microseconds": f"{now:.6f}",
                "user": user,
                "interface": "HTTP",
                "client_address": client[0],
                "client_port": client[1],
                "http_user_agent": user_agent,
                "failure_reason": reason,
            }
        )


def map_system_tables(
    query: bytes, mapping: dict[bytes, bytes] = MAPPED, hint: bytes = b"_log"
) -> bytes:
    """`query` with ``system.query_log``/``system.session_log`` (or the names of `mapping`,
    all of which contain `hint`), outside strings and comments, replaced by the server's
    tables."""
    toks = sql.tokens_if_mentions(query, hint)
    if toks is None:
        return query
    out, last = [], 0
    for a, dot, b in zip(toks, toks[1:], toks[2:], strict=False):
        target = mapping.get(sql.ident(b).lower().encode())
        if (
            target is not None
            and sql.ident(a).lower() == "system"
            and dot.text == b"."
            and dot.start == a.end
            and b.start == dot.end
        ):
            out += [query[last : a.start], target]
            last = b.end
    return b"".join(out) + query[last:] if out else query
