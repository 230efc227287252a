"""Python UDF workers forked from a warm interpreter (flinkpulse/stack/udf_fork.py), with real
processes: a server, clients started as PyFlink's runner starts a worker, and a worker module."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flinkpulse.stack import udf_fork
from flinkpulse.stack.base import _alive

SCRIPT = str(Path(udf_fork.__file__))
#: a stand-in for beam_boot: says where it runs, echoes stdin, then waits or exits as told
WORKER = """
import os, sys, time
print("argv", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("WORKER_ENV"), flush=True)
print("path0", sys.path[1], "pid", os.getpid(), "ppid", os.getppid(), "isolated",
      sys.flags.isolated, "tm_path" if any(p.endswith("tm_path") for p in sys.path) else "",
      flush=True)
print("stderr line", file=sys.stderr, flush=True)
mode = sys.argv[1]
if mode == "exit":
    sys.exit(int(sys.argv[2]))
if mode == "raise":
    raise RuntimeError("boom")
time.sleep(60)
"""


def _wait(pred, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """A fork server that forks `fakeworker` (on the clients' PYTHONPATH, not the server's)."""
    d = tmp_path_factory.mktemp("udffork")
    (d / "mods").mkdir()
    (d / "mods" / "fakeworker.py").write_text(WORKER)
    sock, reg = d / "s.sock", d / "reg"
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "serve", str(sock), str(reg), "fakeworker"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert proc.stdout is not None
    assert "listening at" in proc.stdout.readline()
    yield sock, reg, d
    proc.terminate()
    proc.wait(10)


def _client(
    server: tuple[Path, Path, Path], *args: str, stdin: int | None = subprocess.PIPE
) -> subprocess.Popen[str]:
    sock, _, d = server
    return subprocess.Popen(
        [sys.executable, "-I", "-S", SCRIPT, "connect", str(sock), sys.executable, *args],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=d,
        env={**os.environ, "PYTHONPATH": str(d / "mods"), "WORKER_ENV": "from-client"},
    )  # fmt: skip


def test_a_forked_worker_runs_with_the_clients_argv_cwd_env_path_and_exit_status(
    server: tuple[Path, Path, Path],
) -> None:
    sock, reg, d = server
    c = _client(server, "-m", "fakeworker", "exit", "7", stdin=subprocess.DEVNULL)
    out, err = c.communicate(timeout=30)
    assert c.returncode == 7, err
    assert f"argv ['exit', '7'] cwd {d} env from-client" in out
    assert f"path0 {d / 'mods'}" in out  # its PYTHONPATH comes first, as in a fresh interpreter
    pid = int(out.split("pid ")[1].split()[0])
    assert pid != c.pid  # a child of the server, not the client
    assert "stderr line" in err
    assert _wait(lambda: not (reg / str(pid)).exists())  # reaped: out of the registry


def test_an_exception_is_printed_and_exits_1(server: tuple[Path, Path, Path]) -> None:
    c = _client(server, "-m", "fakeworker", "raise", stdin=subprocess.DEVNULL)
    _, err = c.communicate(timeout=30)
    assert c.returncode == 1
    assert "RuntimeError: boom" in err


def _started(c: subprocess.Popen[str]) -> int:
    assert c.stdout is not None
    c.stdout.readline()
    return int(c.stdout.readline().split("pid ")[1].split()[0])


def test_the_registry_maps_the_worker_to_its_client_and_sigterm_is_forwarded(
    server: tuple[Path, Path, Path],
) -> None:
    _, reg, _ = server
    c = _client(server, "-m", "fakeworker", "wait")
    worker = _started(c)
    assert (reg / str(worker)).read_text().strip() == str(c.pid)
    c.send_signal(signal.SIGTERM)
    assert c.wait(20) == -signal.SIGTERM  # the worker died of it, and so did its stand-in
    assert _wait(lambda: not _alive(worker))


def test_the_worker_exits_when_its_client_is_killed(server: tuple[Path, Path, Path]) -> None:
    """SIGKILL cannot be forwarded: the worker notices its client's socket close."""
    c = _client(server, "-m", "fakeworker", "wait")
    worker = _started(c)
    c.kill()
    c.wait(10)
    assert _wait(lambda: not _alive(worker))


def test_the_worker_exits_when_the_taskmanager_closes_its_stdin(
    server: tuple[Path, Path, Path],
) -> None:
    c = _client(server, "-m", "fakeworker", "wait")
    worker = _started(c)
    assert c.stdin is not None
    c.stdin.close()  # what the kernel does when the TaskManager's JVM dies
    assert c.wait(20) == udf_fork.EXIT_CODE
    assert not _alive(worker)
    assert c.stderr is not None and "the TaskManager is gone" in c.stderr.read()


def test_anything_else_runs_on_a_fresh_interpreter(server: tuple[Path, Path, Path]) -> None:
    """`-c`, a module the server does not fork, or no server at all: the real interpreter."""
    sock, _, d = server
    for args in (["-c", "import sys; print(sys.argv)"], ["-m", "json.tool", "--help"]):
        c = _client(server, *args, stdin=subprocess.DEVNULL)
        out, _ = c.communicate(timeout=30)
        assert c.returncode == 0 and out
    alone = subprocess.run(
        [sys.executable, "-I", "-S", SCRIPT, "connect", str(d / "none.sock"), sys.executable,
         "-m", "fakeworker", "exit", "3"],
        capture_output=True, text=True, cwd=d, timeout=60,
        env={**os.environ, "PYTHONPATH": str(d / "mods")},
    )  # fmt: skip
    assert alone.returncode == 3
    assert "is not reachable" in alone.stderr and "argv ['exit', '3']" in alone.stdout


def test_the_stack_points_its_taskmanagers_at_the_launcher_unless_turned_off(
    tmp_path: Path,
) -> None:
    from flinkpulse.config import Config
    from flinkpulse.paths import venv_python
    from flinkpulse.stack.flink import Flink

    cfg = Config().derive(stack={"state_dir": str(tmp_path), "taskmanagers": 2})
    flink = Flink(cfg)
    assert flink.flink_conf()["python.executable"] == str(flink.launcher)
    # each TaskManager starts through `host`, with a fork server of its own
    tms = [p for p in flink.procs() if p.name in flink.taskmanagers()]
    socks = set()
    for p in tms:
        at = p.argv.index("host")
        assert p.argv[at - 1] == SCRIPT and p.argv[p.argv.index("--") + 1] == "bash", p.argv
        socks.add(p.argv[at + 1])
    assert len(socks) == 2
    flink.write_launcher()  # with no server listening, it is the venv's interpreter
    ran = subprocess.run(
        [str(flink.launcher), "-c", "import sys; print(sys.executable)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.stdout.strip() == str(venv_python())
    off = Flink(cfg.derive(stack={"flink_udf_fork": False}))
    assert off.flink_conf()["python.executable"] == str(venv_python())
    assert all("host" not in p.argv for p in off.procs())


def _children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        try:
            if (
                p.isdigit()
                and int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                out.append(int(p))
        except (OSError, IndexError, ValueError):
            continue
    return out


def test_host_runs_the_taskmanager_in_place_with_its_server_and_workers_in_its_session(
    tmp_path: Path,
) -> None:
    """The TaskManager keeps the pid the stack started; its fork server and the workers it forks
    share its session (so the kernel's per-session CPU share is the TaskManager's), and the
    server, then its workers, end when the TaskManager is killed alone."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "fakeworker.py").write_text(WORKER)
    sock, reg = tmp_path / "s.sock", tmp_path / "reg"
    stand_in = "import os, time; print(os.environ[%r], os.getpid(), flush=True); time.sleep(120)"
    (tmp_path / "tm_path").mkdir()  # the TaskManager's PYTHONPATH, not the server's path
    tm = subprocess.Popen(
        [sys.executable, SCRIPT, "host", str(sock), str(reg), "fakeworker", "--",
         sys.executable, "-c", stand_in % udf_fork.SOCKET_ENV],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "tm_path")},
    )  # fmt: skip
    try:
        assert tm.stdout is not None
        assert tm.stdout.readline().split() == [str(sock), str(tm.pid)]  # exec'd in place
        assert _wait(sock.exists, 60)
        (server,) = _children(tm.pid)
        assert os.getsid(server) == tm.pid and os.getpgid(server) == tm.pid
        c = _client((sock, reg, tmp_path), "-m", "fakeworker", "wait")
        assert c.stdout is not None
        c.stdout.readline()
        line = c.stdout.readline()
        worker = int(line.split("pid ")[1].split()[0])
        # the client's path first, not the TaskManager's; an interpreter that is not isolated
        assert line.startswith(f"path0 {tmp_path / 'mods'} ") and "isolated 0" in line, line
        assert "tm_path" not in line.split(), line
        assert os.getsid(worker) == tm.pid
        tm.kill()  # the JVM alone, as the OOM killer does
        tm.wait(10)
        assert _wait(lambda: not _alive(server))
        assert c.stdin is not None
        c.stdin.close()  # what the kernel does to the workers' pipes when the JVM dies
        assert c.wait(20) == udf_fork.EXIT_CODE
        assert _wait(lambda: not _alive(worker))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(tm.pid, signal.SIGKILL)
