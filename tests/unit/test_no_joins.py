"""Issue 22, the cost of the joins: the diagnostic variant without event-time temporal joins
(flink_jobs/no_joins.py) drops exactly the joins and nothing else.

The SQL rewrite is checked on the jobs' own statements; the plan on device_stats wired into a
local table environment (no cluster, no Kafka; the connector jars of `make setup`).
"""

from __future__ import annotations

import pytest

from flink_jobs.common import SQL_DIR, sql_statements
from flink_jobs.no_joins import drop_temporal_joins

pytestmark = pytest.mark.unit

DEVICES = {"device_id": "STRING", "home_id": "STRING", "room": "STRING", "owner": "STRING",
           "updated_at": "TIMESTAMP_LTZ(3)"}  # fmt: skip


def _view(name: str, view: str) -> str:
    params = {"window_size_s": 60, "window_slide_s": 10}
    return next(s for s in sql_statements(SQL_DIR / name, params) if f"VIEW {view} " in s)


def test_the_device_join_becomes_typed_nulls() -> None:
    stmt = _view("device_stats.sql", "readings")
    out = drop_temporal_joins(stmt, {"devices": DEVICES}.__getitem__)
    assert "JOIN" not in out
    assert out.endswith("FROM sensor_readings AS r")
    assert "COALESCE(CAST(NULL AS STRING), r.home_id) AS home_id" in out
    assert "CAST(NULL AS STRING)                        AS owner" in out
    assert "CAST(CAST(NULL AS TIMESTAMP_LTZ(3)) AS TIMESTAMP(3))" in out
    assert "d." not in out


def test_both_rule_joins_of_a_statement_go_and_other_aliases_stay() -> None:
    rules = {"rule_key": "STRING", "threshold": "DOUBLE", "enabled": "BOOLEAN"}
    stmt = (
        "SELECT p.window_time, o.threshold AS own, g.`enabled` AS glob FROM p\n"
        "LEFT JOIN rules FOR SYSTEM_TIME AS OF p.window_time AS o ON o.rule_key = p.own_key\n"
        "LEFT JOIN rules FOR SYSTEM_TIME AS OF p.window_time AS g ON g.rule_key = p.global_key"
    )
    assert drop_temporal_joins(stmt, {"rules": rules}.__getitem__) == (
        "SELECT p.window_time, CAST(NULL AS DOUBLE) AS own, CAST(NULL AS BOOLEAN) AS glob FROM p"
    )


def test_a_statement_without_a_temporal_join_is_unchanged() -> None:
    stmt = _view("device_stats.sql", "device_stats")
    assert drop_temporal_joins(stmt, {}.__getitem__) == stmt


@pytest.mark.flink_local
def test_device_stats_without_joins_plans_no_temporal_join() -> None:
    pytest.importorskip("pyflink.table")
    from flink_jobs import device_stats
    from flink_jobs.common import JobContext, create_env
    from flink_jobs.no_joins import no_joins_wire
    from flinkpulse.config import load_config

    cfg = load_config()
    plans = {}
    for variant, wire in (("udf", None), ("nojoin", no_joins_wire)):
        _env, t_env = create_env(cfg, f"device_stats_{variant}")
        ctx = JobContext(cfg=cfg, t_env=t_env, job="device_stats")
        device_stats.build(t_env, cfg, ctx, **({"wire": wire} if wire else {}))
        view = t_env.from_path("readings")
        plans[variant] = (str(view.explain()), list(view.get_schema().get_field_names()))
    assert "TemporalJoin" in plans["udf"][0]
    assert "TemporalJoin" not in plans["nojoin"][0]
    assert "device_changes" not in plans["nojoin"][0]
    assert plans["nojoin"][1] == plans["udf"][1]
