"""`flinkrun.exclusive`, the per-job-name lock of `flinkpulse jobs submit`: one holder at a time
across processes, and no lock file left behind (there were ~300 on a dev machine)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from flinkpulse.flinkrun import exclusive


def _add(lock: Path, counter: Path, times: int) -> None:
    """Read, wait, write `counter` + 1 under the lock `times` times: lost updates if two hold it."""
    for _ in range(times):
        with exclusive(lock):
            n = int(counter.read_text())
            time.sleep(0.001)
            counter.write_text(str(n + 1))


def test_one_holder_at_a_time_across_processes_and_no_file_left(tmp_path: Path) -> None:
    lock, counter = tmp_path / "run" / "submit-x.lock", tmp_path / "counter"
    counter.write_text("0")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add, args=(lock, counter, 40)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    # 160 increments with a read-sleep-write each: any two holders at once would lose some
    assert counter.read_text() == "160"
    assert not lock.exists()


def test_the_lock_file_is_gone_after_an_exception(tmp_path: Path) -> None:
    lock = tmp_path / "submit-y.lock"
    try:
        with exclusive(lock):
            assert lock.exists()
            raise RuntimeError("flink run failed")
    except RuntimeError:
        pass
    assert not lock.exists()
    with exclusive(lock):  # and it can be taken again
        assert lock.exists()
