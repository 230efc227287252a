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


# -- ClickHouse decodes (flinkpulse.loader.fast) ------------------------------------------------

_PLAYER_TYPES = {
    "window_start": "DateTime64(3, 'UTC')", "window_end": "DateTime64(3, 'UTC')",
    "player_id": "String", "team": "LowCardinality(String)", "match_id": "String",
    "kills": "Int32", "deaths": "Int32", "assists": "Int32", "damage": "Float64",
    "headshots": "Int32", "kd_ratio": "Float64",
}  # fmt: skip


def test_fast_plan_only_for_fields_clickhouse_converts_like_the_python_path() -> None:
    from flinkpulse.loader.fast import plan
    from tests.loader_helpers import ALERT, PLAYER_STATS, flink_schema

    p = plan(PLAYER_STATS, _PLAYER_TYPES)
    assert p is not None
    assert p.strings == ["player_id", "team", "match_id"]
    assert [c for c, _ in p.stage_columns][-1] == "_fp_tail"
    # a column the schema lacks is fine (type default both ways); a mismatching type is not
    assert plan(PLAYER_STATS, {**_PLAYER_TYPES, "extra": "String"}) is not None
    assert plan(PLAYER_STATS, {**_PLAYER_TYPES, "kills": "UInt32"}) is None  # -1 would wrap
    assert plan(PLAYER_STATS, {**_PLAYER_TYPES, "window_end": "DateTime64(6, 'UTC')"}) is None
    alert_types = {"attributes": "Map(String, String)", "alert_id": "String"}
    assert plan(ALERT, alert_types) is None  # maps: Python path
    assert plan(flink_schema([("_offset", "long", False)]), {"_offset": "Int64"}) is None
    assert plan({"type": "string"}, {}) is None


def test_fast_container_is_valid_avro_with_framing_canary_and_offset() -> None:
    import io

    import fastavro

    from flinkpulse.loader.fast import CANARY, plan
    from tests.loader_helpers import PLAYER_STATS, Encoder, player_row

    enc = Encoder(7, PLAYER_STATS)
    values = [enc(player_row(i)) for i in range(5)]
    offsets = [10, 11, 13, 14, 300]
    p = plan(PLAYER_STATS, _PLAYER_TYPES)
    assert p is not None
    recs = list(fastavro.reader(io.BytesIO(p.container(values, offsets))))
    assert len(recs) == 5
    for i, (r, off) in enumerate(zip(recs, offsets, strict=True)):
        assert r["_fp_head"] == b"\x00\x00\x00\x00\x07"
        assert r["_fp_tail"] == CANARY + off.to_bytes(8, "little")
        assert r["player_id"] == player_row(i)["player_id"]
        assert r["kd_ratio"] == player_row(i)["kd_ratio"]


def test_fast_insert_select_checks_canary_utf8_and_row_count() -> None:
    from flinkpulse.loader.fast import create_stage_sql, insert_select_sql, plan
    from tests.loader_helpers import PLAYER_STATS

    p = plan(PLAYER_STATS, _PLAYER_TYPES)
    assert p is not None
    sql = insert_select_sql("`db`.`player_stats`", "player_stats", p)
    assert sql.startswith("INSERT INTO `db`.`player_stats` (`window_start`")
    assert "throwIf(" in sql and "isValidUTF8(`team`)" in sql and "{n:UInt64}" in sql
    assert "{t:String}, {p:Int32}" in sql and sql.endswith("ORDER BY _o")
    assert create_stage_sql("player_stats", p).startswith(
        "CREATE TEMPORARY TABLE `_fpload_stage_player_stats` (`window_start` DateTime64(3, 'UTC')"
    )
