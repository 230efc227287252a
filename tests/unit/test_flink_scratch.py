"""Flink's scratch space lives in the stack's directory and starts empty for every process
`stack up` starts: a TaskManager's working directory is named after its resource id, and one
that found its predecessors' BLOB cache verified every file before registering (21 GB, 67 s,
past `up`'s 120 s once two TaskManagers did it at once)."""

from __future__ import annotations

from pathlib import Path

from flinkpulse.config import Config, load_config
from flinkpulse.stack.flink import Flink


class _Running(Flink):
    """A Flink component whose given processes run (no process is started or looked up)."""

    def __init__(self, cfg: Config, live: dict[str, int]) -> None:
        super().__init__(cfg)
        self.live = live

    def pids(self) -> dict[str, int]:
        return self.live


def _cfg(tmp_path: Path) -> Config:
    return load_config(overrides=[f"stack.state_dir={tmp_path}", "stack.taskmanagers=2"])


def _scratch(f: Flink) -> list[str]:
    for name in ("tm_flink-taskmanager-1", "tm_flink-taskmanager-2", "jm_0a1b"):
        (f.tmp_dir / name / "blobStorage").mkdir(parents=True)
        (f.tmp_dir / name / "blobStorage" / "blob_p-1").write_bytes(b"x" * 10)
    return sorted(p.name for p in f.tmp_dir.iterdir())


def test_io_tmp_dirs_is_the_stacks_own_directory(tmp_path: Path) -> None:
    f = Flink(_cfg(tmp_path))
    conf = f.flink_conf()
    assert conf["io.tmp.dirs"] == str(tmp_path / "flink" / "tmp") == str(f.tmp_dir)
    assert conf["blob.service.cleanup.interval"] == 60


def test_a_cold_start_empties_all_of_it(tmp_path: Path) -> None:
    f = _Running(_cfg(tmp_path), {})
    made = _scratch(f)
    assert made == ["jm_0a1b", "tm_flink-taskmanager-1", "tm_flink-taskmanager-2"]
    assert sorted(p.name for p in f.clear_scratch()) == made
    assert list(f.tmp_dir.iterdir()) == []


def test_restarting_one_taskmanager_empties_only_its_own(tmp_path: Path) -> None:
    """The JobManager and the other TaskManager run on: their directories are in use."""
    f = _Running(_cfg(tmp_path), {"flink-jobmanager": 10, "flink-taskmanager-2": 12})
    _scratch(f)
    assert [p.name for p in f.clear_scratch()] == ["tm_flink-taskmanager-1"]
    assert sorted(p.name for p in f.tmp_dir.iterdir()) == ["jm_0a1b", "tm_flink-taskmanager-2"]
    assert (f.tmp_dir / "tm_flink-taskmanager-2" / "blobStorage" / "blob_p-1").exists()
