"""Loader pieces that need no service: topic->table map, migrations, Arrow columns, alerts."""

from __future__ import annotations

import re

import pytest

from flink_jobs.common import RESULT_TOPICS as FLINK_RESULTS
from flinkpulse.alerts import format_line, to_json
from flinkpulse.clickhouse.migrate import discover, statements
from flinkpulse.loader import TOPIC_TABLES
from flinkpulse.loader.columns import TableSpec, arrow_type, build
from flinkpulse.paths import ROOT

pytestmark = pytest.mark.unit


def test_every_flink_result_view_has_a_table_of_its_name() -> None:
    """Result topics land in the table of their view's name; the devices reference topic keeps
    every version in device_assignments (the as-of join of security_events_enriched)."""
    assert {
        **{topic: view for view, (topic, _) in FLINK_RESULTS.items()},
        "iot.devices": "device_assignments",
    } == TOPIC_TABLES


def test_the_loader_docs_table_lists_every_loaded_topic_and_its_table() -> None:
    """docs/loader.md's topic -> table table is TOPIC_TABLES, row for row, in its order."""
    text = (ROOT / "docs" / "loader.md").read_text()
    rows = re.findall(r"^\| `([a-z.-]+)` \| `([a-z_]+)` \|", text, re.MULTILINE)
    assert rows == list(TOPIC_TABLES.items())


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
    assert list(bad) == [2] and bad[2].startswith(
        "invalid value in field n: cannot store 'x' as int32: "
    )
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
    from flinkpulse.bench.records import ALERT, PLAYER_STATS, flink_schema
    from flinkpulse.loader.fast import plan

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

    from flinkpulse.bench.records import PLAYER_STATS, Encoder, player_row
    from flinkpulse.loader.fast import CANARY, plan

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
    from flinkpulse.bench.records import PLAYER_STATS
    from flinkpulse.loader.fast import create_stage_sql, insert_select_sql, plan

    p = plan(PLAYER_STATS, _PLAYER_TYPES)
    assert p is not None
    sql = insert_select_sql("`db`.`player_stats`", "player_stats", p)
    assert sql.startswith("INSERT INTO `db`.`player_stats` (`window_start`")
    assert "throwIf(" in sql and "isValidUTF8(`team`)" in sql and "{n:UInt64}" in sql
    assert "{t:String}, {p:Int32}" in sql and sql.endswith("ORDER BY _o")
    assert create_stage_sql("player_stats", p).startswith(
        "CREATE TEMPORARY TABLE `_fpload_stage_player_stats` (`window_start` DateTime64(3, 'UTC')"
    )


# -- the exactly-once checks (flinkpulse.loader.exactly_once) and batch building --------------


class Msg:
    """A consumed Kafka record as confluent-kafka hands it over (what the batches read)."""

    def __init__(self, offset: int, value: bytes | None, topic: str = "t", partition: int = 0):
        self._o, self._v, self._t, self._p = offset, value, topic, partition

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v

    def key(self) -> bytes | None:
        return None

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def error(self) -> None:
        return None


def test_ledger_refuses_an_insert_that_would_load_records_twice_or_skip_dead_letters() -> None:
    from flinkpulse.loader.exactly_once import InvariantViolation, Ledger

    k = ("t", 0)
    led = Ledger()
    with pytest.raises(InvariantViolation, match="before the partition was resumed"):
        led.check_insert(k, 0, [0, 1])
    led.resumed({k: 100}, [k, ("t", 1)])  # ClickHouse holds up to 99 of partition 0
    with pytest.raises(InvariantViolation, match="overlaps"):
        led.check_insert(k, 99, [99, 100])  # 99 is in ClickHouse already
    led.check_insert(k, 100, [100, 101, 103])  # 102 was a transaction marker: a gap is fine
    with pytest.raises(InvariantViolation, match="overlaps"):
        led.check_insert(k, 103, [103, 104])  # queued already
    with pytest.raises(InvariantViolation, match="out of order"):
        led.check_insert(k, 104, [105, 104])
    with pytest.raises(InvariantViolation, match="dead letters of \\[105\\]"):
        led.check_insert(k, 104, [104, 106], dead=[105])  # 105's dead letter not acked yet
    led.dead_letters_acked(k, [105])
    led.check_insert(k, 104, [104, 106], dead=[105])
    led.check_insert(k, 107, [], dead=[])  # a batch of only dead letters: nothing inserted
    led.check_insert(("t", 1), 0, [0])  # absent from ClickHouse: from the beginning
    led.resumed({k: 104}, [k])  # after a failure: ClickHouse says 104 onwards again
    led.check_insert(k, 104, [104])


def test_consumer_never_commits_and_insert_ids_are_found_by_their_prefix() -> None:
    from flinkpulse.loader.exactly_once import (
        InvariantViolation,
        check_consumer_conf,
        consumer_conf,
        insert_query_id,
        query_id_prefix,
        session_id,
    )

    conf = consumer_conf("db1")
    check_consumer_conf(conf)
    with pytest.raises(InvariantViolation, match="enable.auto.commit"):
        check_consumer_conf({**conf, "enable.auto.commit": True})
    with pytest.raises(InvariantViolation, match="committed records"):
        check_consumer_conf({**conf, "isolation.level": "read_uncommitted"})
    qid = insert_query_id("db1", "p.results.x", 2, 10, 20)
    assert qid.startswith(query_id_prefix("db1") + "p.results.x-2-10-20-")
    assert qid != insert_query_id("db1", "p.results.x", 2, 10, 20)  # one per attempt
    assert session_id("db1").startswith(query_id_prefix("db1"))
    assert not qid.startswith(query_id_prefix("db"))  # another database's loader: not ours


def _player_spec() -> TableSpec:
    return TableSpec.from_system_columns(
        "db", "player_stats", [(c, t, "") for c, t in _PLAYER_TYPES.items()]
    )


def test_arrow_and_staged_batches_build_one_insert_each_behind_one_interface() -> None:
    from flinkpulse.bench.records import PLAYER_STATS, Encoder, player_row
    from flinkpulse.loader.avro import Decoder
    from flinkpulse.loader.batch import ArrowBatch, Batch, StagedBatch
    from flinkpulse.loader.fast import plan

    enc = Encoder(7, PLAYER_STATS)
    dec = Decoder("http://unused")
    dec.known(7, PLAYER_STATS)  # a registry answer, cached
    spec = _player_spec()
    arrow = ArrowBatch("t", 0, "player_stats")
    for o in (10, 11):
        arrow.add(Msg(o, enc(player_row(o))), dec.decode(enc(player_row(o))))
    arrow.dead.append((Msg(12, b"junk"), "wrong magic byte 106 (expected 0: not Confluent Avro)"))
    staged = StagedBatch("t", 0, "player_stats", sid=7, plan=plan(PLAYER_STATS, _PLAYER_TYPES))
    staged.add_values([enc(player_row(o)) for o in (13, 14)], [13, 14])
    batches: list[Batch] = [arrow, staged]
    built = [b.build(spec) for b in batches]
    (a, a_dead), (s, s_dead) = built
    assert a is not None and s is not None
    assert (a.first, a.last, a.rows, a.offsets, a.staged) == (10, 11, 2, [10, 11], False)
    assert [(m.offset(), r) for m, r in a_dead] == [
        (12, "wrong magic byte 106 (expected 0: not Confluent Avro)")
    ]
    assert a.table.to_pydict()["player_id"] == ["player-00000", "player-00001"]
    assert (s.first, s.last, s.rows, s.offsets, s.staged, s_dead) == (13, 14, 2, [13, 14], True, [])
    assert [b.first() for b in batches] == [10, 13]


class _Registry:
    """Answers /schemas/ids/7 with the player_stats schema (a requests.Session stand-in)."""

    def get(self, url: str, timeout: float) -> object:
        import json

        from flinkpulse.bench.records import PLAYER_STATS

        class Answer:
            status_code = 200

            def json(self) -> dict[str, str]:
                return {"schema": json.dumps(PLAYER_STATS)}

        return Answer()


def test_batcher_cuts_batches_where_the_way_of_decoding_changes_in_offset_order() -> None:
    """Staged, then a dead letter (Python), then staged again: three batches in offset order,
    each accepted by the exactly-once ledger."""
    from flinkpulse.bench.records import PLAYER_STATS, Encoder, player_row
    from flinkpulse.loader.avro import Decoder
    from flinkpulse.loader.batch import ArrowBatch, Batch, Batcher, Router, StagedBatch
    from flinkpulse.loader.exactly_once import Ledger

    dec = Decoder("http://registry")
    dec._session = _Registry()
    router = Router(dec)
    router.reset({"player_stats": _player_spec()})
    out: list[Batch] = []
    b = Batcher(router, {"t": "player_stats"}, 100, 1.0, out.append, lambda: False, print)
    enc = Encoder(7, PLAYER_STATS)
    values = [
        enc(player_row(0)),
        enc(player_row(1)),
        b"junk",
        enc(player_row(3)),
        enc(player_row(4)),
    ]
    b.handle([Msg(o, v) for o, v in enumerate(values)])
    b.flush_all()
    assert [type(x) for x in out] == [StagedBatch, ArrowBatch, StagedBatch]
    assert [x.offsets for x in out] == [[0, 1], [], [3, 4]]
    assert out[1].dead_offsets() == [2] and b.idle()
    ledger = Ledger()
    ledger.resumed({}, [("t", 0)])
    for x in out:
        ins, dead = x.build(router.specs["player_stats"])
        ledger.dead_letters_acked(x.key, [m.offset() for m, _ in dead])
        ledger.check_insert(
            x.key, x.first(), ins.offsets if ins else [], [m.offset() for m, _ in dead]
        )
    assert ledger.last == {("t", 0): 4}


def test_the_consumer_prefetches_and_takes_properties_but_not_the_exactly_once_ones() -> None:
    """`loader.consumer_properties` tunes librdkafka (bench/README.md: the prefetch made the
    loader 2x); isolation and offset storage are the exactly-once argument, so they are refused
    in one line rather than failing the invariant check later."""
    from flinkpulse.config import load_config
    from flinkpulse.errors import UsageError
    from flinkpulse.loader.core import consumer_settings

    default = consumer_settings(load_config(overrides=[]), "db1")
    assert default["queued.min.messages"] == 1_000_000
    assert default["isolation.level"] == "read_committed"
    assert default["enable.auto.commit"] is False
    tuned = load_config(
        overrides=["loader.consumer_properties=queued.min.messages=100000,fetch.max.bytes=1048576"]
    )
    got = consumer_settings(tuned, "db1")
    assert (got["queued.min.messages"], got["fetch.max.bytes"]) == ("100000", "1048576")
    bad = load_config(
        overrides=[
            "loader.consumer_properties=isolation.level=read_uncommitted,enable.auto.commit=true"
        ]
    )
    with pytest.raises(UsageError) as e:
        consumer_settings(bad, "db1")
    assert str(e.value) == (
        "loader.consumer_properties cannot set enable.auto.commit, isolation.level: "
        "the loader's exactly-once depends on it (docs/loader.md)"
    )
