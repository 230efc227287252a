"""Where the host's CPU goes (flinkpulse/bench/cpu.py): roles, JVM thread groups, and the
arithmetic between two readings; plain Python plus this process's own /proc entry."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.unit


def test_each_process_of_the_stack_gets_its_role_from_its_command_line() -> None:
    """The command lines the local stack starts (flinkpulse/stack) name their role."""
    from flinkpulse.bench.cpu import role_of

    assert role_of("java -Xmx1g … org.apache.flink.runtime.taskexecutor.TaskManagerRunner") == (
        "taskmanager"
    )
    assert role_of("java … StandaloneSessionClusterEntrypoint --configDir x") == "jobmanager"
    assert role_of("/usr/bin/java -Xmx512m -cp jars/* kafka.Kafka server.properties") == "kafka"
    assert role_of("python -m pyflink.fn_execution.beam.beam_boot --id=5-1") == (
        "python_udf_workers"
    )
    forked = "python -I flinkpulse/stack/udf_fork.py host run/flink-udf-fork-1.sock run/x -- bash"
    assert role_of(forked) == "python_udf_workers"
    assert role_of("python -m flinkpulse.cli clickhouse serve --port 8123") == "clickhouse"
    assert role_of("python -m flinkpulse.registry --port 8085") == "registry"
    assert role_of("sshd: root") == "other"


def test_taskmanager_threads_are_grouped_by_their_truncated_names() -> None:
    """Linux keeps 15 characters of a thread's name: Flink's task threads are named after
    their chain's first operator, the JVM's own after what they do (seen in a 2026-12-04 run)."""
    from flinkpulse.bench.cpu import thread_group

    want = {
        "C2 CompilerThre": "jit",
        "VM Thread": "gc",  # SerialGC collects in the VM thread
        "Source: player_": "flink_tasks",
        "WindowRank[48] ": "flink_tasks",
        "GlobalWindowAgg": "flink_tasks",
        "TemporalJoin[33": "flink_tasks",
        "MatchRecognize[": "flink_tasks",
        "Source Data Fet": "kafka_source_fetch",
        "kafka-producer-": "kafka_producer_io",
        "grpc-default-wo": "python_grpc",
        "flink-scheduler": "flink_runtime",
        "Service Thread": "other",
    }
    assert {n: thread_group(n) for n in want} == want


def test_cores_count_what_each_role_used_between_two_readings() -> None:
    """CPU seconds per wall second; a process that started in between counts from zero, and a
    pid reused by another role does not subtract the old one's time."""
    from flinkpulse.bench.cpu import Snapshot, cores

    before = Snapshot(100.0, {1: ("kafka", 50.0), 2: ("taskmanager", 10.0), 3: ("bench", 5.0)},
                      {10: ("gc", 1.0), 11: ("flink_tasks", 4.0)})  # fmt: skip
    after = Snapshot(110.0, {1: ("kafka", 53.0), 2: ("taskmanager", 22.0), 3: ("clickhouse", 2.0),
                             4: ("python_udf_workers", 6.0)},
                     {10: ("gc", 3.0), 11: ("flink_tasks", 12.0), 12: ("flink_tasks", 1.0)})  # fmt: skip
    got = cores(before, after)
    assert got["wall_s"] == 10.0
    assert got["roles"] == {"taskmanager": 1.2, "python_udf_workers": 0.6, "kafka": 0.3,
                            "clickhouse": 0.2}  # fmt: skip
    assert got["total"] == 2.3
    assert got["taskmanager_threads"] == {"flink_tasks": 0.9, "gc": 0.2}


def test_a_snapshot_sees_this_process_burn_cpu_as_the_bench() -> None:
    """Read from the real /proc: a busy loop in this process shows as "bench" CPU."""
    from flinkpulse.bench.cpu import cores, snapshot

    a = snapshot()
    x = 0
    while os.times().user + os.times().system < (a.procs[os.getpid()][1] + 0.3):
        x += 1
    got = cores(a, snapshot())
    # CPU seconds, not cores: on a loaded host the loop's wall time stretches (CI: 0.47 cores)
    assert got["roles"]["bench"] * got["wall_s"] >= 0.25
