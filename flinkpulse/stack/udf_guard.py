"""Python UDF workers exit when their TaskManager dies (kill -9, OOM killer, container restart).

Flink starts each process-mode worker (`pyflink-udf-runner.sh` -> `python -m
pyflink.fn_execution.beam.beam_boot`, Beam's ProcessManager) through Java's ProcessBuilder, which
gives it a pipe as stdin whose only write end is held by the TaskManager JVM. Whenever that JVM
ends, however it ends, the kernel closes the write end: the worker reads EOF, and this guard ends
the worker at once (the runner's `tee` and shell then follow). It relies on no PID, process
group, subreaper or PID 1, so it holds the same with one Kubernetes container per TaskManager
(where the container's end reaps everything anyway) as on a laptop. A parent-death signal
(PR_SET_PDEATHSIG) would not do: it watches the worker's parent, the runner shell, not the JVM,
and it fires when the forking *thread* exits, which JVM threads do.

`stack up` / `stack down` reap whatever is left regardless (flinkpulse.stack.base), e.g. workers
whose stdin is not that pipe (Beam inherits the JVM's stdin when its DEBUG logging is on).
"""

from __future__ import annotations

import os
import stat
import sys
import threading

#: the module the runner script starts; nothing else the TaskManager starts is guarded
BOOT_MODULE = "pyflink.fn_execution.beam.beam_boot"
#: exit status of a worker whose TaskManager is gone (128 + SIGHUP, like a hung-up terminal)
EXIT_CODE = 129


def install(argv: list[str] | None = None) -> bool:
    """Start the watch in a Python UDF worker; False (and nothing done) in any other process."""
    argv = list(sys.orig_argv if argv is None else argv)
    if BOOT_MODULE not in argv:
        return False
    try:
        if not stat.S_ISFIFO(os.fstat(0).st_mode):
            return False
    except OSError:
        return False
    fd = os.dup(0)  # our own descriptor: the harness never reads stdin
    threading.Thread(target=_exit_on_eof, args=(fd,), name="taskmanager-guard", daemon=True).start()
    return True


def _exit_on_eof(fd: int) -> None:
    """Block until the TaskManager's end of the pipe closes, then end this process."""
    while True:
        try:
            if not os.read(fd, 65536):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    os.write(2, b"flinkpulse: the TaskManager is gone (stdin closed): Python worker exits\n")
    os._exit(EXIT_CODE)
