"""Loader pieces that need no service: topic->table map, migrations, Arrow columns, alerts."""

from __future__ import annotations

import pytest

from flink_jobs.common import RESULT_TOPICS as FLINK_RESULTS
from flinkpulse.alerts import format_line, to_json
from flinkpulse.clickhouse.migrate import discover, statements
from flinkpulse.loader import TOPIC_TABLES
from flinkpulse.loader.columns import TableSpec, arrow_type, build

pytestmark = pytest.mark.unit


def test_every_flink_result_view_has_a_table_of_its_name() -> None:
    assert {topic: view for view, (topic, _) in FLINK_RESULTS.items()} == TOPIC_TABLES


def test_migrations_are_numbered_and_create_every_loaded_table() -> None:
    ms = discover()
    assert [m.version for m in ms] == list(range(1, len(ms) + 1))
    text = " ".join(" ".join(statements(m.text, "db")) for m in ms)
    for table in TOPIC_TABLES.values():
        assert f"CREATE TABLE IF NOT EXISTS `db`.{table}\n" in text
    assert "{database}" not in text and "--" not in text


def test_build_fills_nulls_with_defaults_and_reports_bad_values() -> None:
    spec = TableSpec("db", "t", {
        "ts": arrow_type("DateTime64(3, 'UTC')"), "n": arrow_type("Int32"),
        "s": arrow_type("LowCardinality(String)"), "m": arrow_type("Map(String, String)"),
    })  # fmt: skip
    rows = [
        {"ts": 1000, "n": 1, "s": "a", "m": {"k": "v"}},
        {"ts": 2000, "n": None, "s": None, "m": None},
        {"ts": 3000, "n": "x", "s": "c", "m": {}},
    ]
    table, bad = build(spec, "topic", 2, rows, [10, 11, 12])
    assert list(bad) == [2] and "column n" in bad[2]
    assert table.to_pydict()["n"] == [1, 0]
    assert table.to_pydict()["s"] == ["a", ""]
    assert table.to_pydict()["m"] == [[("k", "v")], []]
    assert table.to_pydict()["_offset"] == [10, 11]
    assert table.to_pydict()["_partition"] == [2, 2]


def test_alert_line_and_json() -> None:
    a = {
        "alert_id": "r:e:1", "rule": "brute_force_login", "severity": "CRITICAL",
        "entity_type": "client_ip", "entity_id": "203.0.113.9", "summary": "6 failures",
        "event_count": 7, "first_event_time": 0, "last_event_time": 1000, "detected_at": 1500,
        "attributes": None,
    }  # fmt: skip
    assert format_line(a).split() == [
        "1970-01-01", "00:00:01.500Z", "CRITICAL", "brute_force_login",
        "client_ip=203.0.113.9", "6", "failures",
    ]  # fmt: skip
    j = to_json(a)
    assert j["detected_at"] == "1970-01-01T00:00:01.500+00:00" and j["attributes"] == {}
