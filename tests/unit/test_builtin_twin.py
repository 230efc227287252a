"""Issue 17, a fair twin: the built-in twin deduplicates its sources as the UDF job does.

Plans only (no cluster, no Kafka; the connector jars of `make setup`): the twin of player_stats
is wired into a local table environment and the plan of its source view is read.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.flink_local]

pytest.importorskip("pyflink.table")

from flink_jobs import player_stats, security_alerts  # noqa: E402
from flink_jobs.builtin_twin import twin_wire  # noqa: E402
from flink_jobs.common import JobContext, create_env  # noqa: E402
from flinkpulse.config import load_config  # noqa: E402

DEDUP = "OverAggregate(partitionBy=[event_id], orderBy=[dedup_arrival ASC]"
WINDOW_DEDUP = "WindowDeduplicate(window=[TUMBLE(win_start=[window_start], win_end=[window_end], size=[1 ms])], keep=[FirstRow], partitionKeys=[event_id]"


#: the columns of the twin's source view, with or without deduplication
COLUMNS = [
    "event_id", "match_id", "player_id", "team", "event_type", "target_player_id", "damage",
    "headshot", "weapon", "event_time", "platform", "src_partition", "src_offset",
]  # fmt: skip


def _source(
    dedup: bool, state: str | None = None, job: Any = player_stats, view: str = "player_events"
) -> tuple[str, list[str]]:
    """The plan and the columns of a twin's source view (`state`: flink.dedup_state, else the
    shipped default)."""
    flink: dict[str, Any] = {"dedup": dedup} | ({"dedup_state": state} if state else {})
    cfg = load_config().derive(flink=flink)  # the environment's connector jars
    _env, t_env = create_env(cfg, f"{job.JOB}_twin")
    ctx = JobContext(cfg=cfg, t_env=t_env, job=f"{job.JOB}_twin")
    job.build(t_env, cfg, ctx, wire=twin_wire)
    table = t_env.from_path(view)
    return str(table.explain()), list(table.get_schema().get_field_names())


def test_the_twin_deduplicates_by_the_topics_key_like_the_udf_job() -> None:
    plan, columns = _source(dedup=True, state="ttl")
    assert DEDUP in plan
    assert "LogicalFilter(condition=[=($14, 1)])" in plan  # dedup_copy = 1: first copies
    assert columns == COLUMNS


def test_auto_dedup_waits_for_the_watermark_only_where_the_sql_does() -> None:
    """``flink.dedup_state = "auto"``: player_stats' events feed only windows, so
    their identities are kept until the watermark passes (a window deduplication, flat state);
    security_alerts passes its raw security events on as they arrive, so those are kept for the
    state TTL (an OVER count), while its rule inputs wait for the watermark."""
    plan, columns = _source(dedup=True, state="auto")
    assert WINDOW_DEDUP in plan
    assert "OverAggregate" not in plan
    assert columns == COLUMNS
    plan, _ = _source(dedup=True, state="auto", job=security_alerts, view="security_events_in")
    assert DEDUP in plan
    assert "WindowDeduplicate" not in plan
    plan, _ = _source(dedup=True, state="auto", job=security_alerts, view="player_events")
    assert WINDOW_DEDUP in plan


def test_the_twin_follows_flink_dedup_off() -> None:
    plan, columns = _source(dedup=False)
    assert "OverAggregate" not in plan
    assert "dedup_copy" not in plan
    assert columns == COLUMNS
