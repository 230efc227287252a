"""The stack's warm job client (flinkpulse.submitter, process flink-submitter of `flink`): new
streaming jobs go through it, and `flink run` takes over when it is turned off."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable

import pytest

from flinkpulse import stack, submitter
from flinkpulse.config import Config
from flinkpulse.flinkrest import FlinkRest, job_name
from flinkpulse.flinkrun import submit_jobs
from flinkpulse.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_a_job_goes_through_the_warm_client_and_flink_run_takes_over_when_it_is_off(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    ensure_stack("kafka", "registry", "flink")
    assert submitter.alive(base_cfg.stack.state_path())
    log = stack.component(base_cfg, "flink").log_file(submitter.PROC)
    seen = len(log.read_text())
    cfg = base_cfg.with_prefix(f"warm{uuid.uuid4().hex[:6]}.")
    ensure_topics(cfg)
    off = cfg.derive(stack={"flink_submitter": False})
    rest = FlinkRest(cfg)
    try:
        warm = submit_jobs(cfg, ["web_traffic"])["web_traffic"]
        cold = submit_jobs(off, ["device_stats"])["device_stats"]
        served = log.read_text()[seen:]
        assert "flink_jobs.web_traffic --config " in served and ": exit 0 in " in served, served
        assert "flink_jobs.device_stats" not in served, served
        # the same jobs either way: named, and running, as `flink run` submits them
        for job, jid in (("web_traffic", warm), ("device_stats", cold)):
            assert [j["jid"] for j in rest.running(job_name(cfg, job))] == [jid]
    finally:
        for job in ("web_traffic", "device_stats"):
            for j in rest.running(job_name(cfg, job)):
                with contextlib.suppress(Exception):
                    rest.cancel(j["jid"])
