"""A bench killed with SIGTERM (`kill`, a CI timeout) still runs its `finally` blocks, which
cancel the jobs it submitted: before, its four jobs and their Python workers kept running on
the session cluster until cancelled by hand."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from flinkpulse.paths import ROOT

_BENCH = """
import sys, time
from flinkpulse.bench import stop_on_sigterm
stop_on_sigterm()
try:
    print("running", flush=True)
    time.sleep(60)
finally:
    open(sys.argv[1], "w").write("cancelled the jobs")
"""


def test_sigterm_unwinds_through_finally(tmp_path: Path) -> None:
    done = tmp_path / "cleanup"
    proc = subprocess.Popen(
        [sys.executable, "-c", _BENCH, str(done)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "running\n"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10  # not the 60 s sleep
    assert done.read_text() == "cancelled the jobs"
    # exits as Ctrl-C does (Python re-raises SIGINT on an unhandled KeyboardInterrupt)
    assert proc.returncode == -signal.SIGINT and "KeyboardInterrupt: signal 15" in err
