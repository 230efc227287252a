"""CPU time and scheduler wait of the TaskManager JVMs and the Python UDF workers over a window.

    python bench/sched_wait.py SECONDS

Reads /proc/<pid>/task/*/schedstat (run time, run_delay) once a second. wait / cpu is how long
a kind's threads stood runnable for each second they ran: the share the kernel gave them under
contention. Threads that ended inside the window are not counted. "forked" is a fork server
and the workers it forked (they keep its command line, flinkpulse/stack/udf_fork.py), "fresh"
workers started as interpreters of their own.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def kinds() -> dict[int, str]:
    """pid -> "taskmanager", "forked" or "fresh" for the processes of interest."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"TaskManagerRunner" in cmd:
            out[int(d.name)] = "taskmanager"
        elif b"udf_fork.py serve" in cmd or b"udf_fork.py host" in cmd:
            out[int(d.name)] = "forked"
        elif b"beam_boot" in cmd and b"udf_fork" not in cmd and not cmd.startswith(b"/bin/sh"):
            out[int(d.name)] = "fresh"
    return out


def times(pid: int) -> tuple[int, int] | None:
    """(run ns, wait ns) summed over the live threads of `pid`, None if it is gone."""
    run = wait = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for t in tasks:
        try:
            fields = (t / "schedstat").read_text().split()
        except OSError:
            continue
        run += int(fields[0])
        wait += int(fields[1])
    return run, wait


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/sched_wait.py SECONDS", file=sys.stderr)
        return 2
    first: dict[int, tuple[str, tuple[int, int]]] = {}
    last: dict[int, tuple[str, tuple[int, int]]] = {}
    end = time.monotonic() + float(argv[0])
    while time.monotonic() < end:
        for pid, kind in kinds().items():
            t = times(pid)
            if t is not None:
                first.setdefault(pid, (kind, t))
                last[pid] = (kind, t)
        time.sleep(1)
    total: dict[str, list[float]] = {}
    for pid, (kind, (run, wait)) in last.items():
        run0, wait0 = first[pid][1]
        agg = total.setdefault(kind, [0.0, 0.0, 0.0])
        agg[0] += (run - run0) / 1e9
        agg[1] += (wait - wait0) / 1e9
        agg[2] += 1
    for kind, (run, wait, n) in sorted(total.items()):
        print(f"{kind}: {n:.0f} processes, cpu {run:.1f} s, wait {wait:.1f} s, "
              f"wait/cpu {wait / max(run, 1e-9):.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
