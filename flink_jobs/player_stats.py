"""player_stats: per player, per team and top-N leaderboard over HOP windows (gaming). Player
windows carry the region and skill tier of the player's profile at the window's end
(gaming.players)."""

from __future__ import annotations

import sys
from typing import Any

from flink_jobs import validation
from flink_jobs.common import JobContext, Wire, job_params, run_job, wire
from flinkpulse.config import Config
from flinkpulse.topics import PLAYERS_TOPIC

JOB = "player_stats"
DEFAULTS: dict[str, Any] = {"window_size_s": 60, "window_slide_s": 10, "top_n": 10}
OUTPUTS = ["player_stats", "team_stats", "leaderboard"]


def build(t_env: Any, cfg: Config, ctx: JobContext | None = None, wire: Wire = wire) -> JobContext:
    """Wire sources, `sql/flink/player_stats.sql` and the sinks into `t_env` (no execution)."""
    ctx = ctx or JobContext(cfg=cfg, t_env=t_env, job=JOB)
    sources = [
        ("gaming.player-events", "player_events", validation.player_event, True),
        # player profiles: the versioned table `players` (sql/flink/players.sql)
        (PLAYERS_TOPIC, "player_changes", None, True),
    ]
    return wire(ctx, sources, "player_stats.sql", job_params(cfg, JOB, DEFAULTS), OUTPUTS)


def main(argv: list[str] | None = None) -> None:
    # a backfill is a bounded streaming run: Flink runs event-time temporal joins only streaming
    run_job(JOB, build, argv, batch_backfill=False)


if __name__ == "__main__":
    main(sys.argv[1:])
