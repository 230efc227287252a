"""The HTTP front end's lexing (flinkpulse/clickhouse/sql.py) on the edge cases that bit users."""

from __future__ import annotations

import pytest

from flinkpulse.clickhouse import sql

pytestmark = pytest.mark.unit


def test_first_keyword_of_a_long_select_with_a_literal_across_4_kib() -> None:
    """A read-only user's long SELECT was refused as a write: the 4 KiB cut landed inside a
    string literal, which read as no keyword at all."""
    q = b"SELECT count() FROM t WHERE s IN ('" + b"x" * 5000 + b"')"
    assert sql.first_keyword(q) == "SELECT"
    assert sql.first_keyword(b"-- note\n/* c */ (SELECT 1)") == "SELECT"
    assert sql.first_keyword(b"'unterminated") == ""
    assert sql.first_keyword(b"/* open comment") == ""


def test_tokens_still_raise_on_an_open_literal() -> None:
    with pytest.raises(sql.Incomplete):
        sql.tokens(b"INSERT INTO t VALUES ('abc")
    assert [t.text for t in sql.tokens(b"SELECT 'a''b' -- c\n")] == [b"SELECT", b"'a''b'"]


def test_heredoc_is_one_string_token_even_with_quotes_and_binary_inside() -> None:
    """Binary data in $$...$$ (clients embedding Parquet) used to open a quote in the lexer,
    so a read-only user's SELECT read as INTO OUTFILE (a write) and was refused."""
    q = b"SELECT 1 FROM format(Parquet, $$PAR1'\"`\xff\x00$$) FORMAT TSV"
    assert [t.text for t in sql.tokens(q)][-4:] == [
        b"$$PAR1'\"`\xff\x00$$",
        b")",
        b"FORMAT",
        b"TSV",
    ]
    assert sql.writes_outfile(q) is False
    assert sql.output_format(q) == "TSV"
    assert [t.text for t in sql.tokens(b"SELECT $t$ a $$ b $t$")] == [b"SELECT", b"$t$ a $$ b $t$"]
    with pytest.raises(sql.Incomplete):
        sql.tokens(b"SELECT $$open")


def test_system_query_log_maps_to_the_servers_table_outside_strings_only() -> None:
    from flinkpulse.clickhouse.querylog import TABLE, map_system_tables

    t = TABLE.encode()
    assert map_system_tables(b"SELECT * FROM system.query_log") == b"SELECT * FROM " + t
    assert map_system_tables(b"DESCRIBE `system`.`QUERY_LOG`") == b"DESCRIBE " + t
    q = b"SELECT 'system.query_log' -- system.query_log\n"
    assert map_system_tables(q) is q
    assert (
        map_system_tables(b"SELECT 1 FROM system.query_logs") == b"SELECT 1 FROM system.query_logs"
    )


def test_system_session_log_maps_to_the_servers_table_too() -> None:
    from flinkpulse.clickhouse.querylog import SESSION_TABLE, TABLE, map_system_tables

    q = b"SELECT * FROM system.session_log JOIN `system`.query_log USING (user)"
    assert map_system_tables(q) == (
        b"SELECT * FROM " + SESSION_TABLE.encode() + b" JOIN " + TABLE.encode() + b" USING (user)"
    )
    assert map_system_tables(b"SELECT * FROM system.text_log") == b"SELECT * FROM system.text_log"


def test_access_control_statements_are_recognised() -> None:
    cases = {
        b"CREATE ROLE r": "CREATE ROLE",
        b"create row policy p ON t USING 1 TO r": "CREATE ROW POLICY",
        b"CREATE OR REPLACE ROLE x": "CREATE OR REPLACE ROLE",
        b"SHOW ROW POLICIES": "SHOW ROW POLICIES",
        b"SHOW CREATE ROW POLICY p ON t": "SHOW CREATE ROW POLICY",
        b"/* c */ GRANT SELECT ON *.* TO r": "GRANT",
        b"REVOKE ALL ON *.* FROM r": "REVOKE",
        b"SET ROLE r": "SET ROLE",
        b"SET DEFAULT ROLE r TO u": "SET DEFAULT ROLE",
        b"DROP USER IF EXISTS u": "DROP USER",
        b"ALTER SETTINGS PROFILE p": "ALTER SETTINGS PROFILE",
        b"SHOW GRANTS": "SHOW GRANTS",
        b"SELECT 1": "",
        b"SHOW TABLES": "",
        b"SHOW CREATE TABLE roles": "",
        b"CREATE TABLE roles (a Int8) ENGINE = Memory": "",
        b"DROP TABLE user": "",
        b"SET role_name = 1": "",
    }
    assert {q: sql.access_statement(q) for q in cases} == cases


def test_show_create_of_a_system_table_is_recognised_exactly() -> None:
    from flinkpulse.clickhouse.showcreate import system_table

    assert system_table(b"SHOW CREATE TABLE system.tables") == "tables"
    assert system_table(b"show create `system`.`one` FORMAT JSON") == "one"
    assert system_table(b"SHOW CREATE TABLE fp.events") is None
    assert system_table(b"SHOW CREATE TABLE system.tables WHERE 1") is None
    assert system_table(b"SELECT 'SHOW CREATE TABLE system.tables'") is None
