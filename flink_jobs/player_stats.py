"""player_stats: per player, per team and top-N leaderboard over HOP windows (gaming)."""

from __future__ import annotations

import sys
from typing import Any

from flink_jobs.common import (
    JobContext,
    avro_sink,
    decoded_source,
    job_params,
    run_job,
    run_sql_file,
)
from flinkpulse.config import Config

JOB = "player_stats"
DEFAULTS: dict[str, Any] = {"window_size_s": 60, "window_slide_s": 10, "top_n": 10}
OUTPUTS = ["player_stats", "team_stats", "leaderboard"]


def validate(rec: dict[str, Any]) -> str | None:
    """Out-of-range input is clamped where the intent is clear, dead-lettered where not."""
    dmg = rec.get("damage")
    if dmg is None or dmg != dmg or dmg in (float("inf"), float("-inf")):
        return f"damage is not a finite number: {dmg!r}"
    if dmg < 0:
        rec["damage"] = 0.0  # negative damage: clamped to 0
    if rec.get("event_type") == "KILL" and not rec.get("target_player_id"):
        return "KILL without target_player_id"
    return None


def build(t_env: Any, cfg: Config, ctx: JobContext | None = None) -> JobContext:
    """Wire sources, the job's SQL and its sinks into `t_env` (no execution)."""
    from udfs.flink import register_all

    ctx = ctx or JobContext(cfg=cfg, t_env=t_env, job=JOB)
    params = job_params(cfg, JOB, DEFAULTS)
    register_all(t_env)
    decoded_source(ctx, "gaming.player-events", "player_events", validate)
    run_sql_file(ctx, "player_stats.sql", params)
    for view in OUTPUTS:
        ctx.inserts.append((avro_sink(ctx, view), t_env.from_path(view)))
    return ctx


def main(argv: list[str] | None = None) -> None:
    run_job(JOB, build, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
