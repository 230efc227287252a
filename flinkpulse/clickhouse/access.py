"""Access management: SQL-defined users, roles, grants and row policies, kept by the server.

chDB cannot do this itself: its embedded server has only a read-only ``users_xml`` storage
(``CREATE ROLE`` fails with ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND), runs every query as its
own ``default`` user and cannot impersonate another (``EXECUTE AS`` is disabled in
clickhouse-local). So the server keeps the access entities (a JSON file in the data
directory, replaced atomically), answers the access-control SQL, shows them as
``system.users/roles/grants/role_grants/row_policies``, and enforces them per request:

* privileges: a user created with ``CREATE USER`` may read (``SELECT``, incl. every table a
  subquery, JOIN, CTE or IN reads: the engine's resolved query tree lists them) and insert
  only where a grant (direct or through roles) allows; other statements need ``ALL ON *.*``;
* row policies: the engine's ``additional_table_filters`` setting, set on the request's
  connection and never changeable by the user, filters every read of the table (subqueries,
  JOINs, FINAL, views, INSERT ... SELECT).

Users of the users file are administrators (every privilege, access management) unless their
profile is read-only; the read-only ones read everything and manage nothing.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flinkpulse.clickhouse import sql
from flinkpulse.clickhouse.engine import Connection, Engine, EngineError, quote
from flinkpulse.clickhouse.querylog import map_system_tables
from flinkpulse.clickhouse.users import User, Users, sha256_hex

DATABASE = "flinkpulse_access"
STATE_FILE = "flinkpulse_access.json"
SQL_STORAGE = "local_directory"
FILE_STORAGE = "users_xml"

#: system.<name> read by clients -> the server's tables (kept from the state)
TABLES: dict[str, str] = {
    "users": "name String, id UUID, storage String, auth_type String, "
    "host_ip Array(String), default_roles_all UInt8",
    "roles": "name String, id UUID, storage String",
    "grants": "user_name Nullable(String), role_name Nullable(String), access_type String, "
    "database Nullable(String), table Nullable(String), column Nullable(String), "
    "is_partial_revoke UInt8, grant_option UInt8",
    "role_grants": "user_name Nullable(String), role_name Nullable(String), "
    "granted_role_name String, granted_role_id UUID, granted_role_is_default UInt8, "
    "with_admin_option UInt8",
    "row_policies": "name String, short_name String, database String, table String, id UUID, "
    "storage String, select_filter Nullable(String), is_restrictive UInt8, "
    "apply_to_all UInt8, apply_to_list Array(String), apply_to_except Array(String)",
}
MAPPED = {f"{t}".encode(): f"{DATABASE}.{t}".encode() for t in TABLES}

#: privileges GRANT accepts (enforced: SELECT, INSERT, ALL, ACCESS MANAGEMENT)
PRIVILEGES = {
    "ALL", "SELECT", "INSERT", "ALTER", "CREATE", "DROP", "TRUNCATE", "OPTIMIZE", "SHOW",
    "ACCESS MANAGEMENT", "CREATE TABLE", "DROP TABLE", "CREATE DATABASE", "DROP DATABASE",
    "ALTER UPDATE", "ALTER DELETE", "SHOW TABLES", "SHOW COLUMNS", "SHOW DATABASES",
}  # fmt: skip

#: table functions a restricted user may read (they cannot reach other tables' rows)
SAFE_TABLE_FUNCTIONS = {
    "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generaterandom", "format",
    "generate_series", "generateseries", "null",
}  # fmt: skip

#: databases every user may read (the engine's metadata, the server's logs)
OPEN_DATABASES = {"system", "information_schema", "INFORMATION_SCHEMA", "flinkpulse_system"}

_TABLE_NODE = re.compile(
    r"^\s*TABLE id: \d+(?:, alias: [^,]*)?, table_name: (.+?)"
    r"(?:, final: \d+)?(?:, sample_size: [^,]*)?(?:, sample_offset: [^,]*)?$",
    re.M,
)
_FUNCTION_NODE = re.compile(r"^\s*TABLE_FUNCTION id: \d+.*table_function_name: (\w+)", re.M)
_IDENTIFIER_NODE = re.compile(r"^\s*IDENTIFIER id: ", re.M)
#: functions that read a table's rows without a table reference (dictionaries, Join tables)
_TABLE_READING_FUNCTION = re.compile(r"function_name: ((?:dict|joinGet)\w*)", re.M | re.I)


@dataclass
class Policy:
    short_name: str
    database: str
    table: str
    filter: str
    restrictive: bool = False
    to: list[str] = field(default_factory=list)
    all: bool = False
    except_: list[str] = field(default_factory=list)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def name(self) -> str:
        return f"{self.short_name} ON {self.database}.{self.table}"

    def applies(self, user: str, roles: set[str]) -> bool:
        if self.all:
            return user not in self.except_ and not roles & set(self.except_)
        return user in self.to or bool(roles & set(self.to))

    def to_text(self) -> str:
        if self.all:
            text = "ALL" + (
                " EXCEPT " + ", ".join(_name(n) for n in self.except_) if self.except_ else ""
            )
        else:
            text = ", ".join(_name(n) for n in self.to) or "NONE"
        return text

    def create_statement(self) -> str:
        kind = " AS restrictive" if self.restrictive else ""
        return (
            f"CREATE ROW POLICY {_name(self.short_name)} ON {_name(self.database)}."
            f"{_name(self.table)}{kind} FOR SELECT USING {self.filter} TO {self.to_text()}"
        )


@dataclass
class Grant:
    grantee: str
    access_type: str
    database: str | None  # None: any (*.*)
    table: str | None  # None: any table of `database`
    grant_option: bool = False

    def on_text(self) -> str:
        return f"{_name(self.database) if self.database else '*'}." + (
            _name(self.table) if self.table else "*"
        )

    def covers(self, access_type: str, database: str | None, table: str | None) -> bool:
        if self.access_type not in (access_type, "ALL"):
            return False
        if self.database is not None and self.database != database:
            return False
        return self.table is None or self.table == table


@dataclass
class State:
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> id, password
    roles: dict[str, str] = field(default_factory=dict)  # name -> id
    grants: list[Grant] = field(default_factory=list)
    role_grants: list[tuple[str, str, bool]] = field(default_factory=list)  # grantee, role
    policies: list[Policy] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "users": self.users,
            "roles": self.roles,
            "grants": [g.__dict__ for g in self.grants],
            "role_grants": [list(r) for r in self.role_grants],
            "policies": [p.__dict__ for p in self.policies],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> State:
        return cls(
            users=dict(d.get("users") or {}),
            roles=dict(d.get("roles") or {}),
            grants=[Grant(**g) for g in d.get("grants") or []],
            role_grants=[(a, b, bool(c)) for a, b, c in d.get("role_grants") or []],
            policies=[Policy(**p) for p in d.get("policies") or []],
        )


def _name(n: str) -> str:
    """An identifier as ClickHouse prints it (backquoted only when needed)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n):
        return n
    return "`" + n.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _file_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "flinkpulse-users-file:" + name))


class AccessControl:
    """The access entities of one server: state, persistence, SQL, checks."""

    def __init__(self, engine: Engine, users: Users) -> None:
        self.engine = engine
        self.file_users = users
        self.path = Path(engine.path) / STATE_FILE
        self.lock = threading.Lock()
        self.state = State()

    # -- lifecycle ----------------------------------------------------------------------------
    def open(self) -> None:
        """Load the state (an interrupted write left the previous file whole) and show it."""
        if self.path.exists():
            self.state = State.from_json(json.loads(self.path.read_text()))
        for p in self.path.parent.glob(STATE_FILE + ".*.tmp"):
            p.unlink(missing_ok=True)  # a write a kill -9 interrupted before its rename
        self._sync_users()
        conn = self.engine.connect()
        try:
            conn.query(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        finally:
            conn.close()
        self._refresh()

    def _save(self, state: State) -> None:
        """Write the whole state to a new file, fsync, rename over the old one, fsync the
        directory: after a kill -9 the file is the old or the new state, never a mix."""
        data = json.dumps(state.to_json(), indent=1, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(prefix=STATE_FILE + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _sync_users(self) -> None:
        self.file_users.extra = {
            n: User(n, u.get("password_sha256_hex", ""), storage=SQL_STORAGE)
            for n, u in self.state.users.items()
        }

    def _refresh(self) -> None:
        """Rebuild the tables behind system.users/roles/grants/... (each replaced at once)."""
        rows = self._rows()
        conn = self.engine.connect()
        try:
            for table, structure in TABLES.items():
                data = "".join(json.dumps(r).replace("$", "\\u0024") + "\n" for r in rows[table])
                conn.query(
                    f"CREATE OR REPLACE TABLE {DATABASE}.{table} ({structure}) ENGINE = Memory "
                    f"AS SELECT * FROM format(JSONEachRow, {quote(structure)}, $${data}$$)"
                )
        finally:
            conn.close()

    def _rows(self) -> dict[str, list[dict[str, Any]]]:
        st = self.state
        users: list[dict[str, Any]] = []
        for n, u in sorted(self.file_users.users.items()):
            users.append(
                {
                    "name": n,
                    "id": _file_id(n),
                    "storage": FILE_STORAGE,
                    "auth_type": "sha256_password" if u.password_sha256_hex else "no_password",
                    "host_ip": u.networks or ["::/0"],
                    "default_roles_all": 1,
                }
            )
        for n, info in sorted(st.users.items()):
            users.append(
                {
                    "name": n,
                    "id": info["id"],
                    "storage": SQL_STORAGE,
                    "auth_type": "sha256_password"
                    if info.get("password_sha256_hex")
                    else "no_password",
                    "host_ip": ["::/0"],
                    "default_roles_all": 1,
                }
            )
        return {
            "users": users,
            "roles": [
                {"name": n, "id": i, "storage": SQL_STORAGE} for n, i in sorted(st.roles.items())
            ],
            "grants": [
                {
                    "user_name": None if g.grantee in st.roles else g.grantee,
                    "role_name": g.grantee if g.grantee in st.roles else None,
                    "access_type": g.access_type,
                    "database": g.database,
                    "table": g.table,
                    "column": None,
                    "is_partial_revoke": 0,
                    "grant_option": int(g.grant_option),
                }
                for g in st.grants
            ],
            "role_grants": [
                {
                    "user_name": None if who in st.roles else who,
                    "role_name": who if who in st.roles else None,
                    "granted_role_name": role,
                    "granted_role_id": st.roles[role],
                    "granted_role_is_default": 1,
                    "with_admin_option": int(admin),
                }
                for who, role, admin in st.role_grants
            ],
            "row_policies": [
                {
                    "name": p.name,
                    "short_name": p.short_name,
                    "database": p.database,
                    "table": p.table,
                    "id": p.id,
                    "storage": SQL_STORAGE,
                    "select_filter": p.filter,
                    "is_restrictive": int(p.restrictive),
                    "apply_to_all": int(p.all),
                    "apply_to_list": p.to,
                    "apply_to_except": p.except_,
                }
                for p in st.policies
            ],
        }

    # -- who may do what ----------------------------------------------------------------------
    def allowed(self, user: User, access_type: str, db: str | None, table: str | None) -> bool:
        if user.storage != SQL_STORAGE:
            return access_type != "ACCESS MANAGEMENT" or not user.readonly
        st = self.state  # one consistent state (a change replaces the object whole)
        who = {user.name} | _roles_of(st, user.name)
        return any(g.grantee in who and g.covers(access_type, db, table) for g in st.grants)

    def is_admin(self, user: User) -> bool:
        return self.allowed(user, "ACCESS MANAGEMENT", None, None)

    def row_filters(self, user: User) -> str:
        """The ``additional_table_filters`` map for `user` ('' for none): per table with row
        policies, the permissive filters that apply OR'ed, AND the restrictive ones. For
        SQL-created users a table with policies but none permissive for them is hidden
        ('0'); the users file's users (administrators, the read-only reader) are treated as
        with ClickHouse's users_without_row_policies_can_read_rows: they see every row unless
        a policy names them (or ALL)."""
        st = self.state  # one consistent state (a change replaces the object whole)
        roles = _roles_of(st, user.name)
        by_table: dict[tuple[str, str], list[Policy]] = {}
        for p in st.policies:
            by_table.setdefault((p.database, p.table), []).append(p)
        parts = []
        for (db, table), policies in sorted(by_table.items()):
            mine = [p for p in policies if p.applies(user.name, roles)]
            if not mine and user.storage != SQL_STORAGE:
                continue
            permissive = [f"({p.filter})" for p in mine if not p.restrictive]
            restrictive = [f"({p.filter})" for p in mine if p.restrictive]
            if permissive:
                expr = "(" + " OR ".join(permissive) + ")"
            else:  # as ClickHouse: without users_without_row_policies_can_read_rows, none
                expr = "0" if user.storage == SQL_STORAGE else "1"
            if restrictive:
                expr += " AND " + " AND ".join(restrictive)
            parts.append(f"{quote(db + '.' + table)}: {quote(expr)}")
        return "{" + ", ".join(parts) + "}" if parts else ""

    def denied(self, user: User, grant: str) -> EngineError:
        return self.engine.error(
            "ACCESS_DENIED",
            f"{user.name}: Not enough privileges. To execute this query, it's necessary to "
            f"have the grant {grant}",
        )

    def check_query(
        self,
        conn: Connection,
        user: User,
        query: bytes,
        kw: str,
        settings: dict[str, str],
        bind: dict[str, str],
        filtered: bool,
    ) -> None:
        """Refuse what `user` may not run (ACCESS_DENIED, 497): reads of tables it has no
        SELECT on, table functions that reach around row policies, changing the row filters,
        reading the access tables without access management, other statements without
        ALL ON *.*."""
        if self.is_admin(user):
            return
        low = query.lower()
        if b"additional_table_filters" in low or any(
            "additional_table_filters" in k.lower() for k in settings
        ):
            raise self.denied(user, "ACCESS MANAGEMENT ON *.* (row policies are set by it)")
        if DATABASE.encode() in low:
            raise self.denied(user, "SHOW USERS, SHOW ROLES, SHOW ROW POLICIES ON *.*")
        sql_user = user.storage == SQL_STORAGE
        if not sql_user and not filtered:
            return
        if kw in ("SELECT", "WITH", ""):
            if sql.writes_outfile(query) and not self.allowed(user, "ALL", None, None):
                raise self.denied(user, "ALL ON *.* (INTO OUTFILE writes a file on the server)")
            self._check_tree(conn, user, query, bind)
        elif kw in ("SHOW", "DESCRIBE", "DESC", "EXISTS", "SET", "USE", "EXPLAIN"):
            return
        elif sql_user and not self.allowed(user, "ALL", None, None):
            raise self.denied(user, "ALL ON *.*")

    def _check_tree(self, conn: Connection, user: User, query: bytes, bind: dict[str, str]) -> None:
        tree = conn.query(
            b"EXPLAIN QUERY TREE " + sql.strip_format(query), "TabSeparatedRaw", bind
        ).bytes()
        text = tree.decode(errors="replace")
        for fn in _FUNCTION_NODE.findall(text):
            if fn.lower() not in SAFE_TABLE_FUNCTIONS:
                raise self.denied(user, f"{fn.upper()} ON *.* (table function {fn})")
        if m := _TABLE_READING_FUNCTION.search(text):
            raise self.denied(user, f"dictGet ON *.* (function {m.group(1)})")
        if _IDENTIFIER_NODE.search(text):
            raise self.denied(user, "SELECT ON *.* (a table reference the server cannot check)")
        tables = []
        for full in _TABLE_NODE.findall(text):
            db, _, table = full.partition(".")
            if db in OPEN_DATABASES:
                continue
            if not self.allowed(user, "SELECT", db, table):
                raise self.denied(user, f"SELECT ON {full}")
            tables.append(f"({quote(db)}, {quote(table)})")
        if tables:  # the names were read from the tree's text: they must be real tables
            known = conn.query(
                "SELECT count() FROM system.tables WHERE (database, name) IN "
                f"({', '.join(sorted(set(tables)))})",
                "TabSeparatedRaw",
            ).bytes()
            if int(known.strip() or b"0") != len(set(tables)):
                raise self.denied(user, "SELECT ON *.* (a table reference the server cannot check)")

    def check_insert(self, conn: Connection, user: User, statement: str) -> None:
        """INSERT INTO db.t ... FORMAT/VALUES: the INSERT grant on the target table."""
        if user.storage != SQL_STORAGE or self.is_admin(user):
            return
        target = sql.insert_target(statement)
        if target is None:
            raise self.denied(user, "ALL ON *.* (INSERT INTO FUNCTION)")
        db, table = target[0] or _current_db(conn), target[1]
        if not self.allowed(user, "INSERT", db, table):
            raise self.denied(user, f"INSERT ON {db}.{table}")

    # -- access-control SQL -------------------------------------------------------------------
    def execute(self, conn: Connection, user: User, query: bytes, what: str) -> bytes | None:
        """Run an access-control statement: None for a command (done, persisted), or the
        query that answers a SHOW statement."""
        p = _Parser(sql.strip_format(query), self.engine)
        if not supported(what):
            raise p.unsupported(what)
        if what in ("SHOW GRANTS",):
            return self._show_grants(user, p)
        if not self.is_admin(user):
            if user.readonly and not what.startswith("SHOW"):
                raise self.engine.error(
                    "READONLY", f"{user.name}: Cannot execute query in readonly mode"
                )
            raise self.denied(user, "ACCESS MANAGEMENT ON *.*")
        if what.startswith("SHOW"):
            return self._show(conn, p, what)
        with self.lock:
            new = State.from_json(json.loads(json.dumps(self.state.to_json())))
            self._apply(conn, new, p, what)
            self._save(new)
            self.state = new
            self._sync_users()
            self._refresh()
        return None

    def _apply(self, conn: Connection, st: State, p: _Parser, what: str) -> None:
        verb = p.word()
        if verb in ("GRANT", "REVOKE"):
            return self._grant(conn, st, p, verb == "GRANT")
        replace = if_not_exists = if_exists = False
        if verb == "CREATE" and p.accept("OR"):
            p.expect("REPLACE")
            replace = True
        entity = p.word()
        if entity == "ROW":
            p.expect("POLICY")
            entity = "POLICY"
        elif entity == "POLICY":
            pass
        if verb == "CREATE" and p.accept("IF"):
            p.expect("NOT")
            p.expect("EXISTS")
            if_not_exists = True
        if verb == "DROP" and p.accept("IF"):
            p.expect("EXISTS")
            if_exists = True
        if entity in ("ROLE", "USER"):
            kind = entity.lower()
            names = p.names()
            if verb == "CREATE":
                made = [
                    n
                    for n in names
                    if self._create_principal(st, p, kind, n, replace, if_not_exists)
                ]
                if kind == "user":
                    password = p.identified()
                    for n in made:  # IF NOT EXISTS leaves an existing user as it is
                        if password is not None:
                            st.users[n]["password_sha256_hex"] = password
            elif verb == "DROP":
                for n in names:
                    self._drop_principal(st, kind, n, if_exists)
            else:  # ALTER
                for n in names:
                    self._need(st, kind, n)
                if p.accept("RENAME"):
                    p.expect("TO")
                    if len(names) != 1:
                        raise p.syntax("RENAME TO renames one entity")
                    self._rename(st, kind, names[0], p.name())
                elif kind == "user":
                    password = p.identified()
                    if password is None:
                        raise p.unsupported("ALTER USER without IDENTIFIED or RENAME TO")
                    for n in names:
                        st.users[n]["password_sha256_hex"] = password
                else:
                    raise p.unsupported("ALTER ROLE without RENAME TO")
            p.end()
            return None
        if entity == "POLICY":
            return self._policy(conn, st, p, verb, replace, if_not_exists, if_exists)
        raise p.unsupported(what)

    def _create_principal(
        self, st: State, p: _Parser, kind: str, name: str, replace: bool, if_not_exists: bool
    ) -> bool:
        """Create `name` in `st`; False if it exists and IF NOT EXISTS says to leave it."""
        existing = st.users if kind == "user" else st.roles
        if name in existing and if_not_exists:
            return False
        if name in existing and replace:
            self._drop_principal(st, kind, name, False)
        if name in self.file_users.users:
            raise self.engine.error(
                "ACCESS_ENTITY_ALREADY_EXISTS",
                f"{kind} `{name}`: cannot insert because user `{name}` already exists in "
                f"{FILE_STORAGE}",
            )
        other = st.roles if kind == "user" else st.users
        if name in existing or name in other:
            what = kind if name in existing else ("role" if kind == "user" else "user")
            raise self.engine.error(
                "ACCESS_ENTITY_ALREADY_EXISTS",
                f"{kind} `{name}`: cannot insert because {what} `{name}` already exists in "
                f"{SQL_STORAGE}",
            )
        if kind == "user":
            st.users[name] = {"id": str(uuid.uuid4()), "password_sha256_hex": ""}
        else:
            st.roles[name] = str(uuid.uuid4())
        return True

    def _need(self, st: State, kind: str, name: str) -> None:
        if kind == "user" and name in self.file_users.users:
            raise self.engine.error(
                "ACCESS_STORAGE_READONLY",
                f"Cannot update user `{name}` in {FILE_STORAGE} because this storage is "
                "readonly (it is the users file)",
            )
        if name not in (st.users if kind == "user" else st.roles):
            raise self.engine.error(
                "UNKNOWN_USER" if kind == "user" else "UNKNOWN_ROLE",
                f"There is no {kind} `{name}` in user directories",
            )

    def _drop_principal(self, st: State, kind: str, name: str, if_exists: bool) -> None:
        missing = name not in (st.users if kind == "user" else st.roles)
        if if_exists and missing and (kind == "role" or name not in self.file_users.users):
            return
        self._need(st, kind, name)
        (st.users if kind == "user" else st.roles).pop(name)
        st.grants = [g for g in st.grants if g.grantee != name]
        st.role_grants = [r for r in st.role_grants if name not in (r[0], r[1])]
        for pol in st.policies:
            pol.to = [n for n in pol.to if n != name]
            pol.except_ = [n for n in pol.except_ if n != name]

    def _rename(self, st: State, kind: str, old: str, new: str) -> None:
        if new in st.users or new in st.roles or new in self.file_users.users:
            raise self.engine.error(
                "ACCESS_ENTITY_ALREADY_EXISTS", f"{kind} `{new}`: already exists"
            )
        table: dict[str, Any] = st.users if kind == "user" else st.roles
        table[new] = table.pop(old)
        for g in st.grants:
            g.grantee = new if g.grantee == old else g.grantee
        st.role_grants = [
            (new if a == old else a, new if b == old else b, c) for a, b, c in st.role_grants
        ]
        for pol in st.policies:
            pol.to = [new if n == old else n for n in pol.to]
            pol.except_ = [new if n == old else n for n in pol.except_]

    def _grantee(self, st: State, name: str, for_policy: bool = False) -> str:
        if name in st.users or name in st.roles:
            return name
        if name in self.file_users.users:
            if for_policy:
                return name
            raise self.engine.error(
                "ACCESS_STORAGE_READONLY",
                f"Cannot update user `{name}` in {FILE_STORAGE} because this storage is "
                "readonly (it is the users file)",
            )
        raise self.engine.error("UNKNOWN_ROLE", f"There is no role `{name}` in user directories")

    def _grant(self, conn: Connection, st: State, p: _Parser, grant: bool) -> None:
        items = p.privileges_or_roles()
        if p.accept("ON"):
            db, table = p.on(conn)
            p.expect("TO" if grant else "FROM")
            grantees = [self._grantee(st, n) for n in p.names()]
            option = grant and p.accept("WITH") and p.expect("GRANT") and p.expect("OPTION")
            p.end()
            for priv in items:
                if priv not in PRIVILEGES:
                    raise p.syntax(f"unknown access type {priv!r}")
                for who in grantees:
                    if grant:
                        if not any(
                            g.grantee == who
                            and (g.access_type, g.database, g.table) == (priv, db, table)
                            for g in st.grants
                        ):
                            st.grants.append(Grant(who, priv, db, table, bool(option)))
                        continue
                    kept = [
                        g
                        for g in st.grants
                        if not (
                            g.grantee == who
                            and (g.access_type, g.database, g.table) == (priv, db, table)
                        )
                    ]
                    if any(g.grantee == who and g.covers(priv, db, table) for g in kept):
                        raise p.unsupported(
                            f"REVOKE {priv} ON {db or '*'}.{table or '*'} from a wider grant "
                            "(partial revokes)"
                        )
                    st.grants = kept
            return
        p.expect("TO" if grant else "FROM")
        grantees = [self._grantee(st, n) for n in p.names()]
        admin = grant and p.accept("WITH") and p.expect("ADMIN") and p.expect("OPTION")
        p.end()
        for role in items:
            if role not in st.roles:
                raise self.engine.error(
                    "UNKNOWN_ROLE", f"There is no role `{role}` in user directories"
                )
            for who in grantees:
                if grant and who in _roles_of(st, role) | {role}:
                    raise p.syntax(f"granting `{role}` to `{who}` makes a cycle")
                st.role_grants = [r for r in st.role_grants if (r[0], r[1]) != (who, role)]
                if grant:
                    st.role_grants.append((who, role, bool(admin)))

    def _policy(
        self,
        conn: Connection,
        st: State,
        p: _Parser,
        verb: str,
        replace: bool,
        if_not_exists: bool,
        if_exists: bool,
    ) -> None:
        short = p.name()
        p.expect("ON")
        db, table = p.on(conn, wildcard=False)
        assert db is not None and table is not None
        found = [
            x for x in st.policies if (x.short_name, x.database, x.table) == (short, db, table)
        ]
        if verb == "DROP":
            p.end()
            if not found and not if_exists:
                raise self.engine.error(
                    "UNKNOWN_ROW_POLICY",
                    f"There is no row policy `{short} ON {db}.{table}` in user directories",
                )
            st.policies = [x for x in st.policies if x not in found]
            return
        if verb == "CREATE" and found:
            if if_not_exists:
                return
            if not replace:
                raise self.engine.error(
                    "ACCESS_ENTITY_ALREADY_EXISTS",
                    f"row policy `{short} ON {db}.{table}`: cannot insert because row policy "
                    f"`{short} ON {db}.{table}` already exists in {SQL_STORAGE}",
                )
            st.policies = [x for x in st.policies if x not in found]
            found = []
        if verb == "ALTER" and not found:
            raise self.engine.error(
                "UNKNOWN_ROW_POLICY",
                f"There is no row policy `{short} ON {db}.{table}` in user directories",
            )
        pol = found[0] if found else Policy(short, db, table, "")
        if verb == "ALTER" and p.accept("RENAME"):
            p.expect("TO")
            pol.short_name = p.name()
        if p.accept("AS"):
            kind = p.word()
            if kind not in ("PERMISSIVE", "RESTRICTIVE"):
                raise p.syntax("expected PERMISSIVE or RESTRICTIVE")
            pol.restrictive = kind == "RESTRICTIVE"
        if p.accept("FOR"):
            p.expect("SELECT")
        if p.accept("USING"):
            pol.filter = p.expression_until("TO")
        elif verb == "CREATE":
            raise p.unsupported("a row policy without USING")
        if p.accept("TO"):
            pol.all, pol.to, pol.except_ = self._apply_to(st, p)
        p.end()
        if not found:
            st.policies.append(pol)

    def _apply_to(self, st: State, p: _Parser) -> tuple[bool, list[str], list[str]]:
        if p.accept("ALL"):
            excepts = [self._grantee(st, n, True) for n in p.names()] if p.accept("EXCEPT") else []
            return True, [], excepts
        if p.accept("NONE"):
            return False, [], []
        return False, [self._grantee(st, n, True) for n in p.names()], []

    # -- SHOW ---------------------------------------------------------------------------------
    def _show(self, conn: Connection, p: _Parser, what: str) -> bytes:
        p.expect("SHOW")
        create = p.accept("CREATE")
        entity = p.word()
        if entity == "ROW":
            entity = "POLICY" if p.word() in ("POLICY", "POLICIES") else "?"
        elif entity in ("POLICY", "POLICIES"):
            entity = "POLICY"
        st = self.state
        t = DATABASE
        if not create:
            if entity == "USERS":
                p.end()
                return f"SELECT name FROM {t}.users ORDER BY name".encode()
            if entity == "ROLES":
                p.end()
                return f"SELECT name FROM {t}.roles ORDER BY name".encode()
            if entity == "POLICY":
                if p.accept("ON"):
                    db, table = p.on(conn, wildcard=False)
                    p.end()
                    return (
                        f"SELECT short_name AS name FROM {t}.row_policies WHERE database = "
                        f"{quote(db or '')} AND table = {quote(table or '')} ORDER BY name"
                    ).encode()
                p.end()
                return f"SELECT name FROM {t}.row_policies ORDER BY name".encode()
        else:
            if entity in ("USER", "ROLE"):
                n = p.name()
                p.end()
                if n not in self.file_users.users:
                    self._need(st, entity.lower(), n)
                text = f"CREATE {entity} {_name(n)}"
                if entity == "USER" and (st.users.get(n) or {}).get("password_sha256_hex"):
                    text += " IDENTIFIED WITH sha256_hash BY '[HIDDEN]'"
                return _literal_rows(f"CREATE {entity} {n}", [text])
            if entity == "POLICY":
                short = p.name()
                p.expect("ON")
                db, table = p.on(conn, wildcard=False)
                p.end()
                pols = [
                    x.create_statement()
                    for x in st.policies
                    if (x.short_name, x.database, x.table) == (short, db, table)
                ]
                if not pols:
                    raise self.engine.error(
                        "UNKNOWN_ROW_POLICY",
                        f"There is no row policy `{short} ON {db}.{table}` in user directories",
                    )
                return _literal_rows(f"CREATE ROW POLICY {short} ON {db}.{table}", pols)
        raise p.unsupported(what)

    def _show_grants(self, user: User, p: _Parser) -> bytes:
        p.expect("SHOW")
        p.expect("GRANTS")
        names = p.names() if p.accept("FOR") else [user.name]
        p.end()
        if names != [user.name] and not self.is_admin(user):
            raise self.denied(user, "SHOW USERS, SHOW ROLES ON *.*")
        st = self.state
        lines = []
        for n in names:
            if n in self.file_users.users:
                u = self.file_users.users[n]
                lines.append(
                    f"GRANT SHOW, SELECT ON *.* TO {_name(n)}"
                    if u.readonly
                    else f"GRANT ALL ON *.* TO {_name(n)} WITH GRANT OPTION"
                )
                continue
            if n not in st.users and n not in st.roles:
                raise self.engine.error(
                    "UNKNOWN_ROLE", f"There is no role `{n}` in user directories"
                )
            for g in st.grants:
                if g.grantee == n:
                    lines.append(
                        f"GRANT {g.access_type} ON {g.on_text()} TO {_name(n)}"
                        + (" WITH GRANT OPTION" if g.grant_option else "")
                    )
            for who, role, admin in st.role_grants:
                if who == n:
                    lines.append(
                        f"GRANT {_name(role)} TO {_name(n)}"
                        + (" WITH ADMIN OPTION" if admin else "")
                    )
        return _literal_rows(f"GRANTS FOR {', '.join(names)}", lines)


def supported(what: str) -> bool:
    """Whether an access statement (as `sql.access_statement` names it) is one the server
    implements: users, roles, grants and row policies, not quotas, profiles, SET ROLE..."""
    words = what.replace("OR REPLACE ", "").split()
    if words[0] in ("GRANT", "REVOKE"):
        return True
    entity = " ".join(words[2:] if words[:2] == ["SHOW", "CREATE"] else words[1:])
    if words[0] == "SHOW":
        plural = {"USERS", "ROLES", "ROW POLICIES", "POLICIES", "GRANTS"}
        return entity in (plural if words[1] != "CREATE" else {"USER", "ROLE", "ROW POLICY"})
    return words[0] in ("CREATE", "ALTER", "DROP") and entity in (
        "USER",
        "ROLE",
        "ROW POLICY",
        "POLICY",
    )


def _roles_of(st: State, name: str) -> set[str]:
    """Every role `name` has, directly or through other roles (all granted roles are
    enabled, as ClickHouse's default roles)."""
    out: set[str] = set()
    todo = [name]
    while todo:
        who = todo.pop()
        for grantee, role, _ in st.role_grants:
            if grantee == who and role not in out:
                out.add(role)
                todo.append(role)
    return out


def _literal_rows(column: str, rows: list[str]) -> bytes:
    """A query answering with `rows` as one String column named `column`."""
    items = ", ".join(quote(r) for r in rows)
    return f"SELECT arrayJoin(CAST([{items}], 'Array(String)')) AS {quote_ident(column)}".encode()


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _current_db(conn: Connection) -> str:
    return bytes(conn.query("SELECT currentDatabase()", "TabSeparatedRaw").bytes()).decode().strip()


def map_access_tables(query: bytes) -> bytes:
    """``system.users|roles|grants|role_grants|row_policies`` -> the server's tables."""
    return map_system_tables(query, MAPPED, b"system")


class _Parser:
    """A cursor over an access-control statement's tokens; errors as ClickHouse's."""

    def __init__(self, query: bytes, engine: Engine) -> None:
        self.query = query.rstrip().rstrip(b";")
        self.toks = sql.tokens(self.query)
        self.i = 0
        self.engine = engine

    def syntax(self, msg: str) -> EngineError:
        at = self.toks[self.i].start if self.i < len(self.toks) else len(self.query)
        return self.engine.error(
            "SYNTAX_ERROR",
            f"Syntax error: {msg} at position {at + 1} "
            f"({self.query[at : at + 40].decode(errors='replace')!r})",
        )

    def unsupported(self, what: str) -> EngineError:
        return self.engine.error(
            "NOT_IMPLEMENTED",
            f"{what} is not supported by flinkpulse's ClickHouse server (it has users, roles, "
            "grants and row policies; see docs/clickhouse.md)",
        )

    def peek(self) -> sql.Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def word(self) -> str:
        t = self.peek()
        if t is None or t.kind != "word":
            raise self.syntax("expected a keyword")
        self.i += 1
        return t.text.decode().upper()

    def accept(self, kw: str) -> bool:
        t = self.peek()
        if t is not None and t.kind == "word" and t.text.decode().upper() == kw:
            self.i += 1
            return True
        return False

    def expect(self, kw: str) -> bool:
        if not self.accept(kw):
            raise self.syntax(f"expected {kw}")
        return True

    def punct(self, c: bytes) -> bool:
        t = self.peek()
        if t is not None and t.kind == "punct" and t.text == c:
            self.i += 1
            return True
        return False

    def name(self) -> str:
        t = self.peek()
        if t is None or t.kind not in ("word", "quoted", "string"):
            raise self.syntax("expected a name")
        self.i += 1
        return sql.ident(t) if t.kind != "string" else _unquote(t.text)

    def names(self) -> list[str]:
        out = [self.name()]
        while self.punct(b","):
            out.append(self.name())
        return out

    def end(self) -> None:
        t = self.peek()
        if t is not None:
            rest = self.query[t.start : t.start + 60].decode(errors="replace")
            raise self.unsupported(f"The clause {rest!r}")

    def identified(self) -> str | None:
        """``IDENTIFIED [WITH method] BY 'x'`` / ``NOT IDENTIFIED`` -> sha256 hex ('' = none)."""
        if self.accept("NOT"):
            self.expect("IDENTIFIED")
            return ""
        if not self.accept("IDENTIFIED"):
            return None
        method = "sha256_password"
        if self.accept("WITH"):
            method = self.name().lower()
            if method == "no_password":
                return ""
        self.expect("BY")
        t = self.peek()
        if t is None or t.kind != "string":
            raise self.syntax("expected a password string")
        self.i += 1
        secret = _unquote(t.text)
        if method in ("plaintext_password", "sha256_password", "double_sha1_password"):
            return sha256_hex(secret)
        if method == "sha256_hash":
            if not re.fullmatch(r"[0-9a-fA-F]{64}", secret):
                raise self.syntax("sha256_hash expects 64 hex digits")
            return secret.lower()
        raise self.unsupported(f"IDENTIFIED WITH {method}")

    def privileges_or_roles(self) -> list[str]:
        """``SELECT, INSERT`` / ``ALL [PRIVILEGES]`` / ``role1, role2`` (names as written for
        roles, upper-cased words for privileges)."""
        items = []
        while True:
            parts = []
            while (t := self.peek()) is not None and t.kind in ("word", "quoted"):
                if t.kind == "word" and t.text.upper() in (b"ON", b"TO", b"FROM"):
                    break
                parts.append(t)
                self.i += 1
            if self.punct(b"("):
                raise self.unsupported("Column-level grants")
            if not parts:
                raise self.syntax("expected a privilege or a role")
            if len(parts) == 1 and parts[0].kind == "quoted":
                items.append(sql.ident(parts[0]))
            else:
                words = [sql.ident(x) for x in parts]
                upper = " ".join(w.upper() for w in words)
                if upper == "ALL PRIVILEGES":
                    upper = "ALL"
                items.append(upper if upper in PRIVILEGES or len(words) > 1 else words[0])
            if not self.punct(b","):
                return items

    def on(self, conn: Connection, wildcard: bool = True) -> tuple[str | None, str | None]:
        """``db.t`` / ``db.*`` / ``*.*`` / ``t`` / ``*`` -> (db or None, table or None)."""
        first = None if self.punct(b"*") else self.name()
        if self.punct(b"."):
            db = first
            table = None if self.punct(b"*") else self.name()
        else:
            db, table = _current_db(conn), first
        if not wildcard and (db is None or table is None):
            raise self.syntax("expected database.table")
        return db, table

    def expression_until(self, kw: str) -> str:
        """The raw text of an expression up to a top-level `kw` (or the end)."""
        start = self.peek()
        if start is None:
            raise self.syntax("expected an expression")
        depth = 0
        while (t := self.peek()) is not None:
            if t.kind == "punct" and t.text in (b"(", b"["):
                depth += 1
            elif t.kind == "punct" and t.text in (b")", b"]"):
                depth -= 1
            elif depth == 0 and t.kind == "word" and t.text.upper() == kw.encode():
                break
            self.i += 1
        end = self.toks[self.i - 1].end
        return self.query[start.start : end].decode()


def _unquote(text: bytes) -> str:
    body = text[1:-1].decode()
    q = text[:1].decode()
    return re.sub(r"\\(.)", r"\1", body.replace(q + q, q))
