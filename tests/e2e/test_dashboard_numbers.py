"""The dashboards' numbers on a known input, computed by ClickHouse as the charts ask for them.

Issue 15 items 7-9: a migrated private database gets hand-written rows; each chart's own
metric and filter (from the committed bundle) run over its own dataset must give the known
answer. Every dataset's columns are the migrated schema's. Needs ClickHouse only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flinkpulse.clickhouse.migrate import client, migrate
from flinkpulse.config import Config
from flinkpulse.superset import bundle

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
BOOKKEEPING = ["_topic", "_partition", "_offset"]


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    return bundle.read()


@pytest.fixture
def ch(ensure_stack: Any, base_cfg: Config, prefix: str) -> Any:
    """A writer client on a freshly migrated database of this test (dropped afterwards)."""
    ensure_stack("clickhouse")
    cfg = base_cfg.derive(clickhouse={"database": f"{prefix}_numbers"})
    migrate(cfg, log=None)
    c = client(cfg, "writer", database=cfg.clickhouse.database)
    yield c
    c.command(f"DROP DATABASE IF EXISTS `{cfg.clickhouse.database}`")
    c.close()


def _chart(docs: dict[str, dict[str, Any]], title: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(chart params, its dataset document)."""
    chart = next(d for r, d in docs.items() if r.startswith("charts/") and d["slice_name"] == title)
    ds = next(d for r, d in docs.items() if r.startswith("datasets/")
              and str(d["uuid"]) == str(chart["dataset_uuid"]))  # fmt: skip
    return chart["params"], ds


def _source(ds: dict[str, Any]) -> str:
    return f"({ds['sql']})" if ds.get("sql") else ds["table_name"]


def _where(params: dict[str, Any]) -> str:
    sql = [f["sqlExpression"] for f in params["adhoc_filters"] if f["expressionType"] == "SQL"]
    return " AND ".join(f"({s})" for s in sql) or "1"


def _insert(ch: Any, table: str, columns: list[str], rows: list[list[Any]]) -> None:
    full = [[*r, "test", 0, i] for i, r in enumerate(rows)]
    ch.insert(table, full, column_names=[*columns, *BOOKKEEPING])


def test_datasets_columns_are_the_migrated_schema_s(docs: dict[str, Any], ch: Any) -> None:
    wrong = {}
    for ds in (d for r, d in docs.items() if r.startswith("datasets/")):
        what = f"({ds['sql']})" if ds.get("sql") else f"TABLE {ds['table_name']}"
        actual = {r[0]: r[1] for r in ch.query(f"DESCRIBE {what}").result_rows}
        diff = {c["column_name"]: (c["type"], actual.get(c["column_name"]))
                for c in ds["columns"] if actual.get(c["column_name"]) != c["type"]}  # fmt: skip
        if diff:
            wrong[ds["table_name"]] = diff
    assert not wrong, wrong


def test_p95_by_path_is_the_path_s_own_p95_not_the_slowest_status(
    docs: dict[str, Any], ch: Any
) -> None:
    """The chart shows the job's per-path p95 (path_latency: over every request of the path,
    tests/unit/test_queries.py checks the job's value), not web_traffic's per-status rows where
    20 slow 500s of /search (p95 3,900 ms) stood for its 1,000 fast 200s. A re-delivered row
    (same window and path) changes nothing."""
    params, ds = _chart(docs, "p95 latency by path (ms)")
    assert ds["table_name"] == "path_latency"
    end = T0 + timedelta(seconds=60)
    _insert(ch, "web_traffic", ["window_start", "window_end", "path", "status", "requests",
                                "errors", "error_rate", "latency_p50", "latency_p95", "bytes"], [
        [T0, end, "/search", 500, 20, 20, 1.0, 3000.0, 3900.0, 1],
    ])  # fmt: skip
    cols = ["window_start", "window_end", "path", "requests", "errors", "latency_p50",
            "latency_p95", "latency_p99"]  # fmt: skip
    _insert(ch, "path_latency", cols, [
        [T0, end, "/search", 1020, 20, 200.0, 512.0, 3900.0],
        [T0, end, "/pay", 100, 10, 100.0, 2500.0, 2600.0],
        [T0, end, "/pay", 100, 10, 100.0, 2500.0, 2600.0],
    ])  # fmt: skip
    (metric,) = params["metrics"]
    rows = ch.query(
        f"SELECT {params['x_axis']}, path, {metric['sqlExpression']} FROM {_source(ds)} "
        f"WHERE {_where(params)} GROUP BY {params['x_axis']}, path ORDER BY path"
    ).result_rows
    assert [(p, v) for _, p, v in rows] == [("/pay", 2500.0), ("/search", 512.0)]


def test_kd_chart_ranks_players_without_the_flagged_cheaters(docs: dict[str, Any], ch: Any) -> None:
    params, ds = _chart(docs, "K/D ratio over time (top players)")
    end = T0 + timedelta(seconds=60)
    cols = ["window_start", "window_end", "player_id", "team", "match_id", "kills", "deaths",
            "assists", "damage", "headshots", "kd_ratio"]  # fmt: skip
    _insert(ch, "player_stats", cols, [
        [T0, end, "cheater", "red", "m", 40, 1, 0, 0.0, 0, 40.0],
        [T0, end, "good", "red", "m", 3, 1, 0, 0.0, 0, 3.0],
        [T0, end, "fair", "blue", "m", 2, 2, 0, 0.0, 0, 1.0],
    ])  # fmt: skip
    acols = ["alert_id", "rule", "severity", "entity_type", "entity_id", "summary",
             "event_count", "first_event_time", "last_event_time", "detected_at",
             "attributes"]  # fmt: skip
    _insert(ch, "alerts", acols, [
        ["a1", "impossible_kill_rate", "CRITICAL", "player", "cheater", "s", 40, T0, end, end,
         {}],
        ["a2", "brute_force_login", "WARNING", "client", "good", "s", 6, T0, end, end, {}],
    ])  # fmt: skip
    (metric,) = params["metrics"]
    top = ch.query(
        f"SELECT player_id, {metric['sqlExpression']} AS v FROM {_source(ds)} "
        f"WHERE {_where(params)} GROUP BY player_id ORDER BY v DESC LIMIT {params['series_limit']}"
    ).result_rows
    assert top == [("good", 3.0), ("fair", 1.0)]


def test_energy_hogs_have_a_label_for_every_bar(docs: dict[str, Any], ch: Any) -> None:
    params, ds = _chart(docs, "Energy hogs by appliance (kWh)")
    end = T0 + timedelta(seconds=60)
    cols = ["window_start", "window_end", "home_id", "appliance", "kwh", "avg_power_w",
            "max_power_w"]  # fmt: skip
    _insert(ch, "energy_usage", cols, [
        [T0, end, "h1", "oven", 2.0, 1.0, 1.0],
        [T0, end, "h1", "", 0.5, 1.0, 1.0],  # a reading without an appliance
        [T0 + timedelta(seconds=10), end + timedelta(seconds=10), "h1", "oven", 9.0, 1.0, 1.0],
    ])  # fmt: skip
    (metric,) = params["metrics"]
    x = params["x_axis"]
    rows = ch.query(
        f"SELECT {x}, {metric['sqlExpression']} AS v FROM {_source(ds)} "
        f"WHERE {_where(params)} GROUP BY {x} ORDER BY v DESC"
    ).result_rows
    # only the tiling window counts (the one starting at :10 overlaps it), no empty label
    assert rows == [("oven", 2.0), ("unassigned", 0.5)]
