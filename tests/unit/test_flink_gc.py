"""The TaskManagers' garbage collector is a setting (``stack.flink_tm_gc``); every other JVM
of the stack keeps SerialGC, and each JVM gets exactly one collector flag (two make it refuse
to start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flinkpulse.config import load_config
from flinkpulse.errors import UsageError
from flinkpulse.stack.flink import GC_FLAGS, Flink


def _conf(tmp_path: Path, *overrides: str) -> dict[str, object]:
    cfg = load_config(overrides=[f"stack.state_dir={tmp_path}", *overrides])
    return Flink(cfg).flink_conf()


def _gc_flags(opts: object) -> list[str]:
    return [o for o in str(opts).split() if o in GC_FLAGS.values()]


def test_the_default_is_serialgc_everywhere_once(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    assert _gc_flags(conf["env.java.opts.all"]) == []
    for role in ("jobmanager", "taskmanager", "client"):
        assert _gc_flags(conf[f"env.java.opts.{role}"]) == ["-XX:+UseSerialGC"], role


@pytest.mark.parametrize(
    ("gc", "flag"), [("parallel", "-XX:+UseParallelGC"), ("g1", "-XX:+UseG1GC")]
)
def test_the_taskmanagers_collector_is_chosen_alone(tmp_path: Path, gc: str, flag: str) -> None:
    conf = _conf(tmp_path, f"stack.flink_tm_gc={gc}")
    assert _gc_flags(conf["env.java.opts.taskmanager"]) == [flag]
    assert _gc_flags(conf["env.java.opts.jobmanager"]) == ["-XX:+UseSerialGC"]


def test_an_unknown_collector_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(
        UsageError, match=r"stack.flink_tm_gc: expected one of serial, parallel, g1"
    ):
        _conf(tmp_path, "stack.flink_tm_gc=zgc")


def test_only_the_taskmanagers_keep_the_optimizing_compiler(tmp_path: Path) -> None:
    """The JobManager and the clients carry no records: C1 alone (half the JobManager's CPU
    while jobs deploy). The TaskManagers' code is the hot path and keeps C2."""
    conf = _conf(tmp_path)
    c1 = "-XX:TieredStopAtLevel=1"
    assert c1 in str(conf["env.java.opts.jobmanager"]).split()
    assert c1 in str(conf["env.java.opts.client"]).split()
    assert "TieredStopAtLevel" not in str(conf["env.java.opts.taskmanager"])
    assert "TieredStopAtLevel" not in str(conf["env.java.opts.all"])
