"""Access management of the embedded ClickHouse server: users, roles, grants and row policies
created with SQL by the admin, enforced for every query, shown as a ClickHouse server shows
them, kept across kill -9 -- through clickhouse-connect (sync, async, SQLAlchemy) and HTTP.

The module starts its own server (writer = admin, reader = read-only) on a free port.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
import requests
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.integration.test_clickhouse_server import READER_PW, Server, _code, _make_server

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "clickhouse.md"
ALICE_PW = "alice-secret"
SALES = [("eu", 1), ("us", 2), ("eu", 3), ("apac", 4), ("us", 5)]


def docs_statements() -> list[str]:
    """The SQL of the access-management example in docs/clickhouse.md, statement by
    statement: the test runs exactly what the docs show."""
    text = DOCS.read_text()
    m = re.search(r"```sql\n(-- access management example.*?)```", text, re.S)
    assert m, "docs/clickhouse.md has no access management example"
    body = "\n".join(line for line in m.group(1).splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def _rows(res: object) -> list[tuple[object, ...]]:
    return [tuple(r) for r in res.result_rows]  # type: ignore[attr-defined]


def _example_server(tmp: Path) -> Server:
    """A started server with the docs' example run by the writer and fp.sales filled."""
    srv = _make_server(tmp)
    srv.start()
    admin = srv.client()
    admin.command("CREATE DATABASE fp")
    for stmt in docs_statements():
        admin.command(stmt)
    admin.insert("fp.sales", [list(r) for r in SALES], column_names=["region", "amount"])
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _example_server(tmp_path_factory.mktemp("chaccess"))
    yield srv
    srv.stop()


def alice(server: Server, **kw: object) -> clickhouse_connect.driver.Client:
    return server.client(username="alice", password=ALICE_PW, **kw)


def reader(server: Server) -> clickhouse_connect.driver.Client:
    return server.client(username="reader", password=READER_PW)


def test_docs_example_alice_sees_only_eu_rows(server: Server) -> None:
    """The docs' example: a row policy region = 'eu' for role analyst_eu granted to alice;
    alice sees exactly the eu rows, the admin and the read-only reader see all."""
    q = "SELECT region, amount FROM fp.sales ORDER BY amount"
    assert _rows(alice(server).query(q)) == [("eu", 1), ("eu", 3)]
    assert _rows(server.client().query(q)) == SALES
    assert _rows(reader(server).query(q)) == SALES
    c = server.client()
    assert _rows(c.query("SHOW ROW POLICIES")) == [("eu_only ON fp.sales",)]
    assert _rows(c.query("SHOW ROW POLICIES ON fp.sales")) == [("eu_only",)]
    assert _rows(c.query("SHOW ROLES")) == [("analyst_eu",)]
    assert _rows(c.query("SHOW USERS")) == [("alice",), ("default",), ("reader",), ("writer",)]
    assert _rows(c.query("SHOW GRANTS FOR alice")) == [("GRANT analyst_eu TO alice",)]
    assert _rows(c.query("SHOW GRANTS FOR analyst_eu")) == [
        ("GRANT SELECT ON fp.sales TO analyst_eu",)
    ]
    assert _rows(c.query("SHOW CREATE ROW POLICY eu_only ON fp.sales")) == [
        ("CREATE ROW POLICY eu_only ON fp.sales FOR SELECT USING region = 'eu' TO analyst_eu",)
    ]
    assert _rows(c.query("SHOW CREATE ROLE analyst_eu")) == [("CREATE ROLE analyst_eu",)]
    assert _rows(c.query("SHOW CREATE USER alice")) == [
        ("CREATE USER alice IDENTIFIED WITH sha256_hash BY '[HIDDEN]'",)
    ]
    # the system tables clients read
    assert _rows(c.query("SELECT name, storage FROM system.roles")) == [
        ("analyst_eu", "local_directory")
    ]
    assert _rows(
        c.query(
            "SELECT name, short_name, database, table, select_filter, is_restrictive, "
            "apply_to_all, apply_to_list, apply_to_except FROM system.row_policies"
        )
    ) == [
        ("eu_only ON fp.sales", "eu_only", "fp", "sales", "region = 'eu'", 0, 0, ["analyst_eu"], [])
    ]
    assert _rows(
        c.query("SELECT user_name, role_name, access_type, database, table FROM system.grants")
    ) == [(None, "analyst_eu", "SELECT", "fp", "sales")]
    assert _rows(
        c.query("SELECT user_name, granted_role_name, with_admin_option FROM system.role_grants")
    ) == [("alice", "analyst_eu", 0)]
    assert _rows(c.query("SELECT name, storage, auth_type FROM system.users ORDER BY name")) == [
        ("alice", "local_directory", "sha256_password"),
        ("default", "users_xml", "no_password"),
        ("reader", "users_xml", "sha256_password"),
        ("writer", "users_xml", "sha256_password"),
    ]
    # alice's own grants; a wrong password is refused as any user's
    assert _rows(alice(server).query("SHOW GRANTS")) == [("GRANT analyst_eu TO alice",)]
    assert _code(lambda: server.client(username="alice", password="wrong")) == 516


def test_row_policies_hold_for_every_query_shape(server: Server) -> None:
    """Subqueries, JOINs, IN, CTEs, UNION, FINAL, views, INSERT ... SELECT by the admin into
    a table alice reads: every read of fp.sales by alice goes through the policy."""
    w = server.client()
    w.command(
        "CREATE TABLE fp.regions (region String, name String) ENGINE = MergeTree ORDER BY region"
    )
    w.insert("fp.regions", [["eu", "Europe"], ["us", "USA"], ["apac", "Asia"]])
    w.command(
        "CREATE TABLE fp.latest (region String, amount UInt32) "
        "ENGINE = ReplacingMergeTree ORDER BY amount"
    )
    w.insert("fp.latest", [list(r) for r in SALES])
    w.command("CREATE VIEW fp.sales_view AS SELECT * FROM fp.sales")
    w.command("GRANT SELECT ON fp.regions TO alice")
    w.command("GRANT SELECT ON fp.latest TO analyst_eu")
    w.command("GRANT SELECT ON fp.sales_view TO analyst_eu")
    w.command("CREATE ROW POLICY eu_only ON fp.latest USING region = 'eu' TO analyst_eu")
    a = alice(server)
    cases = {
        "SELECT count() FROM (SELECT * FROM fp.sales)": [(2,)],
        "SELECT s.amount, r.name FROM fp.sales AS s JOIN fp.regions AS r "
        "ON s.region = r.region ORDER BY s.amount": [(1, "Europe"), (3, "Europe")],
        "SELECT region FROM fp.regions WHERE region IN (SELECT region FROM fp.sales)": [("eu",)],
        "WITH x AS (SELECT amount FROM fp.sales) SELECT sum(amount) FROM x": [(4,)],
        "SELECT count() FROM fp.sales UNION ALL SELECT count() FROM fp.regions": [(2,), (3,)],
        "SELECT amount FROM fp.latest FINAL ORDER BY amount": [(1,), (3,)],
        "SELECT count() FROM fp.sales_view": [(2,)],
        "SELECT (SELECT max(amount) FROM fp.sales)": [(3,)],
    }
    got = {q: sorted(_rows(a.query(q))) for q in cases}
    assert got == {q: sorted(v) for q, v in cases.items()}
    # the same through the async client and the SQLAlchemy dialect
    assert _async_rows(server, "SELECT amount FROM fp.sales ORDER BY amount") == [(1,), (3,)]
    import sqlalchemy as sa

    engine = sa.create_engine(f"clickhousedb://alice:{ALICE_PW}@127.0.0.1:{server.port}/fp")
    with engine.connect() as conn:
        table = sa.Table("sales", sa.MetaData(), autoload_with=conn, schema="fp")
        rows = conn.execute(sa.select(table.c.region, table.c.amount).order_by(table.c.amount))
        assert rows.fetchall() == [("eu", 1), ("eu", 3)]
    engine.dispose()
    w.command("DROP ROW POLICY eu_only ON fp.latest")
    w.command("REVOKE SELECT ON fp.regions FROM alice")


def _async_rows(server: Server, q: str, user: str = "alice", pw: str = ALICE_PW) -> list[tuple]:
    async def run() -> list[tuple]:
        c = await clickhouse_connect.get_async_client(
            host="127.0.0.1", port=server.port, username=user, password=pw
        )
        try:
            return [tuple(r) for r in (await c.query(q)).result_rows]
        finally:
            await c.close()

    return asyncio.run(run())


def test_privileges_are_checked_per_query(server: Server) -> None:
    """Without a grant: ACCESS_DENIED (497, HTTP 403) as from ClickHouse; table functions
    that reach around the policies, changing the row filters and reading the access tables
    are refused too."""
    w = server.client()
    w.command("CREATE TABLE fp.secret (x UInt8) ENGINE = MergeTree ORDER BY x")
    w.command("CREATE TABLE fp.joined (k UInt32, v String) ENGINE = Join(ANY, LEFT, k)")
    a = alice(server)
    for q in (
        "SELECT * FROM fp.secret",
        "SELECT * FROM fp.sales WHERE amount IN (SELECT x FROM fp.secret)",
        "SELECT count() FROM merge('fp', '^sales$')",
        "SELECT * FROM file('x.csv', CSV, 'a String')",
        "SELECT * FROM fp.sales SETTINGS additional_table_filters = {}",
        "SELECT joinGet('fp.joined', 'v', toUInt32(1))",
        "SELECT amount FROM fp.sales INTO OUTFILE 'leak.csv'",
        "SELECT name FROM system.roles",
        "SELECT * FROM system.row_policies",
        "INSERT INTO fp.sales VALUES ('us', 9)",
        "DROP TABLE fp.secret",
        "CREATE ROLE x",
        "SHOW ROW POLICIES",
        "SHOW GRANTS FOR writer",
    ):
        assert _code(lambda q=q: a.command(q)) == 497, q
    r = requests.get(
        server.url,
        params={"query": "SELECT count() FROM fp.sales", "additional_table_filters": "{}"},
        auth=("alice", ALICE_PW),
        timeout=10,
    )
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (403, "497")
    assert "alice: Not enough privileges. To execute this query, it's necessary to have" in r.text
    session = alice(server, session_id="alice-s")
    assert _code(lambda: session.command("SET additional_table_filters = {}")) == 497
    # grants given later apply to the next query, of a session too
    w.command("GRANT INSERT ON fp.sales TO alice")
    w.command("GRANT SELECT ON fp.secret TO analyst_eu")
    session.command("INSERT INTO fp.sales VALUES ('eu', 7), ('us', 8)")
    assert _rows(session.query("SELECT count() FROM fp.secret")) == [(0,)]
    assert _rows(session.query("SELECT amount FROM fp.sales ORDER BY amount")) == [
        (1,),
        (3,),
        (7,),
    ]
    w.command("REVOKE INSERT ON fp.sales FROM alice")
    w.command("REVOKE SELECT ON fp.secret FROM analyst_eu")
    assert _code(lambda: session.command("INSERT INTO fp.sales VALUES ('eu', 9)")) == 497
    assert _code(lambda: session.query("SELECT count() FROM fp.secret")) == 497
    w.command("ALTER TABLE fp.sales DELETE WHERE amount IN (7, 8) SETTINGS mutations_sync = 1")


def test_policy_semantics(server: Server) -> None:
    """Permissive policies OR'ed, restrictive ones AND'ed, TO ALL EXCEPT, a SQL user no
    policy applies to sees no rows of a table with policies, a policy naming the admin
    applies to it, dropping restores."""
    w = server.client()
    w.command("CREATE USER bob IDENTIFIED BY 'bob-secret'")
    w.command("GRANT SELECT ON fp.* TO bob")
    bob = server.client(username="bob", password="bob-secret")
    a = alice(server)
    q = "SELECT amount FROM fp.sales ORDER BY amount"
    assert _rows(bob.query(q)) == []  # fp.sales has a policy, none for bob
    assert _rows(bob.query("SELECT count() FROM fp.regions")) == [(3,)]  # no policies there
    w.command("CREATE ROW POLICY apac ON fp.sales USING region = 'apac' TO alice, bob")
    assert _rows(a.query(q)) == [(1,), (3,), (4,)]  # eu OR apac
    assert _rows(bob.query(q)) == [(4,)]
    w.command("CREATE ROW POLICY small ON fp.sales AS RESTRICTIVE USING amount < 4 TO ALL")
    assert _rows(a.query(q)) == [(1,), (3,)]  # (eu OR apac) AND amount < 4
    assert _rows(bob.query(q)) == []
    assert _rows(server.client().query(q)) == [(1,), (2,), (3,)]  # the admin too: TO ALL
    w.command("DROP ROW POLICY small ON fp.sales")
    w.command("CREATE ROW POLICY everyone ON fp.sales USING 1 TO ALL EXCEPT analyst_eu")
    assert _rows(bob.query(q)) == [(1,), (2,), (3,), (4,), (5,)]
    assert _rows(a.query(q)) == [(1,), (3,), (4,)]
    w.command("ALTER ROW POLICY everyone ON fp.sales USING amount > 4")
    assert _rows(bob.query(q)) == [(4,), (5,)]
    w.command("DROP ROW POLICY everyone ON fp.sales")
    w.command("DROP ROW POLICY apac ON fp.sales")
    w.command("DROP USER bob")
    assert _code(lambda: server.client(username="bob", password="bob-secret")) == 516
    assert _rows(a.query(q)) == [(1,), (3,)]


def test_roles_users_and_grants_lifecycle(server: Server) -> None:
    """CREATE/ALTER/DROP ROLE and USER, GRANT/REVOKE of privileges and roles, nested roles,
    renames that follow into grants and policies, and ClickHouse's error codes."""
    w = server.client()
    w.command("CREATE ROLE IF NOT EXISTS analyst_eu")  # exists: nothing happens
    w.command("CREATE ROLE base, extra")
    w.command("GRANT SELECT ON fp.regions TO base")
    w.command("GRANT base TO extra")
    w.command("CREATE USER carol IDENTIFIED WITH plaintext_password BY 'c1'")
    w.command("GRANT extra TO carol WITH ADMIN OPTION")
    carol = server.client(username="carol", password="c1")
    assert _rows(carol.query("SELECT count() FROM fp.regions")) == [(3,)]  # through 2 roles
    assert _rows(w.query("SHOW GRANTS FOR carol, extra")) == [
        ("GRANT extra TO carol WITH ADMIN OPTION",),
        ("GRANT base TO extra",),
    ]
    w.command("ALTER USER carol IDENTIFIED BY 'c2'")
    assert _code(lambda: server.client(username="carol", password="c1")) == 516
    carol = server.client(username="carol", password="c2")
    w.command("ALTER ROLE base RENAME TO basic")
    assert _rows(w.query("SHOW GRANTS FOR basic")) == [("GRANT SELECT ON fp.regions TO basic",)]
    w.command("REVOKE basic FROM extra")
    assert _code(lambda: carol.query("SELECT count() FROM fp.regions")) == 497
    w.command("GRANT SELECT ON *.* TO carol")
    assert _rows(carol.query("SELECT count() FROM fp.regions")) == [(3,)]
    assert _code(lambda: w.command("REVOKE SELECT ON fp.regions FROM carol")) == 48  # partial
    w.command("REVOKE SELECT ON *.* FROM carol")
    w.command("GRANT ALL ON *.* TO carol")  # ALL includes access management
    carol.command("CREATE ROLE made_by_carol")
    carol.command("DROP ROLE made_by_carol")
    w.command("DROP USER IF EXISTS carol, nobody")
    w.command("DROP ROLE basic, extra")
    assert _rows(w.query("SHOW ROLES")) == [("analyst_eu",)]
    # errors as ClickHouse's
    assert _code(lambda: w.command("CREATE ROLE analyst_eu")) == 493  # already exists
    assert _code(lambda: w.command("CREATE USER writer")) == 493  # in the users file
    assert _code(lambda: w.command("DROP USER writer")) == 495  # users file: read-only storage
    assert _code(lambda: w.command("GRANT SELECT ON fp.sales TO writer")) == 495
    assert _code(lambda: w.command("GRANT nope TO alice")) == 511
    assert _code(lambda: w.command("DROP ROLE nope")) == 511
    assert _code(lambda: w.command("GRANT SELECT(region) ON fp.sales TO alice")) == 48
    assert _code(lambda: w.command("DROP ROW POLICY nope ON fp.sales")) == 523
    w.command("DROP ROW POLICY IF EXISTS nope ON fp.sales")


def test_read_only_user_cannot_manage_access(server: Server) -> None:
    """The read-only reader reads (policies that name no reader leave it all rows) but
    cannot manage access: READONLY (164) for changes, ACCESS_DENIED (497) for SHOW."""
    r = reader(server)
    for stmt in (
        "CREATE ROLE r",
        "CREATE USER r",
        "GRANT SELECT ON fp.sales TO alice",
        "REVOKE analyst_eu FROM alice",
        "CREATE ROW POLICY p ON fp.sales USING 1 TO ALL",
        "DROP ROW POLICY eu_only ON fp.sales",
    ):
        assert _code(lambda s=stmt: r.command(s)) == 164, stmt
    for stmt in ("SHOW ROLES", "SHOW ROW POLICIES", "SELECT * FROM system.row_policies"):
        assert _code(lambda s=stmt: r.command(s)) == 497, stmt
    assert _rows(r.query("SHOW GRANTS")) == [("GRANT SHOW, SELECT ON *.* TO reader",)]
    assert _async_rows(server, "SELECT count() FROM fp.sales", "reader", READER_PW) == [(5,)]
    rr = requests.get(
        server.url, params={"query": "CREATE ROLE r"}, auth=("reader", READER_PW), timeout=10
    )
    assert (rr.status_code, rr.headers["X-ClickHouse-Exception-Code"]) == (500, "164")


def test_async_admin_manages_access(server: Server) -> None:
    """The async client as the admin: create a role and a policy, alice's view changes."""

    async def run() -> None:
        c = await clickhouse_connect.get_async_client(
            host="127.0.0.1", port=server.port, username="writer", password="writer-secret"
        )
        try:
            await c.command("CREATE ROLE analyst_us")
            await c.command("GRANT analyst_us TO alice")
            await c.command(
                "CREATE ROW POLICY us_only ON fp.sales USING region = 'us' TO analyst_us"
            )
            res = await c.query("SELECT name FROM system.row_policies ORDER BY name")
            assert [tuple(x) for x in res.result_rows] == [
                ("eu_only ON fp.sales",),
                ("us_only ON fp.sales",),
            ]
            # clickhouse-connect runs a bare SHOW ROW POLICIES as a command (TSV text)
            assert (
                await c.command("SHOW ROW POLICIES") == "eu_only ON fp.sales\nus_only ON fp.sales"
            )
        finally:
            await c.close()

    asyncio.run(run())
    q = "SELECT amount FROM fp.sales ORDER BY amount"
    assert _rows(alice(server).query(q)) == [(1,), (2,), (3,), (5,)]
    w = server.client()
    w.command("DROP ROW POLICY us_only ON fp.sales")
    w.command("DROP ROLE analyst_us")
    assert _rows(alice(server).query(q)) == [(1,), (3,)]


def test_unsupported_access_sql_is_refused_clearly(server: Server) -> None:
    """Quotas, settings profiles, masking policies, SET ROLE and role=: NOT_IMPLEMENTED (48,
    HTTP 501) with a sentence saying what the server has instead."""
    c = server.client()
    for stmt in (
        "CREATE QUOTA q",
        "CREATE SETTINGS PROFILE p",
        "SET ROLE analyst_eu",
        "SHOW QUOTAS",
        "SELECT * FROM system.quotas",
        "CREATE USER dave HOST LOCAL",
    ):
        with pytest.raises(DatabaseError, match="code: 48") as err:
            c.command(stmt)
        assert "not supported by flinkpulse's ClickHouse server" in str(err.value), stmt
    r = requests.get(
        server.url,
        params={"query": "SELECT 1", "role": "analyst_eu"},
        auth=("writer", "writer-secret"),
        timeout=10,
    )
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (501, "48")
    assert _rows(c.query("SHOW USERS")) == [("alice",), ("default",), ("reader",), ("writer",)]


def test_every_documented_clause(server: Server) -> None:
    """The clauses docs/clickhouse.md lists that the other tests do not use: OR REPLACE and
    IF NOT EXISTS, NOT IDENTIFIED / no_password / sha256_hash, user renames, WITH GRANT
    OPTION, AS PERMISSIVE, TO NONE, ALTER ROW POLICY ... RENAME TO."""
    from flinkpulse.clickhouse.users import sha256_hex

    w = server.client()
    w.command("CREATE ROLE tmp_r")
    w.command("GRANT SELECT ON fp.regions TO tmp_r WITH GRANT OPTION")
    assert _rows(w.query("SHOW GRANTS FOR tmp_r")) == [
        ("GRANT SELECT ON fp.regions TO tmp_r WITH GRANT OPTION",)
    ]
    w.command("CREATE OR REPLACE ROLE tmp_r")  # a new role: its grants are gone
    assert _rows(w.query("SHOW GRANTS FOR tmp_r")) == []
    assert _rows(w.query("SELECT count() FROM system.grants WHERE role_name = 'tmp_r'")) == [(0,)]
    w.command("CREATE USER IF NOT EXISTS dan NOT IDENTIFIED")
    w.command("CREATE USER IF NOT EXISTS dan IDENTIFIED BY 'ignored'")  # exists: unchanged
    w.command("GRANT tmp_r TO dan")
    w.command("GRANT SELECT ON fp.regions TO tmp_r")
    dan = server.client(username="dan", password="")
    assert _rows(dan.query("SELECT count() FROM fp.regions")) == [(3,)]
    w.command(f"CREATE OR REPLACE USER dan IDENTIFIED WITH sha256_hash BY '{sha256_hex('d1')}'")
    assert _code(lambda: server.client(username="dan", password="")) == 516
    assert _rows(server.client(username="dan", password="d1").query("SELECT 1")) == [(1,)]
    w.command("ALTER USER dan RENAME TO dana")
    assert _code(lambda: server.client(username="dan", password="d1")) == 516
    dana = server.client(username="dana", password="d1")
    assert _code(lambda: dana.query("SELECT count() FROM fp.regions")) == 497  # OR REPLACE
    w.command("CREATE USER erin IDENTIFIED WITH no_password")
    w.command("GRANT tmp_r TO erin")
    erin = server.client(username="erin", password="")
    w.command(
        "CREATE ROW POLICY IF NOT EXISTS p1 ON fp.regions AS PERMISSIVE FOR SELECT USING 1 TO NONE"
    )
    w.command("CREATE ROW POLICY IF NOT EXISTS p1 ON fp.regions USING 0 TO ALL")  # unchanged
    assert _rows(w.query("SHOW CREATE ROW POLICY p1 ON fp.regions")) == [
        ("CREATE ROW POLICY p1 ON fp.regions FOR SELECT USING 1 TO NONE",)
    ]
    assert _rows(erin.query("SELECT count() FROM fp.regions")) == [(0,)]  # no policy for erin
    w.command("CREATE OR REPLACE ROW POLICY p1 ON fp.regions USING region = 'eu' TO tmp_r")
    w.command("ALTER ROW POLICY p1 ON fp.regions RENAME TO p2")
    assert _rows(w.query("SHOW ROW POLICIES ON fp.regions")) == [("p2",)]
    assert _rows(erin.query("SELECT region FROM fp.regions")) == [("eu",)]
    assert _rows(server.client().query("SELECT count() FROM fp.regions")) == [(3,)]
    w.command("DROP ROW POLICY p2 ON fp.regions")
    w.command("DROP USER dana, erin")
    w.command("DROP ROLE tmp_r")
    assert _rows(w.query("SHOW ROLES")) == [("analyst_eu",)]


@pytest.mark.slow
def test_access_entities_survive_kill_9_and_restart(tmp_path: Path) -> None:
    """Roles, users, grants and policies are on disk when the statement is acknowledged: after
    kill -9 and restart alice still sees exactly the eu rows; a leftover temporary file of a
    write the kill interrupted is ignored (the previous state is whole) and removed."""
    srv = _example_server(tmp_path)
    try:
        srv.kill9()
        state = srv.data / "flinkpulse_access.json"
        before = json.loads(state.read_text())
        (srv.data / "flinkpulse_access.json.abc.tmp").write_text('{"roles": {"half')
        srv.start()
        q = "SELECT region, amount FROM fp.sales ORDER BY amount"
        assert _rows(alice(srv).query(q)) == [("eu", 1), ("eu", 3)]
        assert _rows(srv.client().query(q)) == SALES
        assert _rows(srv.client().query("SHOW ROW POLICIES")) == [("eu_only ON fp.sales",)]
        assert json.loads(state.read_text()) == before
        assert not list(srv.data.glob("flinkpulse_access.json.*.tmp"))
        # a change after the restart is kept across the next kill too
        srv.client().command("DROP ROW POLICY eu_only ON fp.sales")
        srv.kill9()
        srv.start()
        assert _rows(alice(srv).query(q)) == SALES  # no policy left on the table: all rows
        assert _rows(srv.client().query("SELECT count() FROM system.row_policies")) == [(0,)]
    finally:
        srv.stop()
