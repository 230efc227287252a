"""Issue 2: `stack up` is idempotent, `status` tells the truth, `down` leaves nothing behind.

Runs a second, private stack (own state dir and ports, 2 small TaskManagers) so the session's
shared stack is untouched; it is started through the real CLI, as a user would. Issue 23: `down`
right after a TaskManager's JVM was killed leaves nothing either, orphans included.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flinkpulse.config import load_config
from flinkpulse.paths import ROOT
from flinkpulse.stack.base import COMPONENT_ENV, OWNER_ENV, cmdline, is_ours

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(state: Path, **ports: int) -> dict[str, str]:
    env = dict(os.environ)
    main_jars = load_config().stack.jars_path()
    env.update(
        {
            "FLINKPULSE_STACK__STATE_DIR": str(state),
            "FLINKPULSE_STACK__JARS_DIR": str(main_jars),
            "FLINKPULSE_STACK__COMPONENTS": "kafka,flink",
            "FLINKPULSE_STACK__TASKMANAGERS": "2",
            "FLINKPULSE_STACK__FLINK_TM_MEMORY": "1536m",
            "FLINKPULSE_STACK__FLINK_SLOTS": "2",
        }
    )
    for k, v in ports.items():
        env[f"FLINKPULSE_STACK__{k.upper()}"] = str(v)
    for k in ("KAFKA_BOOTSTRAP_SERVERS", "FLINK_JOBMANAGER"):
        env.pop(k, None)
    return env


def _fp(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flinkpulse", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _orphan(state: Path, component: str) -> int:
    """A process of `component` whose parent is gone, as a Python UDF worker whose TaskManager
    died would be if it did not exit by itself (its stdin not the TaskManager's pipe)."""
    env = {**os.environ, OWNER_ENV: str(state), COMPONENT_ENV: component}
    out = subprocess.run(
        ["bash", "-c", "sleep 600 >/dev/null 2>&1 </dev/null & echo $!"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    pid = int(out.stdout)
    # the shell has returned, its child may still be in the exec of sleep, when its
    # /proc/<pid>/environ reads empty for an instant: wait for the sleep itself
    deadline = time.monotonic() + 10
    while not cmdline(pid).startswith("sleep") and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


def test_up_twice_status_tools_down_after_taskmanager_kill(tmp_path: Path) -> None:
    ports = {
        "kafka_port": _free_port(),
        "kafka_controller_port": _free_port(),
        "flink_rest_port": _free_port(),
        "flink_rpc_port": _free_port(),
    }
    state = tmp_path / "state"
    env = _env(state, **ports)
    try:
        first = _fp(env, "stack", "up")
        assert first.returncode == 0, first.stdout + first.stderr
        second = _fp(env, "stack", "up")
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout.count("already running") == 2
        assert "other settings" not in second.stdout, second.stdout
        # a JVM component keeps the settings it was started with, and `stack up` says so
        # for it alone (Kafka's settings did not change)
        third = _fp({**env, "FLINKPULSE_STACK__FLINK_SLOTS": "3"}, "stack", "up")
        assert third.returncode == 0, third.stdout + third.stderr
        flink_line = next(ln for ln in third.stdout.splitlines() if ln.split()[:1] == ["flink"])
        assert flink_line.endswith(
            "with other settings (stack.flink_slots=2 (now 3)): `flinkpulse stack down flink` "
            "and up again to apply these"
        ), third.stdout
        assert "other settings" not in third.stdout.replace(flink_line, ""), third.stdout

        status = _fp(env, "stack", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        lines = {ln.split()[0]: ln for ln in status.stdout.splitlines()[1:]}
        assert set(lines) == {"kafka", "flink"}
        assert all(" healthy " in ln for ln in lines.values()), status.stdout

        # the Flink web UI answers
        with urllib.request.urlopen(
            f"http://127.0.0.1:{ports['flink_rest_port']}/", timeout=10
        ) as r:
            assert r.status == 200 and b"<html" in r.read(2000).lower()

        # Kafka's own tools, from the same jars, see a real broker
        jars = load_config().stack.jars_path() / "kafka"
        bs = f"127.0.0.1:{ports['kafka_port']}"
        mk = subprocess.run(
            [
                "java",
                "-cp",
                f"{jars}/*",
                "org.apache.kafka.tools.TopicCommand",
                "--bootstrap-server",
                bs,
                "--create",
                "--topic",
                "lifecycle.check",
                "--partitions",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert mk.returncode == 0, mk.stderr
        ls = subprocess.run(
            [
                "java",
                "-cp",
                f"{jars}/*",
                "org.apache.kafka.tools.TopicCommand",
                "--bootstrap-server",
                bs,
                "--list",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ls.returncode == 0 and "lifecycle.check" in ls.stdout.split(), ls.stdout + ls.stderr
        # the broker's own log (log4j behind SLF4J; it was empty once): its start, the topic
        logs = _fp(env, "stack", "logs", "kafka", "-n", "5000")
        assert "Kafka Server started" in logs.stdout, logs.stdout[-2000:]
        assert "Created log for partition lifecycle.check-1" in logs.stdout, logs.stdout[-2000:]
        pids = [int(p) for ln in lines.values() for p in ln.split()[1].split(",")]
        # broker, jobmanager, 2 taskmanagers (each with its UDF workers' fork server as its
        # child, not a process of the stack's own), the warm job client
        assert len(pids) == 5
        assert "taskmanagers: 2" in lines["flink"], lines["flink"]

        # a TaskManager's JVM dies alone (OOM killer), something of Flink's outlives it
        tm = int((state / "run" / "flink-taskmanager-1.pid").read_text().split()[0])
        assert tm in pids
        os.kill(tm, signal.SIGKILL)
        orphan = _orphan(state, "flink")
        assert is_ours(orphan, state)
    finally:
        down = _fp(env, "stack", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [p for p in [*pids, orphan] if is_ours(p, state)]
    assert not any(Path(f"/proc/{p}").exists() and is_ours(p, state) for p in pids)
    # nothing of ours anywhere: scan every process for our ownership marker
    ours = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and is_ours(int(p.name), state)
    ]
    assert ours == []


def test_port_taken_is_one_readable_line(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = _env(tmp_path / "state", kafka_port=port, kafka_controller_port=_free_port())
        res = _fp(env, "stack", "up", "kafka", timeout=60)
    assert res.returncode != 0
    err = res.stderr.strip().splitlines()
    assert len(err) == 1, res.stderr
    assert f"port {port}" in err[0] and "already in use" in err[0]
    assert f"pid {os.getpid()}" in err[0]  # names who holds it


def test_bad_cli_argument_is_one_line() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "stack", "sideways"], capture_output=True, text=True
    )
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
