"""`flinkrun.exclusive`, the per-job-name lock of `flinkpulse jobs submit`: one holder at a time
across processes, and no lock file left behind (there were ~300 on a dev machine); and how
`submit()` reads the id of the job it submitted; and that a Ctrl-C waits for the job to be
recorded; and that submissions at once share the source zip they ship."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.flinkrun import exclusive, interrupt_after, shipped_files, source_zip


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


def test_the_job_id_is_ours_first_then_flinks_line() -> None:
    """`submit()` reads the job id from the `flink run` output: a streaming job's own line, else
    (a bounded replay or backfill prints none) Flink's client line; no id is "" (an error)."""
    from flinkpulse.flinkrun import submitted_job_id

    ours, flinks = "a" * 32, "0123456789abcdef" * 2
    streaming = (
        f"Job has been submitted with JobID {flinks}\nsubmitted player_stats: job id {ours}\n"
    )
    assert submitted_job_id(streaming) == ours
    bounded = f"some log line\nJob has been submitted with JobID {flinks}\n"
    assert submitted_job_id(bounded) == flinks
    assert submitted_job_id("Traceback (most recent call last):\n  ...\n") == ""
    # a line that mentions a JobID but gives none (an exception message) is no id
    assert submitted_job_id("Missing JobID. Specify a JobID to cancel a job.\n") == ""


def test_a_ctrl_c_during_a_submission_waits_for_it_and_a_second_one_does_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`interrupt_after`: the first SIGINT is held until the block (submit, then record) ends,
    and then raised; a second one raises at once, for a user who would rather not wait."""
    done = []
    what = "finishing the submission of x, to record it"
    with pytest.raises(KeyboardInterrupt), interrupt_after(what):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs between bytecodes: it must not raise here
        done.append("recorded")
    assert done == ["recorded"]
    assert "finishing the submission of x, to record it; Ctrl-C again" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    with pytest.raises(KeyboardInterrupt), interrupt_after("y"):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        done.append("not reached")
    assert done == ["recorded"]

    with interrupt_after("z"):  # no Ctrl-C: nothing raised
        done.append("quiet")
    assert done == ["recorded", "quiet"]


def test_an_error_after_a_held_ctrl_c_is_told_and_the_stop_still_wins(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A caller that goes on after an error (`stack up` resuming jobs one by one) must not
    swallow the user's Ctrl-C: the error is printed, then KeyboardInterrupt raised from it."""
    with pytest.raises(KeyboardInterrupt) as stopped, interrupt_after("z"):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        raise FlinkpulseError("submitting x failed: no slots")
    assert isinstance(stopped.value.__cause__, FlinkpulseError)
    assert "flinkpulse: error: submitting x failed: no slots" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    with pytest.raises(FlinkpulseError), interrupt_after("quiet"):  # no Ctrl-C: the error
        raise FlinkpulseError("submitting y failed")


def test_submissions_at_once_each_get_the_whole_source_zip(tmp_path: Path) -> None:
    """Jobs submitted at once (threads here; two terminals alike) build the zip they ship at the
    same time: each gets a complete one, and no temporary file is left. With one shared temporary
    name, the second rename found nothing (FileNotFoundError; seen in the event-time test)."""
    cfg = Config().derive(stack={"state_dir": str(tmp_path)})
    with ThreadPoolExecutor(4) as pool:
        zips = list(pool.map(lambda _: source_zip(cfg), range(4)))
    assert len(set(zips)) == 1
    with zipfile.ZipFile(zips[0]) as z:
        assert z.testzip() is None and len(z.namelist()) == len(shipped_files())
    assert sorted(p.name for p in zips[0].parent.iterdir()) == [zips[0].name]
