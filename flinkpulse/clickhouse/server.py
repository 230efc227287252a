"""The ClickHouse HTTP interface, served over a chDB engine (see engine.py for the model).

Implements what ClickHouse documents for its HTTP interface and what clickhouse-connect and
Superset use: ``/ping``; the query from ``?query=`` and/or the POST body (joined by a line
break); ``INSERT ... FORMAT X``/``VALUES`` with the data in the body, streamed to the engine;
``database``, ``default_format``, ``query_id``, ``session_id``, ``session_timeout``,
``session_check``, ``param_<name>`` and any other parameter as a setting; HTTP compression
both ways and ClickHouse block compression (``compress=1``/``decompress=1``); the
X-ClickHouse-* response headers; ClickHouse error codes with the server's HTTP statuses.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import http.server
import itertools
import json
import logging
import secrets
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flinkpulse.clickhouse import codec, showcreate, sql
from flinkpulse.clickhouse.access import AccessControl, map_access_tables
from flinkpulse.clickhouse.engine import Connection, Engine, EngineError, Session, quote
from flinkpulse.clickhouse.querylog import QueryLog, SessionLog, map_system_tables
from flinkpulse.clickhouse.users import AuthError, User, Users
from flinkpulse.errors import FlinkpulseError

log = logging.getLogger("flinkpulse.clickhouse")

#: URL parameters that are HTTP-interface controls, not settings for the engine
TRANSPORT_PARAMS = {
    "query", "database", "default_format", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "user", "password", "quota_key", "buffer_size",
    "wait_end_of_query", "client_protocol_version", "role", "with_stacktrace",
    "add_http_cors_header", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "enable_http_compression", "http_zlib_compression_level", "http_response_buffer_size",
    "cancel_http_readonly_queries_on_client_close", "http_wait_end_of_query",
}  # fmt: skip

#: output formats whose per-block outputs concatenate into one valid stream
STREAMABLE = {
    "native", "rowbinary", "tabseparated", "tsv", "tabseparatedraw", "tsvraw", "csv",
    "jsoneachrow", "jsonlines", "ndjson", "jsoncompacteachrow", "jsonstringseachrow",
    "jsoncompactstringseachrow", "lineasstring", "rawblob", "values", "null",
}  # fmt: skip

_CONTENT_TYPES = {
    "native": "application/octet-stream",
    "rowbinary": "application/octet-stream",
    "rowbinarywithnamesandtypes": "application/octet-stream",
    "arrow": "application/octet-stream",
    "arrowstream": "application/octet-stream",
    "parquet": "application/octet-stream",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "csvwithnames": "text/csv; charset=UTF-8; header=present",
    "json": "application/json; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
}

#: exception name -> HTTP status, as ClickHouse's exceptionCodeToHTTPStatus
_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ["UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE",
         "ACCESS_DENIED"], 403),
    **dict.fromkeys(
        ["BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT",
         "CANNOT_PARSE_ESCAPE_SEQUENCE", "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE",
         "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER", "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
         "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
         "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN", "UNKNOWN_ELEMENT_IN_AST",
         "UNKNOWN_TYPE_OF_AST_NODE", "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST",
         "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH",
         "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"], 400),
    **dict.fromkeys(
        ["UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE",
         "UNKNOWN_STORAGE", "UNKNOWN_DATABASE", "UNKNOWN_SETTING",
         "UNKNOWN_DIRECTION_OF_SORTING", "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT",
         "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE"], 404),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}  # fmt: skip

#: first keywords of statements with a result set, also when the engine cannot classify them
RESULT_STATEMENTS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", ""}

#: first keywords a readonly user may run (the engine then enforces `readonly` itself)
READONLY_STATEMENTS = {
    "SELECT",
    "WITH",
    "SHOW",
    "DESCRIBE",
    "DESC",
    "EXPLAIN",
    "EXISTS",
    "SET",
    "USE",
}

CHUNK = 1 << 20
MAX_QUERY = 256 << 20  # a non-INSERT statement (with any inline data) is read whole, up to this
SPOOL = 16 << 20  # wait_end_of_query results beyond this go to a temporary file


class BodyReader:
    """The request body as decoded pieces: Content-Length or chunked framing, then HTTP
    Content-Encoding, then ClickHouse block compression (``decompress=1``)."""

    def __init__(self, rfile: Any, headers: Any, decompress: bool) -> None:
        self.rfile = rfile
        te = (headers.get("Transfer-Encoding") or "").lower()
        self.chunked = "chunked" in te
        self.remaining = int(headers.get("Content-Length") or 0) if not self.chunked else 0
        self.chunk_left = 0
        self.eof = not self.chunked and self.remaining == 0
        self.decoders: list[codec.Decoder] = []
        enc = headers.get("Content-Encoding") or ""
        try:
            d = codec.content_decoder(enc)
        except KeyError:
            raise EngineError(
                1000,
                f"Code: 1000. DB::Exception: Unknown Content-Encoding {enc!r}. (UNKNOWN_EXCEPTION)",
            ) from None
        if d is not None:
            self.decoders.append(d)
        if decompress:
            self.decoders.append(codec.NativeBlockDecoder())
        self.finished = False

    def _raw(self) -> bytes:
        if self.eof:
            return b""
        if not self.chunked:
            data = self.rfile.read(min(CHUNK, self.remaining))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            self.remaining -= len(data)
            self.eof = self.remaining == 0
            return bytes(data)
        if self.chunk_left == 0:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                self.eof = True
                return b""
            self.chunk_left = size
        data = self.rfile.read(min(CHUNK, self.chunk_left))
        if not data:
            raise ConnectionError("client closed the connection mid-body")
        self.chunk_left -= len(data)
        if self.chunk_left == 0:
            self.rfile.readline(16)
        return bytes(data)

    def read(self) -> bytes:
        """The next decoded piece; b"" only at the end of the body."""
        while True:
            if self.finished:
                return b""
            raw = self._raw()
            if not raw:
                out = b""
                for d in self.decoders:
                    out = d.feed(out) + d.finish() if out else d.finish()
                self.finished = True
                return out
            data = raw
            for d in self.decoders:
                data = d.feed(data)
                if not data:
                    break
            if data:
                return data

    def drain(self) -> None:
        while not self.eof:
            self._raw()


class ClickHouseHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        addr: tuple[str, int],
        engine: Engine,
        users: Users,
        name: str,
        access: AccessControl,
        query_log: QueryLog | None = None,
        session_log: SessionLog | None = None,
    ) -> None:
        self.engine = engine
        self.access = access
        self.query_log = query_log
        self.session_log = session_log
        self.users = users
        self.display_name = name
        super().__init__(addr, Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server_version = "ClickHouse(flinkpulse+chDB)"
    server: ClickHouseHTTPServer
    timeout = 3600

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s " + format, self.client_address[0], *args)

    # -- routing ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        path = urlsplit(self.path).path
        self._plain(200 if path in ("/", "/ping") else 404, b"")

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        if path in ("/ping", "/replicas_status") or (
            path == "/" and self.command == "GET" and "query" not in parts.query
        ):
            self._plain(200, b"Ok.\n")
            return
        if path != "/":
            self._plain(404, b"There is no handle " + path.encode() + b"\n")
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        self._query(params)

    def _plain(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- queries ----------------------------------------------------------------------------
    def _query(self, params: dict[str, str]) -> None:
        engine = self.server.engine
        self.user_filtered = False
        query_id = params.get("query_id") or str(uuid.uuid4())
        self.query_id = query_id
        self.headers_sent = False
        t0 = time.time()
        self.log_user = ""
        self.log_query = b""
        self.log_started = False
        self.log_summary: dict[str, Any] | None = None
        self.query_error: EngineError | None = None
        self.result_statement = True
        self.exec_t0 = time.monotonic()
        session: Session | None = None
        conn: Connection | None = None
        body: BodyReader | None = None
        try:
            body = self._body(params)
            user = self._authenticate(params)
            self.log_user = user.name
            if params.get("role"):
                raise no_access_management(engine, "The role= parameter")
            settings = {
                k: v
                for k, v in params.items()
                if k not in TRANSPORT_PARAMS and not k.startswith("param_")
            }
            bind = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
            session_id = params.get("session_id", "")
            if session_id:
                timeout = float(params.get("session_timeout") or 60)
                session = engine.session(
                    user.name, session_id, timeout, params.get("session_check") == "1"
                )
                conn = session.conn
                self._row_filters(conn, user, session)
                if not session.database:
                    self._init_connection(conn, user)
                    session.database = "default"
                    session.client = (self.client_address[0], self.client_address[1])
                    session.user_agent = self.headers.get("User-Agent") or ""
                    if self.server.session_log is not None:
                        self.server.session_log.opened(session)
            else:
                conn = engine.connect()
                self._row_filters(conn, user, None)
                self._init_connection(conn, user)
            database = params.get("database") or self.headers.get("X-ClickHouse-Database")
            if database:
                conn.query(f"USE `{database.replace('`', '``')}`")
            if session is not None:
                session.apply(settings)
            else:
                for k, v in settings.items():
                    conn.set(k, v)
            self._execute(conn, user, session, body, params, bind)
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.close_connection = True
        except AuthError as e:
            if self.server.session_log is not None:
                self.server.session_log.failed(
                    e.user,
                    params.get("session_id", ""),
                    (self.client_address[0], self.client_address[1]),
                    self.headers.get("User-Agent") or "",
                    str(e),
                )
            self._error(
                EngineError(
                    516,
                    f"Code: 516. DB::Exception: {e}. (AUTHENTICATION_FAILED)",
                    "AUTHENTICATION_FAILED",
                )
            )
        except EngineError as e:
            if e.name == "ACCESS_DENIED" and "DB::Exception: default: Not enough privileges" in (
                e.message
            ):  # the engine's own user may not read the entities we do not keep (quotas, ...)
                e = no_access_management(engine, "Reading quotas, settings profiles or access")
            self._error(e)
        except Exception as e:  # a bug of ours: still a ClickHouse-shaped answer
            log.exception("internal error")
            self._error(
                EngineError(
                    1001,
                    f"Code: 1001. DB::Exception: {type(e).__name__}: {e}. (STD_EXCEPTION)",
                    "STD_EXCEPTION",
                )
            )
        finally:
            if body is not None and not body.eof and not self.close_connection:
                # an error before the body was read: read it off, or drop the connection if big
                if body.chunked or body.remaining > CHUNK * 8:
                    self.close_connection = True
                else:
                    with contextlib.suppress(Exception):
                        body.drain()
            if session is not None:
                engine.release(session)
            elif conn is not None:
                conn.close()
            if self.server.query_log is not None:
                self.server.query_log.record(
                    query_id=query_id,
                    user=self.log_user,
                    query=self.log_query,
                    start=t0,
                    end=time.time(),
                    summary=self.log_summary,
                    error=self.query_error,
                    started=self.log_started,
                )

    def _body(self, params: dict[str, str]) -> BodyReader | None:
        if self.command != "POST":
            return None
        ctype = self.headers.get("Content-Type") or ""
        if ctype.startswith("multipart/form-data"):
            self._form(params, ctype)
            return None
        return BodyReader(self.rfile, self.headers, params.get("decompress") == "1")

    def _form(self, params: dict[str, str], ctype: str) -> None:
        """Form fields (clickhouse-connect sends long bind parameters this way) -> params."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw
        )
        for part in msg.iter_parts():  # type: ignore[attr-defined]
            name = part.get_param("name", header="content-disposition")
            if part.get_filename():
                raise self.server.engine.error(
                    "NOT_IMPLEMENTED", "External data (files in the form) is not supported"
                )
            if name:
                payload = part.get_payload(decode=True)
                params[str(name)] = payload.decode() if isinstance(payload, bytes) else str(payload)

    def _authenticate(self, params: dict[str, str]) -> User:
        h = self.headers
        name, password = h.get("X-ClickHouse-User"), h.get("X-ClickHouse-Key")
        auth = h.get("Authorization") or ""
        if auth.lower().startswith("basic "):
            if name is not None:
                raise self.server.engine.error(
                    "AUTHENTICATION_FAILED",
                    "Invalid authentication: it is not allowed to use Authorization HTTP header "
                    "and authentication via X-ClickHouse-User at the same time",
                )
            try:
                name, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except ValueError:
                raise self.server.engine.error(
                    "AUTHENTICATION_FAILED", "Bad Authorization header"
                ) from None
        if name is None and "user" in params:
            name, password = params["user"], params.get("password", "")
        return self.server.users.authenticate(
            name or "default", password or "", self.client_address[0]
        )

    def _row_filters(self, conn: Connection, user: User, session: Session | None) -> None:
        """The row policies that apply to `user`, as the engine's additional_table_filters
        on this request's connection (a session's is updated when the policies changed)."""
        filters = self.server.access.row_filters(user)
        self.user_filtered = bool(filters)
        if session is None:
            if filters:
                conn.set("additional_table_filters", filters)
        elif filters != session.row_filters:
            conn.set("additional_table_filters", filters or "{}")
            session.row_filters = filters

    def _init_connection(self, conn: Connection, user: User) -> None:
        """Profile settings first, so that a readonly profile binds everything after it."""
        for k, v in user.settings.items():
            conn.set(k, v)

    def _execute(
        self,
        conn: Connection,
        user: User,
        session: Session | None,
        body: BodyReader | None,
        params: dict[str, str],
        bind: dict[str, str],
    ) -> None:
        engine = self.server.engine
        prefix = params.get("query", "").encode()
        if body is not None:
            first = body.read()
            text = prefix + b"\n" + first if prefix else first
        else:
            text = prefix
        # read until we know whether this is an INSERT with data following (then stream it)
        while True:
            try:
                ins = sql.split_insert(text)
                break
            except sql.Incomplete:
                more = body.read() if body is not None else b""
                if not more:
                    ins = None
                    break
                text += more
                if len(text) > MAX_QUERY:
                    raise engine.error("QUERY_IS_TOO_LARGE", "Query is too large") from None
        if ins is not None:
            self.log_query = ins.statement.strip().encode()
            self._check_writable(conn, user, ins.statement.encode())
            self.server.access.check_insert(conn, user, ins.statement)
            self._insert(conn, ins, text, body)
            return
        if body is not None:
            while True:
                more = body.read()
                if not more:
                    break
                text += more
                if len(text) > MAX_QUERY:
                    raise engine.error("QUERY_IS_TOO_LARGE", "Query is too large")
        # bytes end to end: a query may carry binary data (format(Parquet, $$...$$))
        query = text.strip()
        self.log_query = query
        if not query:
            raise engine.error("SYNTAX_ERROR", "Empty query")
        mapped = map_system_tables(query)
        if mapped is not query:  # the reader sees every query and login answered before it
            for system_log in (self.server.query_log, self.server.session_log):
                if system_log is not None:
                    system_log.flush()
        query = map_access_tables(mapped)
        system_table = showcreate.system_table(query)
        if system_table is not None:
            query = self._show_create_system(conn, system_table)
        kw = sql.first_keyword(text)
        access = sql.access_statement(query)
        if access:
            answer = self.server.access.execute(conn, user, query, access)
            if answer is None:  # a command, done and persisted
                self.log_started = True
                self._start(200, None, self._summary(conn), length=0)
                return
            query = answer  # SHOW ...: a query over the access tables
        else:
            self.server.access.check_query(conn, user, query, kw, params, bind, self.user_filtered)
        cls = _query_class(conn, query)
        self._check_writable(conn, user, query, cls)
        # as ClickHouse: X-ClickHouse-Format only for a statement with a result (clients tell
        # "empty result" from "no result", e.g. clickhouse-connect's command() summary)
        self.result_statement = cls == "READ_ONLY" or kw in RESULT_STATEMENTS
        fmt = (
            sql.output_format(text)
            or params.get("default_format")
            or self.headers.get("X-ClickHouse-Format")
            or "TabSeparated"
        )
        wait = params.get("wait_end_of_query") == "1"
        blocks = None
        self.log_started = True
        conn.progress = {}
        self.exec_t0 = time.monotonic()
        # INSERT ... SELECT runs whole: its summary (written_rows) is exact in the headers
        if fmt.lower() in STREAMABLE and kw != "INSERT":
            blocks = conn.stream(query, fmt, bind)
        if blocks is None:
            res = conn.query(query, fmt, bind)
            if session is not None and kw == "SET":
                session.forget_settings()
            data = res.bytes()
            self._respond(conn, fmt, params, iter([(data, res)]) if data else iter([]), res, True)
            return
        self._respond(conn, fmt, params, blocks, None, wait)

    def _show_create_system(self, conn: Connection, name: str) -> bytes:
        """The query answering SHOW CREATE TABLE system.<name> (chDB has no such metadata)."""
        exists = conn.query(
            "SELECT count() FROM system.tables WHERE database = 'system' AND name = " + quote(name)
        ).bytes()
        if exists.strip() != b"1":
            raise self.server.engine.error("UNKNOWN_TABLE", f"Table system.{name} does not exist")
        return showcreate.statement_query(name).encode()

    def _check_writable(
        self, conn: Connection, user: User, query: bytes, cls: str | None = None
    ) -> None:
        """Readonly users: the engine's `readonly` setting refuses writes to tables; on top,
        only reading statements are let through at all (INSERT INTO FUNCTION file(...),
        BACKUP or INTO OUTFILE would write outside tables, which `readonly` does not stop)."""
        if not user.readonly:
            return
        text = query
        cls = cls or _query_class(conn, query)
        if (
            sql.first_keyword(text) not in READONLY_STATEMENTS
            or cls in ("MUTATING", "MUTATING_GLOBAL")
            or sql.writes_outfile(text)
        ):
            raise self.server.engine.error(
                "READONLY", f"{user.name}: Cannot execute query in readonly mode"
            )

    def _insert(
        self, conn: Connection, ins: sql.InsertSplit, text: bytes, body: BodyReader | None
    ) -> None:
        t0 = time.monotonic()
        if _has_constraints(conn, ins.statement):
            # chDB's streaming insert drops a block that breaks a CHECK constraint and reports
            # it written (HTTP 200, no row stored); the one-shot query path raises code 469.
            # Such tables are rare and small (ip_asn): their inserts are read whole and run so.
            self.log_started = True
            rest = b"".join(iter(body.read, b"")) if body is not None else b""
            try:
                res = conn.raw.query(text + rest, "TabSeparated")
            except RuntimeError as e:
                from flinkpulse.clickhouse.engine import from_chdb

                raise from_chdb(e) from None
            self._start(200, None, self._insert_summary(res, t0), length=0)
            return
        try:
            self.log_started = True
            handle = conn.raw.send_insert(ins.statement, ins.fmt)
        except RuntimeError as e:
            from flinkpulse.clickhouse.engine import from_chdb

            raise from_chdb(e) from None
        ok = False
        try:
            data = text[ins.data_at :]
            while True:
                if data:
                    conn.raw.insert_append(handle, data)
                data = body.read() if body is not None else b""
                if not data:
                    break
            res = conn.raw.insert_done(handle)
            ok = True
        except RuntimeError as e:
            from flinkpulse.clickhouse.engine import from_chdb

            raise from_chdb(e) from None
        finally:
            if not ok:
                with contextlib.suppress(Exception):
                    conn.raw.insert_cancel(handle)
        self._start(200, None, self._insert_summary(res, t0), length=0)

    @staticmethod
    def _insert_summary(res: Any, t0: float) -> dict[str, Any]:
        return {
            "read_rows": res.rows_written(),
            "read_bytes": res.bytes_written(),
            "written_rows": res.rows_written(),
            "written_bytes": res.bytes_written(),
            "total_rows_to_read": 0,
            "result_rows": res.rows_written(),
            "result_bytes": res.bytes_written(),
            "elapsed_ns": int((time.monotonic() - t0) * 1e9),
        }

    # -- responses --------------------------------------------------------------------------
    def _summary(
        self, conn: Connection, res: Any = None, rows: int = 0, nbytes: int = 0
    ) -> dict[str, Any]:
        """X-ClickHouse-Summary: rows/bytes read from storage as the engine's progress totals
        (what ClickHouse reports; chDB's result objects count result rows as "read"),
        written rows exact from the result when the statement ran whole."""
        p = conn.progress
        written = (res.rows_written(), res.bytes_written()) if res is not None else (0, 0)
        return {
            "read_rows": p.get("read_rows") or (res.storage_rows_read() if res else 0),
            "read_bytes": p.get("read_bytes") or (res.storage_bytes_read() if res else 0),
            "written_rows": max(written[0], p.get("written_rows", 0)),
            "written_bytes": max(written[1], p.get("written_bytes", 0)),
            "total_rows_to_read": p.get("total_rows_to_read", 0),
            "result_rows": res.rows_read() if res is not None else rows,
            "result_bytes": nbytes,
            "elapsed_ns": int((time.monotonic() - self.exec_t0) * 1e9),
        }

    def _start(
        self,
        status: int,
        fmt: str | None,
        summary: dict[str, Any],
        length: int | None,
        encoding: str | None = None,
        exception_tag: str | None = None,
    ) -> None:
        srv = self.server
        self.log_summary = summary
        self.send_response(status)
        self.send_header(
            "Content-Type", _CONTENT_TYPES.get((fmt or "").lower(), "text/plain; charset=UTF-8")
        )
        self.send_header("X-ClickHouse-Server-Display-Name", srv.display_name)
        self.send_header("X-ClickHouse-Query-Id", self.query_id)
        if fmt is not None:
            self.send_header("X-ClickHouse-Format", fmt)
        self.send_header("X-ClickHouse-Timezone", srv.engine.timezone)
        self.send_header(
            "X-ClickHouse-Summary",
            json.dumps({k: str(v) for k, v in summary.items()}, separators=(",", ":")),
        )
        if exception_tag:
            self.send_header("X-ClickHouse-Exception-Tag", exception_tag)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.send_header("Keep-Alive", "timeout=3600")
        self.end_headers()
        self.headers_sent = True

    def _encoders(self, params: dict[str, str]) -> tuple[list[codec.Encoder], str | None]:
        encoders: list[codec.Encoder] = []
        if params.get("compress") == "1":
            encoders.append(codec.NativeBlockEncoder())
        encoding = None
        if params.get("enable_http_compression") == "1":
            encoding = codec.choose_encoding(self.headers.get("Accept-Encoding") or "")
            if encoding:
                level = int(params.get("http_zlib_compression_level") or 3)
                encoders.append(codec.content_encoder(encoding, level))
        return encoders, encoding

    def _respond(
        self,
        conn: Connection,
        fmt: str,
        params: dict[str, str],
        blocks: Iterator[tuple[bytes, Any]],
        res: Any,
        wait: bool,
    ) -> None:
        encoders, encoding = self._encoders(params)

        def encode(data: bytes, final: bool = False) -> bytes:
            for e in encoders:
                data = (
                    e.compress(data) + (e.flush() if final else b"")
                    if data
                    else (e.flush() if final else b"")
                )
            return data

        rows = nbytes = 0
        if wait:
            # whole result first (spooled to disk past SPOOL bytes): exact summary, real status
            with tempfile.SpooledTemporaryFile(max_size=SPOOL) as spool:
                for data, r in blocks:
                    rows += r.rows_read()  # chDB: the block's result rows
                    nbytes += len(data)
                    spool.write(encode(data))
                spool.write(encode(b"", final=True))
                size = spool.tell()
                spool.seek(0)
                summary = self._summary(conn, res, rows, nbytes)
                shown = fmt if self.result_statement or nbytes else None
                self._start(200, shown, summary, size, encoding)
                while True:
                    piece = spool.read(CHUNK)
                    if not piece:
                        break
                    self.wfile.write(piece)
            return
        # streaming: two blocks before the headers, so early errors get a real status and a
        # result of one block (most) has its final summary in the headers
        ahead = [b for b in (next(blocks, None), next(blocks, None)) if b is not None]
        tag = secrets.token_hex(8)
        summary = self._summary(
            conn, None, sum(r.rows_read() for _, r in ahead), sum(len(d) for d, _ in ahead)
        )
        shown = fmt if self.result_statement or ahead else None
        self._start(200, shown, summary, None, encoding, tag)
        try:
            for data, r in itertools.chain(ahead, blocks):
                rows += r.rows_read()
                nbytes += len(data)
                self._chunk(encode(data))
            self.log_summary = self._summary(conn, None, rows, nbytes)
            self._chunk(encode(b"", final=True))
        except EngineError as e:
            msg = _error_text(e, self.server.engine.version).encode()
            block = b"__exception__\r\n" + tag.encode() + b"\r\n" + msg + b"\n"
            block += str(len(msg)).encode() + b" " + tag.encode() + b"\r\n__exception__\r\n"
            self.query_error = e
            self._chunk(encode(block, final=True))
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")

    def _error(self, e: EngineError) -> None:
        self.query_error = e
        if self.headers_sent:
            self.close_connection = True
            return
        body = _error_text(e, self.server.engine.version).encode() + b"\n"
        name = e.name or _name_of(e, self.server.engine)
        status = _STATUS_BY_NAME.get(name, 500)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("X-ClickHouse-Server-Display-Name", self.server.display_name)
        self.send_header("X-ClickHouse-Query-Id", getattr(self, "query_id", ""))
        self.send_header("X-ClickHouse-Exception-Code", str(e.code))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def no_access_management(engine: Engine, what: str) -> EngineError:
    """The error for access-control SQL the server does not implement (quotas, settings
    profiles, SET ROLE, role=...): NOT_IMPLEMENTED (48, HTTP 501) with a sentence saying why,
    not the engine's "default: Not enough privileges"."""
    return engine.error(
        "NOT_IMPLEMENTED",
        f"{what} is not supported by flinkpulse's ClickHouse server (it has users, roles, "
        "grants and row policies, not quotas, settings profiles or SET ROLE; see "
        "docs/clickhouse.md)",
    )


def _query_class(conn: Connection, query: bytes) -> str:
    """The engine's class of a statement: READ_ONLY, MUTATING, MUTATING_GLOBAL, CONTROL or
    UNKNOWN (when it cannot be classified, e.g. a syntax error the engine reports later)."""
    try:
        return str(conn.raw.classify_query(query)["query_class"].name)
    except Exception:
        return "UNKNOWN"


def _name_of(e: EngineError, engine: Engine) -> str:
    for name, code in engine.error_codes.items():
        if code == e.code:
            return name
    return ""


def _error_text(e: EngineError, version: str) -> str:
    text = e.message.strip()
    if "(version " not in text:
        text += f" (version {version})"
    return text


# -- running it --------------------------------------------------------------------------------


def serve(
    path: str,
    port: int,
    host: str = "127.0.0.1",
    users_file: str | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Bind, open the engine, serve until SIGTERM/SIGINT; one readable line on startup errors."""
    from flinkpulse.stack.base import check_port_free

    users = Users.load(users_file)
    check_port_free(host, port, "clickhouse")
    engine = Engine(path)
    engine.open()
    access = AccessControl(engine, users)
    access.open()
    query_log = QueryLog(engine)
    query_log.open()
    session_log = SessionLog(engine)
    session_log.open()
    try:
        server = ClickHouseHTTPServer(
            (host, port), engine, users, socket.gethostname(), access, query_log, session_log
        )
    except OSError as e:
        session_log.close()
        query_log.close()
        engine.close()
        raise FlinkpulseError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    stop = threading.Event()

    def reaper() -> None:
        while not stop.wait(5):
            for s in engine.expire_sessions():
                session_log.closed(s)
            query_log.flush()
            session_log.flush()

    threading.Thread(target=reaper, name="session-reaper", daemon=True).start()

    def on_signal(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    print(
        f"flinkpulse clickhouse: ClickHouse {engine.version} (chDB) serving {engine.path} "
        f"on http://{host}:{port} (users: {', '.join(sorted(users.users))})",
        flush=True,
    )
    if ready is not None:
        ready.set()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        stop.set()
        server.server_close()
        for s in list(engine.sessions.values()):  # a stop logs every open session out
            session_log.closed(s)
        session_log.close()
        query_log.close()
        engine.close()
        print("flinkpulse clickhouse: stopped", flush=True)


def _has_constraints(conn: Connection, statement: str) -> bool:
    """Whether the INSERT's target table declares a CHECK constraint (system.tables)."""
    target = sql.insert_target(statement)
    if target is None:
        return False
    db, table = target
    q = (
        "SELECT count() FROM system.tables WHERE database = "
        + (quote(db) if db else "currentDatabase()")
        + f" AND name = {quote(table)} AND position(create_table_query, ' CONSTRAINT ') > 0"
    )
    return bytes(conn.raw.query(q, "TabSeparatedRaw").bytes()).strip() not in (b"", b"0")
