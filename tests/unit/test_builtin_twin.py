"""Issue 17, a fair twin: the built-in twin deduplicates its sources as the UDF job does.

Plans only (no cluster, no Kafka; the connector jars of `make setup`): the twin of player_stats
is wired into a local table environment and the plan of its source view is read.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.flink_local]

pytest.importorskip("pyflink.table")

from flink_jobs import player_stats  # noqa: E402
from flink_jobs.builtin_twin import twin_wire  # noqa: E402
from flink_jobs.common import JobContext, create_env  # noqa: E402
from flinkpulse.config import load_config  # noqa: E402

DEDUP = "OverAggregate(partitionBy=[event_id], orderBy=[dedup_arrival ASC]"


#: the columns of the twin's source view, with or without deduplication
COLUMNS = [
    "event_id", "match_id", "player_id", "team", "event_type", "target_player_id", "damage",
    "headshot", "weapon", "event_time", "platform", "src_partition", "src_offset",
]  # fmt: skip


def _source(dedup: bool) -> tuple[str, list[str]]:
    """The plan and the columns of the player_stats twin's source view."""
    cfg = load_config().derive(flink={"dedup": dedup})  # the environment's connector jars
    _env, t_env = create_env(cfg, "player_stats_twin")
    ctx = JobContext(cfg=cfg, t_env=t_env, job="player_stats_twin")
    player_stats.build(t_env, cfg, ctx, wire=twin_wire)
    view = t_env.from_path("player_events")
    return str(view.explain()), list(view.get_schema().get_field_names())


def test_the_twin_deduplicates_by_the_topics_key_like_the_udf_job() -> None:
    plan, columns = _source(dedup=True)
    assert DEDUP in plan
    assert "LogicalFilter(condition=[=($14, 1)])" in plan  # dedup_copy = 1: first copies
    assert columns == COLUMNS


def test_the_twin_follows_flink_dedup_off() -> None:
    plan, columns = _source(dedup=False)
    assert "OverAggregate" not in plan
    assert "dedup_copy" not in plan
    assert columns == COLUMNS
