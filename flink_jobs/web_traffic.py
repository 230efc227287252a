"""web_traffic: requests, error rate, latency percentiles per path/status and per path; activity
and visits (sessions) per client."""

from __future__ import annotations

import sys
from typing import Any

from flink_jobs import validation
from flink_jobs.common import JobContext, Wire, job_params, run_job, wire
from flinkpulse.config import Config

JOB = "web_traffic"
#: session_gap_s: a client's visit ends after this many seconds without a request
DEFAULTS: dict[str, Any] = {"window_size_s": 60, "window_slide_s": 10, "session_gap_s": 300}
OUTPUTS = ["web_traffic", "path_latency", "client_activity", "web_sessions"]


def build(t_env: Any, cfg: Config, ctx: JobContext | None = None, wire: Wire = wire) -> JobContext:
    """Wire sources, `sql/flink/web_traffic.sql` and the sinks into `t_env` (no execution)."""
    ctx = ctx or JobContext(cfg=cfg, t_env=t_env, job=JOB)
    sources = [("web.access-logs", "access_logs", validation.access_log, True)]
    return wire(ctx, sources, "web_traffic.sql", job_params(cfg, JOB, DEFAULTS), OUTPUTS)


def main(argv: list[str] | None = None) -> None:
    run_job(JOB, build, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
