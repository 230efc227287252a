"""The stack's warm job client (flinkpulse.submitter, process flink-submitter of `flink`): new
streaming jobs go through it, and `flink run` takes over when it is turned off."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flinkpulse import flinkrun, jobstate, stack, submitter
from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.flinkrest import FlinkRest, job_name
from flinkpulse.flinkrun import submit_jobs
from flinkpulse.stack.base import ancestors, cmdline
from flinkpulse.topics import ensure_topics
from tests.conftest import TEST_STACK
from tests.pipeline_helpers import wait

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


def test_a_dead_gateway_jvm_means_flink_run_then_a_fresh_client(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """The client's JVM killed (as the OOM killer would): the next job goes through `flink
    run`, the submitter starts afresh in the same process, and serves the job after."""
    ensure_stack("kafka", "registry", "flink")
    state = base_cfg.stack.state_path()
    flink = stack.component(base_cfg, "flink")
    log = flink.log_file(submitter.PROC)
    pid = flink.pids()[submitter.PROC]
    jvms = [p for p in flink.descendants() if "PythonGatewayServer" in cmdline(p)]
    assert len(jvms) == 1, jvms
    seen = len(log.read_text())
    os.kill(jvms[0], signal.SIGKILL)
    deadline = time.monotonic() + 30  # dead (a zombie until the submitter reaps it) or gone
    while Path(f"/proc/{jvms[0]}").exists() and " Z " not in _stat(jvms[0]):
        assert time.monotonic() < deadline, "the gateway JVM did not die"
        time.sleep(0.05)
    cfg = base_cfg.with_prefix(f"warm{uuid.uuid4().hex[:6]}.")
    ensure_topics(cfg)
    rest = FlinkRest(cfg)
    try:
        submit_jobs(cfg, ["web_traffic"])
        deadline = time.monotonic() + 120
        while "gateway ready" not in log.read_text()[seen:]:
            assert time.monotonic() < deadline, log.read_text()[seen:]
            time.sleep(0.5)
        submit_jobs(cfg, ["device_stats"])
        served = log.read_text()[seen:]
        assert "the gateway JVM is gone" not in served  # the refusal goes to the caller
        assert "flink_jobs.web_traffic" not in served and "flink_jobs.device_stats" in served
        assert flink.pids()[submitter.PROC] == pid and submitter.alive(state)
        for job in ("web_traffic", "device_stats"):
            assert len(rest.running(job_name(cfg, job))) == 1
    finally:
        for job in ("web_traffic", "device_stats"):
            for j in rest.running(job_name(cfg, job)):
                with contextlib.suppress(Exception):
                    rest.cancel(j["jid"])


def test_a_resume_and_a_replay_go_through_the_warm_client(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """`jobs resume` of a cancelled job goes through the warm client: the job restores its
    retained checkpoint (Flink's REST says so), another job given that snapshot is refused with
    the cause in one line, and a new job the same client builds after them starts without
    state. A bounded replay goes there too, and finishes."""
    ensure_stack("kafka", "registry", "flink")
    log = stack.component(base_cfg, "flink").log_file(submitter.PROC)
    seen = len(log.read_text())
    cfg = base_cfg.with_prefix(f"wres{uuid.uuid4().hex[:6]}.")
    ensure_topics(cfg)
    rest = FlinkRest(cfg)

    def checkpoints(jid: str) -> dict[str, Any]:
        return dict(rest.call("GET", f"/jobs/{jid}/checkpoints"))

    try:
        first = submit_jobs(cfg, ["web_traffic"])["web_traffic"]
        wait(lambda: checkpoints(first)["counts"]["completed"] >= 1, 60, "a checkpoint", 0.5)
        rest.cancel(first)
        rest.wait_state(first, ("CANCELED",))
        resumed, state = flinkrun.resume(cfg, "web_traffic")
        assert state and "/chk-" in state and first in state, state
        # another job's snapshot (what a job whose SQL changed meets): the one-line cause
        with pytest.raises(FlinkpulseError, match="holds the state of operators the job no"):
            flinkrun.submit(cfg, "device_stats", savepoint=state)
        fresh = submit_jobs(cfg, ["device_stats"])["device_stats"]
        served = log.read_text()[seen:]
        assert f"--restore {state} --claim-mode no_claim" in served, served
        restored = checkpoints(resumed)["latest"]["restored"]
        assert restored and _local(restored["external_path"]) == _local(state), (restored, state)
        assert checkpoints(fresh)["latest"]["restored"] is None
        now = int(time.time() * 1000)
        replay = flinkrun.run_bounded(
            cfg, "player_stats", ["--from", str(now - 60_000), "--to", str(now)], timeout=180
        )
        lines = log.read_text()[seen:].splitlines()
        assert [ln for ln in lines if "flink_jobs.player_stats " in ln and " --from " in ln]
        assert rest.call("GET", f"/jobs/{replay}")["state"] == "FINISHED"
    finally:
        for job in ("web_traffic", "device_stats"):
            for j in rest.running(job_name(cfg, job)):
                with contextlib.suppress(Exception):
                    rest.cancel(j["jid"])


@pytest.mark.parametrize("warm", [True, False], ids=["warm_client", "flink_run"])
def test_a_ctrl_c_while_the_job_is_built_waits_until_it_is_recorded(
    ensure_stack: Callable[..., Config], base_cfg: Config, warm: bool
) -> None:
    """Ctrl-C (at the terminal: the whole foreground process group) while the client builds
    the job, the warm one or `flink run`: the command waits for it, records it in the ledger
    (what `jobs resume` finds its checkpoints by), says so, then stops with 130."""
    ensure_stack("kafka", "registry", "flink")
    log = stack.component(base_cfg, "flink").log_file(submitter.PROC)
    seen = len(log.read_text())
    prefix = f"intr{uuid.uuid4().hex[:6]}."
    cfg = base_cfg.with_prefix(prefix)
    ensure_topics(cfg)
    rest = FlinkRest(cfg)
    name = job_name(cfg, "web_traffic")
    env = {
        **os.environ,
        **{f"FLINKPULSE_STACK__{k.upper()}": str(v) for k, v in TEST_STACK.items()},
    }
    env["FLINKPULSE_STACK__FLINK_SUBMITTER"] = str(warm).lower()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flinkpulse", "--topic-prefix", prefix, "jobs", "submit", "web_traffic"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        start_new_session=True,  # a process group of its own, as a terminal gives a command
    )  # fmt: skip

    def building() -> bool:
        if warm:
            return "flink_jobs.web_traffic --config " in log.read_text()[seen:]
        return any(
            proc.pid in ancestors(int(p.name)) and "CliFrontend" in cmdline(int(p.name))
            for p in Path("/proc").iterdir()
            if p.name.isdigit()
        )

    try:
        deadline = time.monotonic() + 60
        while not building():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[seen:]
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # the job is being built
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 130, (out, err)
        assert "finishing the submission of web_traffic, to record it" in err, err
        running = [j["jid"] for j in rest.running(name)]
        assert len(running) == 1, (running, out, err)
        recorded = [e["job_id"] for e in jobstate.entries(cfg) if e.get("name") == name]
        assert recorded == running
    finally:
        if proc.poll() is None:
            proc.kill()
        for j in rest.running(name):
            with contextlib.suppress(Exception):
                rest.cancel(j["jid"])


def _local(path: str) -> str:
    """A snapshot's path as a plain local path (Flink writes `file:/…`, we may `file:///…`)."""
    return "/" + path.removeprefix("file:").lstrip("/").rstrip("/")


def _stat(pid: int) -> str:
    """/proc/<pid>/stat after the command name ("" once the process is gone)."""
    try:
        return " " + Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
    except OSError:
        return ""
