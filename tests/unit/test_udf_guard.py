"""Issue 23: a Python UDF worker exits once its TaskManager's end of the stdin pipe closes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from flinkpulse.paths import ROOT
from flinkpulse.stack import udf_guard

ARM = (
    "import sys, time\n"
    "from flinkpulse.stack import udf_guard\n"
    "print(udf_guard.install(['python', '-m', udf_guard.BOOT_MODULE]), flush=True)\n"
    "time.sleep(60)\n"
)


def test_worker_exits_when_its_taskmanager_closes_the_pipe() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", ARM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=ROOT, text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "True"
    child.stdin.write("bytes from the TaskManager are ignored\n")
    child.stdin.flush()
    child.stdin.close()  # what the kernel does when the TaskManager's JVM dies
    assert child.wait(10) == udf_guard.EXIT_CODE
    assert "the TaskManager is gone" in (child.stderr.read() if child.stderr else "")


def test_not_armed_outside_a_worker_or_without_a_pipe() -> None:
    assert udf_guard.install(["python", "-m", "pytest"]) is False
    no_pipe = subprocess.run(
        [sys.executable, "-c", ARM.replace("time.sleep(60)", "")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert (no_pipe.returncode, no_pipe.stdout.strip()) == (0, "False")


def test_worker_dies_with_its_runner_shell(tmp_path: Path) -> None:
    """Beam stops a worker by SIGTERM to `pyflink-udf-runner.sh` alone: the worker follows."""
    pid_file = tmp_path / "worker.pid"
    runner = tmp_path / udf_guard.RUNNER
    code = ARM.replace(
        "time.sleep(60)", f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)"
    )
    runner.write_text(f'{sys.executable} -c "$CODE" | cat\n')
    shell = subprocess.Popen(
        ["bash", str(runner)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        cwd=ROOT, env={**os.environ, "CODE": "import os\n" + code},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    shell.terminate()
    shell.wait(10)
    deadline = time.monotonic() + 10
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(worker)
    assert shell.stdin is not None
    shell.stdin.close()


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
