"""Where a host's CPU goes, per role of the stack: CPU seconds read from /proc (Linux).

The whole pipeline shares two cores between the producer, the broker, the TaskManager, its
Python workers, the loader and ClickHouse; a step that falls behind says *that* it ran out,
this says *who* used the CPU. Each process is given a role from its command line; inside a
JVM, threads are grouped by their name (garbage collection, JIT, Flink's task threads, Kafka
clients), so a TaskManager busy collecting garbage reads differently from one busy working.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

#: (role, pattern in the command line), first match wins; anything else is "other"
ROLES: tuple[tuple[str, str], ...] = (
    ("taskmanager", "TaskManagerRunner"),
    ("jobmanager", "StandaloneSessionClusterEntrypoint"),
    ("kafka", "kafka.Kafka"),
    ("python_udf_workers", "pyflink"),
    # a TaskManager's fork server and the workers it forks keep its command line
    ("python_udf_workers", "udf_fork.py"),
    ("clickhouse", "clickhouse serve"),
    ("registry", "flinkpulse.registry"),
)

#: JVM thread names (15 characters, as Linux keeps them) -> group; the rest is "other"
_JVM_THREADS: tuple[tuple[str, str], ...] = (
    ("gc", r"^(VM Thread|GC Thread|G1 |Gang worker)"),
    ("jit", r"^C[12] Compiler"),
    ("kafka_source_fetch", r"^(Source Data Fe|Kafka Fetcher|SplitFetcher)"),
    ("kafka_producer_io", r"^kafka-producer"),
    ("python_grpc", r"^grpc-"),
    # a task thread is named after its chain's first operator: "Source: player_…",
    # "GlobalWindowAgg…", "WindowRank[48]…", "TemporalJoin[33]…"
    ("flink_tasks", r"^(Source: |Sink: |[A-Z][A-Za-z]*(\[|Window|Aggregate|Join|Rank|Match))"),
    ("flink_runtime", r"^(flink-|Sweeper|Checkpoint|AsyncOperations|pool-|Flink)"),
)

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _ticks(stat: Path) -> float:
    """utime + stime of a /proc stat file, in seconds (0 if it is gone)."""
    try:
        text = stat.read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()  # the name may contain spaces
    return (int(fields[11]) + int(fields[12])) / _TICK


def role_of(cmdline: str) -> str:
    """The role of a process by its command line (`ROLES`), else "other"."""
    return next((role for role, pat in ROLES if pat in cmdline), "other")


def thread_group(name: str) -> str:
    """The group of a JVM thread by its (15-character) name, else "other"."""
    return next((g for g, pat in _JVM_THREADS if re.search(pat, name)), "other")


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds so far per process (pid -> (role, seconds)) and per TaskManager thread
    (tid -> (group, seconds)), at wall time `at`."""

    at: float
    procs: dict[int, tuple[str, float]]
    tm_threads: dict[int, tuple[str, float]]


def snapshot() -> Snapshot:
    """Every process's CPU seconds so far; this process is "bench" (the producer and the
    loader, when they run in it)."""
    import time

    from flinkpulse.stack.base import cmdline

    me = os.getpid()
    procs: dict[int, tuple[str, float]] = {}
    tm_threads: dict[int, tuple[str, float]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        pid = int(d.name)
        cmd = cmdline(pid)
        if not cmd:  # gone, or a kernel thread
            continue
        role = "bench" if pid == me else role_of(cmd)
        procs[pid] = (role, _ticks(d / "stat"))
        if role == "taskmanager":
            try:
                tasks = list((d / "task").iterdir())
            except OSError:
                tasks = []
            for t in tasks:
                try:
                    name = (t / "comm").read_text().strip()
                except OSError:
                    continue
                tm_threads[int(t.name)] = (thread_group(name), _ticks(t / "stat"))
    return Snapshot(time.time(), procs, tm_threads)


def cores(before: Snapshot, after: Snapshot) -> dict[str, object]:
    """CPU used between two snapshots, in cores (CPU seconds per wall second), per role and
    per TaskManager thread group. A process or thread that started in between counts from
    zero; one that ended in between is missing (its CPU is not in /proc any more)."""
    wall = max(after.at - before.at, 1e-9)
    roles = _used(before.procs, after.procs)
    threads = _used(before.tm_threads, after.tm_threads)
    return {
        "wall_s": round(wall, 1),
        "total": round(sum(roles.values()) / wall, 2),
        "roles": _per_wall_second(roles, wall),
        "taskmanager_threads": _per_wall_second(threads, wall),
    }


def _per_wall_second(used: dict[str, float], wall: float) -> dict[str, float]:
    """CPU seconds per label as cores over `wall` seconds, the busiest first."""
    return {k: round(v / wall, 2) for k, v in sorted(used.items(), key=lambda kv: -kv[1])}


def _used(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds per label between two {id: (label, seconds)} readings."""
    out: dict[str, float] = {}
    for i, (label, s) in after.items():
        was = before.get(i)
        used = s - (was[1] if was and was[0] == label else 0.0)
        out[label] = out.get(label, 0.0) + max(used, 0.0)
    return out
