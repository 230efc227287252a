"""The embedded ClickHouse server, over HTTP and through clickhouse-connect only.

Each module run starts its own server (`flinkpulse clickhouse serve`) on a free port with a
temporary data directory and a users file (writer + read-only reader), never the shared
stack's instance.
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
import lz4.block
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import yaml
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.summary import QuerySummary

from flinkpulse.clickhouse.users import sha256_hex

pytestmark = pytest.mark.integration

WRITER_PW = "writer-secret"
READER_PW = "reader-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    data: Path
    users: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "flinkpulse.cli", "clickhouse", "serve", "--path", str(self.data),
            "--port", str(self.port), "--users", str(self.users),
        ]  # fmt: skip

    def start(self) -> None:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(self.argv(), stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if requests.get(f"{self.url}/ping", timeout=1).text == "Ok.\n":
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not start: " + self.log.read_text())

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def client(self, **kw: Any) -> clickhouse_connect.driver.Client:
        kw.setdefault("username", "writer")
        kw.setdefault("password", WRITER_PW)
        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, **kw)


def _make_server(tmp: Path) -> Server:
    users = tmp / "users.yaml"
    users.write_text(
        yaml.safe_dump(
            {
                "profiles": {"readonly": {"readonly": 2}},
                "users": {
                    "writer": {"password_sha256_hex": sha256_hex(WRITER_PW)},
                    "reader": {"password_sha256_hex": sha256_hex(READER_PW), "profile": "readonly"},
                },
            }
        )
    )
    return Server(tmp / "data", users, _free_port(), tmp / "server.log")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _make_server(tmp_path_factory.mktemp("chserver"))
    srv.start()
    c = srv.client()
    c.command("CREATE DATABASE IF NOT EXISTS fp")
    c.command(
        "CREATE TABLE IF NOT EXISTS fp.events (id UInt64, name String, value Float64, "
        "ts DateTime64(3, 'UTC'), tags Map(String, String)) ENGINE = MergeTree ORDER BY id"
    )
    yield srv
    srv.stop()


@pytest.fixture
def table(server: Server, prefix: str) -> str:
    name = f"fp.{prefix}"
    server.client().command(
        f"CREATE TABLE {name} (id UInt64, name String, value Float64) ENGINE = MergeTree ORDER BY id"
    )
    return name


def _rows(n: int, start: int = 0) -> list[list[object]]:
    return [[i, f"n{i}", i * 0.5] for i in range(start, start + n)]


# -- protocol ---------------------------------------------------------------------------------


def test_ping_and_headers(server: Server) -> None:
    r = requests.get(f"{server.url}/ping", timeout=5)
    assert (r.status_code, r.text) == (200, "Ok.\n")
    r = requests.get(
        server.url,
        params={"query": "SELECT 1 AS x FORMAT JSONEachRow", "query_id": "q-123"},
        auth=("writer", WRITER_PW),
        timeout=5,
    )
    assert r.status_code == 200 and r.text == '{"x":1}\n'
    assert r.headers["X-ClickHouse-Query-Id"] == "q-123"
    assert r.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert r.headers["X-ClickHouse-Timezone"]
    assert r.headers["X-ClickHouse-Server-Display-Name"]
    assert "read_rows" in json.loads(r.headers["X-ClickHouse-Summary"])


def test_query_from_url_and_body_and_default_format(server: Server) -> None:
    auth = ("writer", WRITER_PW)
    r = requests.post(
        server.url, params={"query": "SELECT number"}, data=b"FROM numbers(3)", auth=auth, timeout=5
    )
    assert r.text == "0\n1\n2\n"
    r = requests.post(
        server.url,
        params={"default_format": "CSV", "database": "system"},
        data=b"SELECT dummy, currentDatabase() FROM one",
        auth=auth,
        timeout=5,
    )
    assert r.text == '0,"system"\n'


def test_insert_formats_in_body(server: Server, table: str) -> None:
    auth = ("writer", WRITER_PW)
    c = server.client()
    bodies = {
        "TabSeparated": b"1\ta\t1.5\n2\tb\t2.5\n",
        "CSV": b'3,"c",3.5\n4,"d",4.5\n',
        "JSONEachRow": b'{"id":5,"name":"e","value":5.5}\n{"id":6,"name":"f","value":6.5}\n',
        "RowBinary": b"".join(
            struct.pack("<Q", i) + bytes([1]) + n + struct.pack("<d", v)
            for i, n, v in ((7, b"g", 7.5), (8, b"h", 8.5))
        ),
    }
    header = b"\x03\x02id\x04name\x05value\x06UInt64\x06String\x07Float64"
    bodies["RowBinaryWithNamesAndTypes"] = header + b"".join(
        struct.pack("<Q", i) + bytes([1]) + n + struct.pack("<d", v)
        for i, n, v in ((9, b"i", 9.5), (10, b"j", 10.5))
    )
    for fmt, data in bodies.items():
        r = requests.post(
            server.url, params={"query": f"INSERT INTO {table} FORMAT {fmt}"}, data=data, auth=auth,
            timeout=10,
        )  # fmt: skip
        assert r.status_code == 200, (fmt, r.text)
        assert json.loads(r.headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    # statement and data both in the body, and VALUES
    r = requests.post(
        server.url, data=f"INSERT INTO {table} VALUES (11, 'k', 11.5), (12, 'l', 12.5)", auth=auth
    )
    assert r.status_code == 200, r.text
    got = c.query(f"SELECT id, name, value FROM {table} ORDER BY id").result_rows
    names = "abcdefghijkl"
    assert got == [(i, names[i - 1], i + 0.5) for i in range(1, 13)]


def test_an_insert_that_breaks_a_constraint_is_refused_not_dropped(
    server: Server, prefix: str
) -> None:
    """chDB's streaming insert drops a block that fails a CHECK constraint and reports it
    written; the server must answer 469 and store nothing, in every body format."""
    auth = ("writer", WRITER_PW)
    c = server.client()
    t = f"fp.{prefix}_checked"
    c.command(
        f"CREATE TABLE {t} (id UInt8, CONSTRAINT small CHECK id < 10) ENGINE = MergeTree ORDER BY id"
    )
    bad = {
        "VALUES": (f"INSERT INTO {t} VALUES (5), (50)", b""),
        "CSV": (f"INSERT INTO {t} FORMAT CSV", b"6\n60\n"),
        "RowBinary": (f"INSERT INTO {t} FORMAT RowBinary", b"\x07\x46"),
    }
    for fmt, (query, data) in bad.items():
        r = requests.post(server.url, params={"query": query}, data=data, auth=auth, timeout=10)
        assert (r.status_code, r.headers.get("X-ClickHouse-Exception-Code")) == (500, "469"), fmt
        assert "small" in r.text, fmt
    with pytest.raises(Exception, match="469|small"):
        c.insert(t, [[8], [80]], column_names=["id"])
    r = requests.post(
        server.url, params={"query": f"INSERT INTO {t} FORMAT CSV"}, data=b"1\n2\n", auth=auth
    )
    assert r.status_code == 200, r.text
    assert json.loads(r.headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    assert c.query(f"SELECT groupArray(id) FROM {t}").result_rows == [([1, 2],)]


def test_gzip_request_and_response(server: Server, table: str) -> None:
    auth = ("writer", WRITER_PW)
    data = "".join(f"{i}\tx{i}\t{i}\n" for i in range(10_000)).encode()
    r = requests.post(
        server.url,
        params={"query": f"INSERT INTO {table} FORMAT TabSeparated"},
        data=gzip.compress(data),
        headers={"Content-Encoding": "gzip"},
        auth=auth,
    )
    assert r.status_code == 200, r.text
    r = requests.get(
        server.url,
        params={"query": f"SELECT * FROM {table} ORDER BY id", "enable_http_compression": "1"},
        headers={"Accept-Encoding": "gzip"},
        auth=auth,
        stream=True,
    )
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.content.replace(b".0", b"") == data.replace(b".0", b"")


def test_compress_1_clickhouse_blocks(server: Server) -> None:
    """compress=1: ClickHouse's block format (CityHash128 + 0x82 LZ4 + sizes) in the body."""
    from clickhouse_cityhash.cityhash import CityHash128

    r = requests.get(
        server.url,
        params={"query": "SELECT number FROM numbers(100000)", "compress": "1"},
        auth=("writer", WRITER_PW),
    )
    raw, out = r.content, b""
    while raw:
        method, csize, usize = struct.unpack_from("<BII", raw, 16)
        body = raw[16 : 16 + csize]
        h = CityHash128(body)
        assert raw[:16] == struct.pack("<QQ", h & (2**64 - 1), h >> 64)
        assert method == 0x82
        out += lz4.block.decompress(body[9:], uncompressed_size=usize)
        raw = raw[16 + csize :]
    assert out == "".join(f"{i}\n" for i in range(100000)).encode()


# -- clickhouse-connect -----------------------------------------------------------------------


def test_connect_query_df_arrow(server: Server) -> None:
    c = server.client()
    assert str(c.server_version).count(".") >= 2
    assert c.command("SELECT 42") == 42
    res = c.query("SELECT number AS n, toString(number) AS s FROM numbers(5)")
    assert res.column_names == ("n", "s")
    assert res.result_rows == [(i, str(i)) for i in range(5)]
    df = c.query_df("SELECT number AS n FROM numbers(4)")
    assert list(df["n"]) == [0, 1, 2, 3]
    tbl = c.query_arrow("SELECT number AS n, 'x' AS s FROM numbers(3)")
    assert tbl.column("n").to_pylist() == [0, 1, 2] and tbl.num_rows == 3


@pytest.mark.parametrize("compress", [False, "lz4", "zstd", "gzip"])
def test_insert_native_compressed(server: Server, table: str, compress: object) -> None:
    c = server.client(compress=compress)
    c.insert(table, _rows(50_000), column_names=["id", "name", "value"])
    assert c.query(f"SELECT count(), sum(id), sum(value) FROM {table}").result_rows == [
        (50_000, sum(range(50_000)), sum(i * 0.5 for i in range(50_000)))
    ]


def test_insert_types_roundtrip(server: Server) -> None:
    import datetime as dt

    c = server.client()
    ts = dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC)
    c.command("TRUNCATE TABLE fp.events")
    c.insert(
        "fp.events",
        [[1, "a", 1.25, ts, {"k": "v"}]],
        column_names=["id", "name", "value", "ts", "tags"],
    )
    row = c.query("SELECT id, name, value, ts, tags FROM fp.events").result_rows[0]
    # clickhouse-connect returns UTC values naive when the server's timezone is UTC
    got_ts = row[3] if row[3].tzinfo else row[3].replace(tzinfo=dt.UTC)
    assert (*row[:3], got_ts, row[4]) == (1, "a", 1.25, ts, {"k": "v"})


def test_row_block_stream_large(server: Server) -> None:
    c = server.client()
    n = total = 0
    with c.query_row_block_stream("SELECT number FROM numbers(3000000)") as stream:
        for block in stream:
            n += len(block)
            total += sum(r[0] for r in block)
    assert (n, total) == (3_000_000, sum(range(3_000_000)))


def test_session_temporary_table(server: Server) -> None:
    s1 = server.client(session_id="s-one")
    s2 = server.client(session_id="s-two")
    s1.command("CREATE TEMPORARY TABLE tmp (a UInt32)")
    s1.command("INSERT INTO tmp VALUES (1), (2), (3)")
    assert s1.query("SELECT sum(a) FROM tmp").result_rows == [(6,)]
    with pytest.raises(DatabaseError) as ei:
        s2.query("SELECT sum(a) FROM tmp")
    assert ei.value.code == 60  # another session does not see it


def test_parameters_and_settings(server: Server) -> None:
    c = server.client()
    got = c.query(
        "SELECT {s:String} AS s, {n:UInt32} + 1 AS n", parameters={"s": "it's", "n": 41}
    ).result_rows
    assert got == [("it's", 42)]
    got = c.query("SELECT %(x)s AS x", parameters={"x": "pyformat"}).result_rows
    assert got == [("pyformat",)]
    assert c.query(
        "SELECT getSetting('max_block_size')", settings={"max_block_size": 1234}
    ).result_rows == [(1234,)]
    # a URL setting applies to its request only, also inside a session
    s = server.client(session_id="settings-session")
    assert s.query("SELECT getSetting('max_threads')", settings={"max_threads": 1}).result_rows == [
        (1,)
    ]
    assert s.query("SELECT getSetting('max_threads')").result_rows != [(1,)]


def test_session_settings_persist_for_that_session(server: Server) -> None:
    """SET in a session lasts for the session (as on ClickHouse), also for the read-only user
    and across a request that overrides it by URL; other sessions and requests keep defaults."""
    q = "SELECT getSetting('max_block_size'), getSetting('max_threads')"
    default = server.client().query(q).result_rows[0]
    assert default[0] != 777
    for user, pw in (("writer", WRITER_PW), ("reader", READER_PW)):
        s = server.client(username=user, password=pw, session_id=f"persist-{user}")
        s.command("SET max_block_size = 777")
        s.command("SET max_threads = 3")
        assert s.query(q).result_rows == [(777, 3)]
        assert s.query(q, settings={"max_block_size": 5}).result_rows == [(5, 3)]
        assert s.query(q).result_rows == [(777, 3)]  # the URL value was for that request only
        other = server.client(username=user, password=pw, session_id=f"other-{user}")
        assert other.query(q).result_rows == [default]
        assert server.client(username=user, password=pw).query(q).result_rows == [default]


def _code(fn: object) -> int:
    with pytest.raises(DatabaseError) as ei:
        fn()  # type: ignore[operator]
    return int(ei.value.code)  # type: ignore[arg-type]


def test_error_codes(server: Server) -> None:
    c = server.client()
    assert _code(lambda: c.query("SELEC 1")) == 62
    assert _code(lambda: c.query("SELECT * FROM fp.no_such_table")) == 60
    reader = server.client(username="reader", password=READER_PW)
    assert reader.query("SELECT count() FROM fp.events").row_count == 1
    assert _code(lambda: reader.command("INSERT INTO fp.events (id) VALUES (1)")) == 164
    assert _code(lambda: reader.command("DROP TABLE fp.events")) == 164
    assert _code(lambda: reader.command("SET readonly = 0")) == 164
    assert (
        _code(
            lambda: reader.command("INSERT INTO FUNCTION file('x.csv', 'CSV', 'a UInt8') SELECT 1")
        )
        == 164
    )
    assert _code(lambda: server.client(password="wrong")) == 516
    # HTTP statuses as a ClickHouse server gives them
    auth = ("writer", WRITER_PW)
    for q, status, code in [
        ("SELEC 1", 400, "62"),
        ("SELECT * FROM nope", 404, "60"),
    ]:
        r = requests.post(server.url, data=q, auth=auth)
        assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (status, code)
        assert r.text.startswith(f"Code: {code}. DB::Exception:")
    r = requests.post(server.url, data="SELECT 1", auth=("writer", "bad"))
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    r = requests.post(
        server.url,
        data="SELECT 1",
        headers={"X-ClickHouse-User": "reader", "X-ClickHouse-Key": READER_PW},
    )
    assert (r.status_code, r.text) == (200, "1\n")


def test_mid_stream_error_is_reported(server: Server) -> None:
    c = server.client()
    query = "SELECT throwIf(number = 2500000, 'boom') FROM numbers(3000000)"
    # StreamFailureError or DatabaseError, depending on where the client notices it
    with pytest.raises(Exception) as ei, c.query_row_block_stream(query) as stream:  # noqa: B017
        for _ in stream:
            pass
    assert "boom" in str(ei.value)


def test_binary_parquet_in_query_text(server: Server) -> None:
    """A query carrying raw Parquet bytes (not UTF-8) in its text runs: bytes end to end."""
    buf = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2, 3], "s": ["x", "y", "z"]}), buf)
    payload = buf.getvalue()
    try:
        payload.decode()
        raise AssertionError("the payload should not be valid UTF-8")
    except UnicodeDecodeError:
        pass
    query = (
        b"SELECT sum(a), arrayStringConcat(groupArray(s), ',') FROM "
        b"(SELECT a, s FROM format(Parquet, $$" + payload + b"$$) ORDER BY a) FORMAT TSV"
    )
    assert server.client().command("", data=query) == ["6", "x,y,z"]
    r = requests.post(server.url, data=query, auth=("reader", READER_PW), timeout=10)
    assert (r.status_code, r.text) == (200, "6\tx,y,z\n"), r.text


def test_query_log_finds_client_query_ids(server: Server, table: str, prefix: str) -> None:
    """system.query_log (kept by our server): a client-supplied query_id is found right after,
    with its user, text, rows and error; the read-only user reads the whole log."""
    c = server.client()
    ok, ins, bad = f"{prefix}-1ok", f"{prefix}-2ins", f"{prefix}-3bad"
    assert c.command("SELECT 41 + 1", settings={"query_id": ok}) == 42
    c.insert(table, _rows(3), settings={"query_id": ins})
    with pytest.raises(DatabaseError):
        c.command("SELECT * FROM fp.no_such_table", settings={"query_id": bad})
    reader = server.client(username="reader", password=READER_PW)
    rows = reader.query(
        "SELECT query_id, user, query, type, written_rows, exception_code, "
        "query_duration_ms < 60000 FROM system.query_log "
        "WHERE query_id IN {ids:Array(String)} ORDER BY query_id",
        parameters={"ids": [ok, ins, bad]},
    ).result_rows
    assert rows == [
        (ok, "writer", "SELECT 41 + 1", "QueryFinish", 0, 0, 1),
        (ins, "writer", f"INSERT INTO {table} (`id`, `name`, `value`)", "QueryFinish", 3, 0, 1),
        (bad, "writer", "SELECT * FROM fp.no_such_table", "ExceptionWhileProcessing", 0, 60, 1),
    ]
    assert "UNKNOWN_TABLE" in str(
        reader.command(f"SELECT exception FROM `system`.query_log WHERE query_id = '{bad}'")
    )


def test_show_create_table_of_system_tables(server: Server) -> None:
    """chDB keeps no metadata for system tables: the server builds the statement from
    system.columns/system.tables, as ClickHouse shows it; an unknown one is UNKNOWN_TABLE."""
    reader = server.client(username="reader", password=READER_PW)
    stmt = reader.query("SHOW CREATE TABLE system.tables").result_rows[0][0]
    columns = reader.query(
        "SELECT name, type FROM system.columns WHERE database = 'system' AND table = 'tables' "
        "ORDER BY position"
    ).result_rows
    comment = reader.command(
        "SELECT comment FROM system.tables WHERE database = 'system' AND name = 'tables'"
    )
    body = ",\n".join(f"    `{n}` {t}" for n, t in columns)
    assert stmt == (
        f"CREATE TABLE system.tables\n(\n{body}\n)\nENGINE = SystemTables\nCOMMENT '{comment}'"
    )
    assert stmt.startswith("CREATE TABLE system.tables\n(\n    `database` String,\n")
    assert reader.query("SHOW CREATE `system`.`one`").result_rows == [
        ("CREATE TABLE system.one\n(\n    `dummy` UInt8\n)\nENGINE = SystemOne\nCOMMENT "
         + repr(reader.command("SELECT comment FROM system.tables WHERE database = 'system' "
                               "AND name = 'one'")),)
    ]  # fmt: skip
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE"):
        reader.command("SHOW CREATE TABLE system.no_such_table")


def test_sqlalchemy_dialect_creates_reflects_inserts_and_selects(server: Server) -> None:
    """clickhouse-connect's SQLAlchemy dialect (clickhousedb://, Superset's): DDL through the
    dialect, inspection of a database, ORM-style insert with its row count, select; the
    read-only user reflects the same table."""
    import sqlalchemy as sa
    from clickhouse_connect.cc_sqlalchemy.datatypes.sqltypes import String, UInt32
    from clickhouse_connect.cc_sqlalchemy.ddl.tableengine import MergeTree

    db = f"sa{uuid.uuid4().hex[:8]}"
    server.client().command(f"CREATE DATABASE {db}")
    engine = sa.create_engine(f"clickhousedb://writer:{WRITER_PW}@127.0.0.1:{server.port}/{db}")
    made = sa.Table(
        "made",
        sa.MetaData(schema=db),
        sa.Column("k", UInt32, primary_key=True),
        sa.Column("v", String),
        MergeTree(order_by="k"),
    )
    made.metadata.create_all(engine)
    insp = sa.inspect(engine)
    assert db in insp.get_schema_names()
    assert insp.get_table_names(schema=db) == ["made"] and insp.has_table("made", schema=db)
    assert [(c["name"], str(c["type"])) for c in insp.get_columns("made", schema=db)] == [
        ("k", "UInt32"),
        ("v", "String"),
    ]
    with engine.begin() as conn:
        res = conn.execute(made.insert(), [{"k": i, "v": f"v{i}"} for i in range(5)])
        assert res.rowcount == 5
        assert conn.execute(sa.text("SELECT version()")).scalar() == server.client().server_version
    reader = sa.create_engine(f"clickhousedb://reader:{READER_PW}@127.0.0.1:{server.port}/{db}")
    with reader.connect() as conn:
        table = sa.Table("made", sa.MetaData(), autoload_with=conn, schema=db)
        rows = conn.execute(
            sa.select(table.c.k, table.c.v).where(table.c.k >= 3).order_by(table.c.k)
        )
        assert rows.fetchall() == [(3, "v3"), (4, "v4")]
    engine.dispose()
    reader.dispose()


def test_async_client(server: Server, prefix: str) -> None:
    """clickhouse-connect's async client (aiohttp): DDL, insert with exact written rows,
    queries with their query ids (found in system.query_log), a DataFrame, a session's
    SET, and a ClickHouse error code."""
    import asyncio

    async def run() -> None:
        c = await clickhouse_connect.get_async_client(
            host="127.0.0.1",
            port=server.port,
            username="writer",
            password=WRITER_PW,
            session_id=f"{prefix}-async",  # the async client has none unless given
        )
        try:
            assert await c.command("SELECT version()") == c.server_version
            await c.command(f"CREATE DATABASE {prefix}")
            await c.command(
                f"CREATE TABLE {prefix}.a (id UInt64, name String) ENGINE = MergeTree ORDER BY id"
            )
            ins = await c.insert(
                f"{prefix}.a", [[i, f"n{i}"] for i in range(1000)], column_names=["id", "name"]
            )
            assert ins.written_rows == 1000 and ins.query_id()
            res = await c.query(
                f"SELECT id, name FROM {prefix}.a WHERE id % 250 = 1 ORDER BY id",
                settings={"query_id": f"{prefix}-q"},
            )
            assert res.result_rows == [(1, "n1"), (251, "n251"), (501, "n501"), (751, "n751")]
            assert res.query_id == f"{prefix}-q" and res.summary["read_rows"] == "1000"
            df = await c.query_df(f"SELECT sum(id) AS s, count() AS n FROM {prefix}.a")
            assert df.to_dict("records") == [{"s": 499500, "n": 1000}]
            await c.command("SET max_threads = 3")  # the session keeps it
            assert await c.command("SELECT getSetting('max_threads')") == 3
            assert await c.command(
                f"SELECT user, read_rows, type FROM system.query_log WHERE query_id = '{prefix}-q'"
            ) == ["writer", "1000", "QueryFinish"]
            with pytest.raises(DatabaseError, match="code: 60"):
                await c.query(f"SELECT 1 FROM {prefix}.missing")
        finally:
            await c.close()

    asyncio.run(run())


def test_second_independent_client_aiochclient(server: Server, prefix: str) -> None:
    """aiochclient, an async HTTP client independent of clickhouse-connect: insert with
    VALUES, typed fetch, query ids found in system.query_log, a gzip'd response, errors."""
    import asyncio
    import datetime as dt

    import aiohttp
    from aiochclient import ChClient, ChClientError

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            c = ChClient(session, url=server.url, user="writer", password=WRITER_PW)
            assert await c.is_alive()
            await c.execute(f"CREATE DATABASE {prefix}")
            await c.execute(
                f"CREATE TABLE {prefix}.ai (id UInt64, s String, d Date) "
                "ENGINE = MergeTree ORDER BY id"
            )
            await c.execute(
                f"INSERT INTO {prefix}.ai VALUES",
                *[(i, f"s{i}", dt.date(2026, 1, 1 + i)) for i in range(3)],
                query_id=f"{prefix}-ins",
            )
            rows = await c.fetch(f"SELECT * FROM {prefix}.ai ORDER BY id", query_id=f"{prefix}-sel")
            assert [tuple(r.values()) for r in rows] == [
                (i, f"s{i}", dt.date(2026, 1, 1 + i)) for i in range(3)
            ]
            gz = ChClient(session, url=server.url, user="writer", password=WRITER_PW,
                          compress_response=True)  # fmt: skip
            assert await gz.fetchval(f"SELECT sum(id) FROM {prefix}.ai") == 3
            logged = await c.fetch(
                "SELECT query_id, written_rows, read_rows, type FROM system.query_log "
                f"WHERE query_id LIKE '{prefix}-%' ORDER BY query_id"
            )
            assert [tuple(r.values()) for r in logged] == [
                (f"{prefix}-ins", 3, 3, "QueryFinish"),
                (f"{prefix}-sel", 0, 3, "QueryFinish"),
            ]
            for stmt, code in ((f"SELECT 1 FROM {prefix}.missing", "Code: 60."),
                               ("CREATE QUOTA q", "Code: 48.")):  # fmt: skip
                with pytest.raises(ChClientError, match=code):
                    await c.execute(stmt)

    asyncio.run(run())


def test_summary_counts_source_rows_and_exact_writes(server: Server, prefix: str) -> None:
    """X-ClickHouse-Summary as a ClickHouse server gives it: read_rows/read_bytes are rows
    and bytes read from storage (not result rows), written_rows exact for every insert,
    result_rows the rows returned; the same numbers land in system.query_log."""
    c = server.client()
    t = f"fp.{prefix}"
    c.command(f"CREATE TABLE {t} (id UInt64, v UInt32) ENGINE = MergeTree ORDER BY id")
    ins = c.insert(t, [[i, i % 100] for i in range(30_000)], column_names=["id", "v"])
    assert (ins.written_rows, ins.summary["read_rows"]) == (30_000, "30000")
    more = c.command(f"INSERT INTO {t} SELECT number + 30000, number % 100 FROM numbers(20000)")
    assert isinstance(more, QuerySummary)
    assert (more.written_rows, more.summary["read_rows"]) == (20_000, "20000")
    assert int(more.summary["written_bytes"]) == 20_000 * 12
    res = c.query(f"SELECT id FROM {t} WHERE v = 7 ORDER BY id", settings={"query_id": prefix})
    assert len(res.result_rows) == 500
    summary = {k: int(v) for k, v in res.summary.items() if k != "query_id"}
    assert summary["elapsed_ns"] > 0
    del summary["elapsed_ns"], summary["result_bytes"]
    # v = 7 is no key condition: the whole table is read, 8 + 4 bytes a row
    assert summary == {
        "read_rows": 50_000, "read_bytes": 50_000 * 12, "written_rows": 0, "written_bytes": 0,
        "total_rows_to_read": 50_000, "result_rows": 500,
    }  # fmt: skip
    assert c.command("SELECT 1 WHERE 0") == ""  # an empty result, not a summary
    logged = c.query(
        "SELECT read_rows, read_bytes, written_rows FROM system.query_log "
        f"WHERE query_id = '{prefix}'"
    ).result_rows
    assert logged == [(50_000, 600_000, 0)]


def test_session_log_records_logins_logouts_and_failures(server: Server, prefix: str) -> None:
    """system.session_log (kept by our server): a session's LoginSuccess and, once it idled
    out, its Logout with the same auth_id; a failed login with its reason."""
    session = f"{prefix}-s"
    c = server.client(session_id=session, autogenerate_session_id=False)
    assert c.command("SELECT 1", settings={"session_timeout": 1}) == 1
    r = requests.get(
        server.url,
        params={"query": "SELECT 1", "session_id": f"{prefix}-bad"},
        auth=("writer", "wrong"),
        timeout=10,
    )
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    reader = server.client(username="reader", password=READER_PW, autogenerate_session_id=False)
    query = (
        "SELECT type, user, session_id, interface, client_address, failure_reason != '' "
        "FROM system.session_log WHERE session_id IN {ids:Array(String)} "
        "ORDER BY event_time_microseconds"
    )
    ids = {"ids": [session, f"{prefix}-bad"]}
    deadline = time.monotonic() + 20
    while True:  # the server ends idle sessions every 5 s
        rows = reader.query(query, parameters=ids).result_rows
        if len(rows) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    lo = ipaddress.ip_address("::ffff:127.0.0.1")
    assert rows == [
        ("LoginSuccess", "writer", session, "HTTP", lo, 0),
        ("LoginFailure", "writer", f"{prefix}-bad", "HTTP", lo, 1),
        ("Logout", "writer", session, "HTTP", lo, 0),
    ]
    auth_ids = reader.query(
        "SELECT uniqExact(auth_id) FROM system.session_log WHERE session_id = {s:String}",
        parameters={"s": session},
    ).result_rows
    assert auth_ids == [(1,)]


def test_concurrent_writers_and_readers(server: Server, table: str) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            c = server.client()
            for j in range(5):
                c.insert(
                    table, _rows(10_000, (k * 5 + j) * 10_000), column_names=["id", "name", "value"]
                )
        except BaseException as e:
            errors.append(e)

    def reader() -> None:
        try:
            c = server.client(username="reader", password=READER_PW)
            for _ in range(20):
                n = c.query(f"SELECT count() FROM {table}").result_rows[0][0]
                assert n % 10_000 == 0  # whole inserts only
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    c = server.client()
    assert c.query(f"SELECT count(), uniqExact(id) FROM {table}").result_rows == [
        (150_000, 150_000)
    ]


# -- process level ----------------------------------------------------------------------------


def test_startup_errors_are_one_line(server: Server, tmp_path: Path) -> None:
    # the data directory is locked by the running server
    other = Server(server.data, server.users, _free_port(), tmp_path / "x.log")
    res = subprocess.run(other.argv(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "locked by another process" in res.stderr
    # the port is taken
    other = Server(tmp_path / "d2", server.users, server.port, tmp_path / "y.log")
    res = subprocess.run(other.argv(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and f"port {server.port}" in res.stderr


@pytest.mark.slow
def test_kill_9_keeps_every_acknowledged_insert(tmp_path: Path) -> None:
    srv = _make_server(tmp_path)
    srv.start()
    try:
        c = srv.client()
        c.command(
            "CREATE TABLE default.crash (id UInt64, batch UInt32) ENGINE = MergeTree ORDER BY id"
        )
        acked = 0
        batches = 0
        stop = threading.Event()
        failure: list[BaseException] = []

        def loop() -> None:
            nonlocal acked, batches
            cl = srv.client()
            while not stop.is_set():
                rows = [[batches * 20_000 + i, batches] for i in range(20_000)]
                try:
                    cl.insert("default.crash", rows, column_names=["id", "batch"])
                except Exception:
                    return  # the server died mid-insert: this one was not acknowledged
                acked += len(rows)
                batches += 1

        t = threading.Thread(target=loop)
        t.start()
        while acked < 200_000 and t.is_alive():
            time.sleep(0.05)
        srv.kill9()
        stop.set()
        t.join(30)
        assert not failure
        srv.start()
        c = srv.client()
        whole = c.query(
            "SELECT countIf(c != 20000) FROM "
            "(SELECT batch, count() AS c FROM default.crash GROUP BY batch)"
        ).result_rows[0][0]
        total = c.query("SELECT count() FROM default.crash").result_rows[0][0]
        # every acknowledged batch is there; a batch in flight at the kill is all or nothing
        assert total in (acked, acked + 20_000), (total, acked)
        assert whole == 0  # no half batch visible
    finally:
        srv.stop()
    assert os.path.isdir(srv.data)
