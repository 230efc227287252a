"""The access-control pieces that need no engine: which statements are implemented, the
FORMAT clause a wrapped query drops, and the row filter each user gets (ClickHouse's
semantics: permissive OR'ed, restrictive AND'ed, ALL EXCEPT, users without a policy)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flinkpulse.clickhouse import sql
from flinkpulse.clickhouse.access import AccessControl, Policy, State, supported
from flinkpulse.clickhouse.users import User, Users


def test_supported_access_statements() -> None:
    cases = {
        "CREATE ROLE": True,
        "CREATE OR REPLACE ROW POLICY": True,
        "ALTER USER": True,
        "DROP POLICY": True,
        "GRANT": True,
        "REVOKE": True,
        "SHOW ROW POLICIES": True,
        "SHOW POLICIES": True,
        "SHOW GRANTS": True,
        "SHOW CREATE ROW POLICY": True,
        "SHOW CREATE USER": True,
        "CREATE QUOTA": False,
        "ALTER SETTINGS PROFILE": False,
        "SET ROLE": False,
        "SET DEFAULT ROLE": False,
        "SHOW QUOTAS": False,
        "SHOW ACCESS": False,
        "SHOW CURRENT ROLES": False,
        "CREATE MASKING POLICY": False,
    }
    assert {w: supported(w) for w in cases} == cases


def test_strip_format() -> None:
    assert sql.strip_format(b"SELECT 1\n FORMAT Native") == b"SELECT 1\n "
    assert sql.strip_format(b"SELECT 'FORMAT x', (SELECT 1 FORMAT y)") == (
        b"SELECT 'FORMAT x', (SELECT 1 FORMAT y)"
    )
    assert (
        sql.strip_format(b"SHOW ROLES FORMAT JSON SETTINGS a = 1") == b"SHOW ROLES  SETTINGS a = 1"
    )


def _control(tmp_path: Path, policies: list[Policy], role_grants: Any) -> AccessControl:
    users = Users({"writer": User("writer"), "reader": User("reader", settings={"readonly": "2"})})
    ac = AccessControl(SimpleNamespace(path=tmp_path), users)  # type: ignore[arg-type]
    ac.state = State(
        users={"alice": {"id": "1"}, "bob": {"id": "2"}},
        roles={"eu": "3"},
        role_grants=role_grants,
        policies=policies,
    )
    return ac


def test_row_filters(tmp_path: Path) -> None:
    ac = _control(
        tmp_path,
        [
            Policy("p_eu", "fp", "sales", "region = 'eu'", to=["eu"]),
            Policy("p_apac", "fp", "sales", "region = 'apac'", to=["alice"]),
            Policy("small", "fp", "sales", "amount < 4", restrictive=True, all=True),
            Policy("other", "fp", "t", "1", all=True, except_=["eu"]),
        ],
        [("alice", "eu", False)],
    )
    alice = User("alice", storage="local_directory")
    bob = User("bob", storage="local_directory")
    writer = ac.file_users.users["writer"]
    assert ac.row_filters(alice) == (
        "{'fp.sales': '((region = \\'eu\\') OR (region = \\'apac\\')) AND (amount < 4)', "
        "'fp.t': '0'}"
    )
    assert ac.row_filters(bob) == "{'fp.sales': '0 AND (amount < 4)', 'fp.t': '((1))'}"
    # the users file's users: only the policies naming them (here ALL)
    assert ac.row_filters(writer) == "{'fp.sales': '1 AND (amount < 4)', 'fp.t': '((1))'}"
    assert ac.is_admin(writer) and not ac.is_admin(ac.file_users.users["reader"])
    assert not ac.is_admin(alice)


def test_policy_statement_text() -> None:
    p = Policy("p", "fp", "sales", "region = 'eu'", all=True, except_=["a b", "c"])
    assert p.create_statement() == (
        "CREATE ROW POLICY p ON fp.sales FOR SELECT USING region = 'eu' TO ALL EXCEPT `a b`, c"
    )
    assert p.applies("x", set()) and not p.applies("c", set()) and not p.applies("x", {"a b"})
