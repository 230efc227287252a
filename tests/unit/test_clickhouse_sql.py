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


def test_show_create_of_a_system_table_is_recognised_exactly() -> None:
    from flinkpulse.clickhouse.showcreate import system_table

    assert system_table(b"SHOW CREATE TABLE system.tables") == "tables"
    assert system_table(b"show create `system`.`one` FORMAT JSON") == "one"
    assert system_table(b"SHOW CREATE TABLE fp.events") is None
    assert system_table(b"SHOW CREATE TABLE system.tables WHERE 1") is None
    assert system_table(b"SELECT 'SHOW CREATE TABLE system.tables'") is None
