"""Python UDF workers exit when their TaskManager dies (kill -9, OOM killer, container restart).

Flink starts each process-mode worker through Beam's ProcessManager (Java's ProcessBuilder):
`pyflink-udf-runner.sh` (bash) runs `python -m pyflink.fn_execution.beam.beam_boot ... | tee`.
Two ways a worker used to outlive its owner, two guards:

- The TaskManager JVM dies. The runner shell then just keeps waiting; but its stdin, inherited by
  the worker, is a pipe whose only write end the JVM holds. However the JVM ends, the kernel
  closes that end: the worker reads EOF and exits at once (`tee` and the shell follow).
- Beam stops a worker (task cancelled, failover) by SIGTERM to the runner shell only; the shell
  dies, the worker would linger. The worker asks for SIGKILL when its parent, that shell, exits
  (PR_SET_PDEATHSIG). A parent-death signal suits the single-threaded shell; it would not suit
  the JVM, as it fires when the forking *thread* ends, which JVM threads do.

Neither relies on PIDs, process groups, a subreaper or PID 1, so both hold the same with one
Kubernetes container per TaskManager (where the container's end reaps everything anyway) as on
a laptop.

`stack up` / `stack down` reap whatever is left regardless (flinkpulse.stack.base), e.g. workers
whose stdin is not that pipe (Beam inherits the JVM's stdin when its DEBUG logging is on).
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path

from flinkpulse.stack.udf_fork import BOOT_MODULE, EXIT_CODE, die_with_parent, exit_on_eof

__all__ = ["BOOT_MODULE", "EXIT_CODE", "RUNNER", "install"]

#: PyFlink's script that starts BOOT_MODULE: the worker's parent
RUNNER = "pyflink-udf-runner.sh"


def install(argv: list[str] | None = None) -> bool:
    """Start the watch in a Python UDF worker; False (and nothing done) in any other process."""
    argv = list(sys.orig_argv if argv is None else argv)
    if BOOT_MODULE not in argv:
        return False
    _die_with_runner()
    try:
        if not stat.S_ISFIFO(os.fstat(0).st_mode):
            return False
    except OSError:
        return False
    fd = os.dup(0)  # our own descriptor: the harness never reads stdin
    threading.Thread(
        target=exit_on_eof,
        args=(fd, "TaskManager is gone (stdin closed)"),
        name="taskmanager-guard",
        daemon=True,
    ).start()
    return True


def _die_with_runner() -> None:
    """SIGKILL this worker when its runner shell exits (Linux; only under the runner)."""
    parent = os.getppid()
    try:
        under_runner = RUNNER in Path(f"/proc/{parent}/cmdline").read_bytes().decode(
            errors="replace"
        )
    except OSError:
        return
    if under_runner:
        die_with_parent(parent)
