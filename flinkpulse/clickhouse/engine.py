"""The chDB engine behind the HTTP server: one data directory, many connections.

chDB 4.x runs one embedded ClickHouse server per process and data directory; each
``_chdb.connect(path)`` on it is a separate *session* (own current database, settings and
temporary tables), costs well under a millisecond, and queries on different connections run
in parallel with the GIL released. A single connection must not be used by two threads at
once. So: every HTTP request without ``session_id`` gets a fresh connection (a clean
session, closed afterwards); each ``session_id`` owns one connection, locked while a request
uses it (a concurrent request gets SESSION_IS_LOCKED, as from ClickHouse).
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flinkpulse.errors import FlinkpulseError

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)\.")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?: \(version [^)]*\))?\s*$")


class EngineError(Exception):
    """An error with a ClickHouse exception code (from the engine or raised by us)."""

    def __init__(self, code: int, message: str, name: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message


def from_chdb(ex: BaseException, codes: dict[str, int] | None = None) -> EngineError:
    """Turn chDB's RuntimeError text ("Code: 60. DB::Exception: ... (UNKNOWN_TABLE)") into an
    EngineError keeping ClickHouse's code and text."""
    text = str(ex).strip()
    i = text.find("Code: ")
    if i > 0:
        text = text[i:]
    m = _CODE.search(text)
    code = int(m.group(1)) if m else 1000
    n = _NAME.search(text)
    return EngineError(code, text, n.group(1) if n else "")


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Connection:
    """One chDB session. Not thread-safe: callers hold `lock` (sessions) or own it alone."""

    def __init__(self, engine: Engine) -> None:
        import chdb

        self.engine = engine
        self.raw: Any = getattr(chdb, "_chdb").connect(engine.conn_str)  # noqa: B009
        self.lock = threading.Lock()
        self.closed = False
        #: the engine's running totals for the current query (source rows read, rows written,
        #: total_rows_to_read...): chDB's result objects count result rows as "rows read"
        self.progress: dict[str, int] = {}
        self.raw.set_progress_callback(self._on_progress)

    def _on_progress(self, totals: dict[str, int]) -> None:
        self.progress = totals

    def query(
        self, sql: str | bytes, fmt: str = "TabSeparated", params: dict[str, str] | None = None
    ) -> Any:
        try:
            return self.raw.query(sql, fmt, params=params or {})
        except RuntimeError as e:
            raise from_chdb(e) from None

    def set(self, name: str, value: str) -> None:
        if not _SETTING_NAME.match(name):
            raise EngineError(
                115, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)"
            )
        self.query(f"SET {name} = {quote(value)}")

    def stream(
        self, sql: str | bytes, fmt: str, params: dict[str, str] | None = None
    ) -> Iterator[tuple[bytes, Any]] | None:
        """Blocks of a streaming query as (bytes, result-with-stats); None if the statement
        cannot stream (DDL, SET...), in which case the caller runs :meth:`query`."""
        try:
            sr = self.raw.send_query(sql, fmt, params=params or {})
        except RuntimeError as e:
            if "Streaming query is not supported" in str(e):
                return None
            raise from_chdb(e) from None
        return self._blocks(sr)

    def _blocks(self, sr: Any) -> Iterator[tuple[bytes, Any]]:
        done = False
        try:
            while True:
                try:
                    r = self.raw.streaming_fetch_result(sr)
                except RuntimeError as e:
                    done = True
                    raise from_chdb(e) from None
                if r is None or r.size() == 0:
                    done = True
                    return
                yield r.bytes(), r
        finally:
            if not done:
                with contextlib.suppress(Exception):
                    self.raw.streaming_cancel_query(sr)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self.raw.set_progress_callback(None)
                self.raw.close()


class Session:
    """A named HTTP session: its connection, owner and idle timeout.

    URL settings apply to one request only, as on a ClickHouse server; the session
    remembers each such setting's previous value and restores it before the next request
    that does not pass it again.
    """

    def __init__(self, conn: Connection, user: str, session_id: str, timeout: float) -> None:
        self.conn = conn
        self.user = user
        self.session_id = session_id
        self.auth_id = str(uuid.uuid4())  # system.session_log's id of this login
        self.client: tuple[str, int] = ("::", 0)  # where it was opened from
        self.user_agent = ""
        self.timeout = timeout
        self.last_used = time.monotonic()
        self.applied: dict[str, str] = {}
        self.baseline: dict[str, tuple[str, bool]] = {}
        self.database = ""
        self.row_filters = ""  # the additional_table_filters set on its connection

    def apply(self, settings: dict[str, str]) -> None:
        conn = self.conn
        for name in [n for n in self.applied if n not in settings]:
            value, changed = self.baseline.pop(name, ("", False))
            conn.query(f"SET {name} = {quote(value)}" if changed else f"SET {name} = DEFAULT")
            del self.applied[name]
        new = [n for n in settings if n not in self.baseline and _SETTING_NAME.match(n)]
        if new:
            names = ", ".join(quote(n) for n in new)
            res = conn.query(
                f"SELECT name, value, changed FROM system.settings WHERE name IN ({names})",
                "TabSeparated",
            ).bytes()
            for line in res.decode().splitlines():
                name, value, changed = line.split("\t")
                self.baseline[name] = (_unescape_tsv(value), changed == "1")
        for name, value in settings.items():
            if self.applied.get(name) != value:
                conn.set(name, value)
                self.applied[name] = value

    def forget_settings(self) -> None:
        """After a SET statement the session's own values are the new baseline."""
        self.applied.clear()
        self.baseline.clear()


def _unescape_tsv(s: str) -> str:
    return s.replace("\\t", "\t").replace("\\n", "\n").replace("\\'", "'").replace("\\\\", "\\")


class Engine:
    """Owns the chDB data directory for the life of the server."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.conn_str = str(self.path)
        self.sessions: dict[tuple[str, str], Session] = {}
        self.sessions_lock = threading.Lock()
        self.error_codes: dict[str, int] = {}
        self.version = ""
        self.timezone = "UTC"
        self._anchor: Connection | None = None

    def open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _check_not_locked(self.path)
        try:
            import chdb  # noqa: F401  (loads the engine library)

            self._anchor = Connection(self)
        except RuntimeError as e:
            text = str(e)
            if "Cannot lock file" in text or "already running" in text:
                raise FlinkpulseError(
                    f"ClickHouse data directory {self.path} is locked by another process"
                    f"{_lock_holder(self.path)} — stop it or use another --path"
                ) from None
            raise FlinkpulseError(
                f"cannot open chDB at {self.path}: {from_chdb(e).message}"
            ) from None
        row = self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes()
        self.version, self.timezone = row.decode().strip().split("\t")
        rows = self._anchor.query(
            "SELECT number, errorCodeToName(number) FROM numbers(2000) "
            "WHERE errorCodeToName(number) != ''",
            "TabSeparated",
        ).bytes()
        for line in rows.decode().splitlines():
            code, name = line.split("\t")
            self.error_codes[name] = int(code)

    def connect(self) -> Connection:
        return Connection(self)

    def code(self, name: str) -> int:
        return self.error_codes.get(name, 1000)

    def error(self, name: str, message: str) -> EngineError:
        code = self.code(name)
        return EngineError(code, f"Code: {code}. DB::Exception: {message}. ({name})", name)

    # -- sessions -------------------------------------------------------------------------
    def session(self, user: str, session_id: str, timeout: float, check: bool) -> Session:
        """The session for (user, id), created if needed and locked for the caller."""
        key = (user, session_id)
        with self.sessions_lock:
            s = self.sessions.get(key)
            if s is None:
                if check:
                    raise self.error("SESSION_NOT_FOUND", f"Session {session_id} not found")
                s = Session(self.connect(), user, session_id, timeout)
                self.sessions[key] = s
            if not s.conn.lock.acquire(blocking=False):
                raise self.error(
                    "SESSION_IS_LOCKED",
                    f"Session {session_id} is locked by a concurrent client",
                )
            s.timeout = timeout
            s.last_used = time.monotonic()
            return s

    def release(self, s: Session) -> None:
        s.last_used = time.monotonic()
        s.conn.lock.release()

    def expire_sessions(self) -> list[Session]:
        """Close the sessions idle past their timeout; returns them (for the session log)."""
        now = time.monotonic()
        expired = []
        with self.sessions_lock:
            for key, s in list(self.sessions.items()):
                if now - s.last_used > s.timeout and s.conn.lock.acquire(blocking=False):
                    del self.sessions[key]
                    s.conn.close()
                    s.conn.lock.release()
                    expired.append(s)
        return expired

    def close(self) -> None:
        with self.sessions_lock:
            for s in self.sessions.values():
                s.conn.close()
            self.sessions.clear()
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None


def _check_not_locked(path: Path) -> None:
    """ClickHouse flocks `<path>/status` while it runs: fail early with one line if another
    process holds it (the engine would print its own multi-line error first)."""
    status = path / "status"
    if not status.exists():
        return
    with open(status, "rb") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FlinkpulseError(
                f"ClickHouse data directory {path} is locked by another process"
                f"{_lock_holder(path)} — stop it or use another --path"
            ) from None
        fcntl.flock(fh, fcntl.LOCK_UN)


def _lock_holder(path: Path) -> str:
    """' (pid N)' from ClickHouse's status file, when it says."""
    try:
        text = (path / "status").read_text()
    except OSError:
        return ""
    m = re.search(r"PID:\s*(\d+)", text)
    return f" (pid {m.group(1)})" if m else ""
