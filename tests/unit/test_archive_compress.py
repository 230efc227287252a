"""`archive compress` on a scripted warehouse (no stack): closed hours become one gzip file by
an atomic swap; an hour still open, or one the job is writing, stays as it is."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from flinkpulse import archive
from flinkpulse.config import load_config

NOW = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)


def _hour(root: Path, hour: int, files: dict[str, list[dict[str, int]]]) -> Path:
    part = root / "dt=2026-11-30" / f"hour={hour:02d}"
    part.mkdir(parents=True)
    for name, rows in files.items():
        (part / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return part


def test_closed_hours_become_one_gzip_file_open_or_written_ones_stay(tmp_path: Path) -> None:
    cfg = load_config(overrides=[f"archive.warehouse={tmp_path}"], env={})
    root = archive.table_dir(cfg, "player_events")
    rows = [{"i": i} for i in range(10)]
    closed = _hour(root, 10, {"compacted-a": rows[:4], "compacted-b": rows[4:]})
    writing = _hour(root, 9, {"compacted-c": rows, ".part-x.inprogress.y": rows})
    open_hour = _hour(root, 12, {"compacted-d": rows})  # ended less than an hour ago: 11:30
    # a stopped job's part file, untouched for longer than compress_after_s: abandoned
    stopped = _hour(root, 8, {"compacted-e": rows, ".part-z.inprogress.w": rows[:1]})
    os.utime(stopped / ".part-z.inprogress.w", (0, 0))

    assert archive.compress(cfg, now=NOW) == [stopped, closed]
    assert [p.suffix for p in stopped.iterdir()] == [".gz"]
    (gz,) = closed.iterdir()
    assert gz.name.startswith("compressed-") and gz.name.endswith(".jsonl.gz")
    assert [json.loads(line) for line in archive.read_lines(gz)] == rows
    assert sorted(p.name for p in writing.iterdir()) == [".part-x.inprogress.y", "compacted-c"]
    assert [p.name for p in open_hour.iterdir()] == ["compacted-d"]
    # the plain files stay hidden a while for queries that listed them before the swap
    (old,) = root.glob("dt=*/.hour=10.old-*")
    for aged in root.glob("dt=*/.hour=08.old-*"):
        shutil.rmtree(aged)
    assert sorted(p.name for p in old.iterdir()) == ["compacted-a", "compacted-b"]

    # a late record committed into the compressed hour: the next run adds a file, keeps the old
    (closed / "compacted-late").write_text(json.dumps({"i": 10}) + "\n")
    os.utime(old, (0, 0))  # the swapped-out directory has aged: this run deletes it
    assert archive.compress(cfg, now=NOW) == [closed]
    (old2,) = root.glob("dt=*/.hour=10.old-*")  # the aged one gone, this run's there
    assert sorted(p.name for p in old2.iterdir()) == sorted([gz.name, "compacted-late"])
    files = sorted(closed.iterdir())
    assert len(files) == 2 and gz in files and all(p.suffix == ".gz" for p in files)
    assert sorted(json.loads(line)["i"] for p in files for line in archive.read_lines(p)) == list(
        range(11)
    )
    assert archive.compress(cfg, now=NOW) == []  # nothing plain left
