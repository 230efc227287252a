"""The job-state ledger: which checkpoint or savepoint `jobs resume` and `stack up` restore."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from flinkpulse import jobstate
from flinkpulse.config import Config, load_config
from flinkpulse.flinkrest import STATE_TYPES_CHANGED


def _cfg(tmp_path: Path) -> Config:
    return Config().derive(stack={"state_dir": str(tmp_path)})


def _metadata(d: Path, mtime: float) -> Path:
    d.mkdir(parents=True)
    (d / "_metadata").write_bytes(b"x")
    os.utime(d / "_metadata", (mtime, mtime))
    return d


def test_no_state_for_an_unknown_job(tmp_path: Path) -> None:
    assert jobstate.latest_state(_cfg(tmp_path), "flinkpulse-player_stats") is None


def test_newest_checkpoint_across_runs_of_the_same_name(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    ck = tmp_path / "flink" / "checkpoints"
    now = time.time()
    jobstate.record_submit(cfg, "player_stats", "flinkpulse-player_stats", "a" * 32, Path("c"))
    jobstate.record_submit(cfg, "player_stats", "flinkpulse-player_stats", "b" * 32, Path("c"))
    jobstate.record_submit(cfg, "web_traffic", "flinkpulse-web_traffic", "c" * 32, Path("c"))
    _metadata(ck / ("a" * 32) / "chk-7", now - 100)
    newest = _metadata(ck / ("b" * 32) / "chk-3", now - 10)
    _metadata(ck / ("c" * 32) / "chk-9", now)  # another job's: never chosen
    (ck / ("b" * 32) / "chk-4").mkdir()  # in progress: no _metadata yet
    assert jobstate.latest_state(cfg, "flinkpulse-player_stats") == str(newest)


def test_a_newer_savepoint_wins_over_older_checkpoints(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    now = time.time()
    jobstate.record_submit(cfg, "player_stats", "flinkpulse-player_stats", "a" * 32, Path("c"))
    _metadata(tmp_path / "flink" / "checkpoints" / ("a" * 32) / "chk-7", now - 100)
    sp = _metadata(tmp_path / "flink" / "savepoints" / "savepoint-aaaaaa-123", now)
    jobstate.record_savepoint(cfg, "flinkpulse-player_stats", f"file:{sp}")
    assert jobstate.latest_state(cfg, "flinkpulse-player_stats") == str(sp)


def test_resume_list_is_taken_once(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    jobstate.write_resume(cfg, ["b", "a", "a"])
    assert jobstate.take_resume(cfg) == ["a", "b"]
    assert jobstate.take_resume(cfg) == []


def test_submitted_config_is_the_last_submission(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    jobstate.record_submit(cfg, "web_traffic", "n", "1" * 32, Path("/x/old.toml"))
    jobstate.record_submit(cfg, "web_traffic", "n", "2" * 32, Path("/x/new.toml"))
    assert jobstate.submitted_config(cfg, "n") == ("web_traffic", Path("/x/new.toml"))
    assert jobstate.submitted_config(cfg, "other") is None


def test_a_fresh_resume_starts_where_the_last_fresh_submission_did(tmp_path: Path) -> None:
    """`jobs submit --start-at MS` is recorded; a restore does not reset it (its offsets came
    from the snapshot), and a later submission without it reads from the earliest offset."""
    cfg = _cfg(tmp_path)
    assert jobstate.submitted_start(cfg, "n") is None
    jobstate.record_submit(cfg, "web_traffic", "n", "1" * 32, Path("c"), 1796640000000)
    jobstate.record_submit(cfg, "web_traffic", "other", "2" * 32, Path("c"))
    assert jobstate.submitted_start(cfg, "n") == 1796640000000
    jobstate.record_submit(cfg, "web_traffic", "n", "3" * 32, Path("c"), None, restored=True)
    assert jobstate.submitted_start(cfg, "n") == 1796640000000
    jobstate.record_submit(cfg, "web_traffic", "n", "4" * 32, Path("c"))
    assert jobstate.submitted_start(cfg, "n") is None
    assert jobstate.submitted_start(cfg, "other") is None


def test_a_busy_jobmanager_is_asked_again_and_a_missing_one_is_unreachable() -> None:
    """A read timeout (the JobManager took the connection but is loaded) is FlinkBusy, which
    wait loops retry until their deadline; a refused connection is ServiceUnreachable."""
    import socket
    import threading

    from flinkpulse.errors import ServiceUnreachable
    from flinkpulse.flinkrest import FlinkBusy, FlinkRest

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts, never answers
    port = silent.getsockname()[1]
    cfg = load_config(overrides=[f"flink.jobmanager=127.0.0.1:{port}"])
    rest = FlinkRest(cfg, timeout=0.3, busy_retry_s=0.7)
    with pytest.raises(FlinkBusy, match="did not answer GET /jobs/x within 0s"):
        rest.call("GET", "/jobs/x")
    with pytest.raises(FlinkBusy):  # retried until the deadline, then given up
        rest.wait_state("x", ("RUNNING",), timeout=0.2)
    # one-shot reads (the job list the submission checks use) also ask again, for busy_retry_s
    t0 = time.monotonic()
    with pytest.raises(FlinkBusy, match="GET /jobs/overview"):
        rest.jobs()
    assert 0.7 <= time.monotonic() - t0 < 5
    silent.close()
    threading.Event().wait(0.1)
    gone = FlinkRest(load_config(overrides=[f"flink.jobmanager=127.0.0.1:{port}"]))
    with pytest.raises(ServiceUnreachable, match=f"not reachable at http://127.0.0.1:{port}"):
        gone.call("GET", "/jobs/x")


def _restore_trace(cause: str) -> str:
    return (
        "java.lang.Exception: Exception while creating StreamOperatorStateContext.\n"
        "\tat org.apache.flink.streaming.api.operators.StreamTaskStateInitializerImpl\n"
        f"Caused by: org.apache.flink.util.StateMigrationException: {cause}"
    )


def _restarting(entries: list[dict[str, Any]]) -> Any:
    """A FlinkRest whose job restarts over and over with `entries` as its history; it records
    the jobs it is asked to cancel in `cancelled`."""
    from flinkpulse.flinkrest import FlinkRest

    class Restarting(FlinkRest):
        def cancel(self, job_id: str) -> None:
            self.cancelled.append(job_id)

        def call(self, method: str, path: str, body: Any = None, timeout: Any = None) -> Any:
            if path.endswith("/exceptions"):
                return {"exceptionHistory": {"entries": entries}}
            return {"state": "RESTARTING", "vertices": [{"status": "INITIALIZING"}]}

    rest = Restarting(load_config())
    rest.cancelled = []
    return rest


def _failure(rest: Any, timeout: float) -> str:
    """What `rest.wait_running_tasks` raises for job j1 within `timeout` seconds."""
    from flinkpulse.errors import FlinkpulseError

    with pytest.raises(FlinkpulseError) as e:
        rest.wait_running_tasks("j1", timeout=timeout)
    return str(e.value)


def test_a_job_whose_tasks_never_run_is_reported_with_its_last_failure() -> None:
    """A resumed job whose tasks fail to restore restarts over and over: the wait for its
    tasks ends with Flink's innermost cause, not just the timeout."""

    trace = (
        "org.apache.flink.runtime.JobException: Recovery is suppressed\n"
        "Caused by: java.lang.RuntimeException: restore failed\n"
        "Caused by: org.apache.flink.util.StateMigrationException: The new state serializer "
        "must not be incompatible with the old state serializer"
    )

    assert _failure(_restarting([{"stacktrace": trace}]), 0.6) == (
        "job j1 tasks not running after 1s; its last failure: org.apache.flink.util."
        "StateMigrationException: The new state serializer must not be incompatible with the "
        "old state serializer"
    )


def test_a_job_whose_state_fails_to_restore_three_times_is_reported_at_once() -> None:
    """Three restore failures in a row with one cause, after the wait began: Flink would
    restart the job forever, so the wait says why without waiting out its timeout."""

    now = time.time() * 1000 + 1000
    why = "The new state serializer must not be incompatible with the old state serializer"
    rest = _restarting([{"timestamp": now, "stacktrace": _restore_trace(why)}] * 3)
    t0 = time.monotonic()
    message = _failure(rest, 60)
    assert time.monotonic() - t0 < 5
    assert message == (
        "job j1 cannot restore its state (3 tries in a row), so it was cancelled: "
        f"org.apache.flink.util.StateMigrationException: {why}. {STATE_TYPES_CHANGED}Submit the "
        "job afresh, or from another snapshot (docs/jobs.md)"
    )
    assert rest.cancelled == ["j1"]


def test_a_state_of_another_type_found_when_an_operator_opens_is_reported_at_once() -> None:
    """A query edited so that its plan keeps its shape but a state's type changes: Flink maps
    the snapshot's state to the operator, which refuses it when it registers the state in
    open(), on every restart (seen on 2026-12-06 with player_stats' kills counted by SUM
    instead of COUNT). No "StreamOperatorStateContext" in that trace, and the serializers'
    identities differ from try to try; the cause without them is reported, with what it means."""

    now = time.time() * 1000 + 1000
    entries = [
        {
            "timestamp": now,
            "stacktrace": "java.lang.RuntimeException: Error while getting state\n"
            "Caused by: org.apache.flink.util.StateMigrationException: For heap backends, the "
            f"new state serializer (org.apache.flink.table.runtime.typeutils.RowDataSerializer@"
            f"{new}) must not be incompatible with the old state serializer (org.apache.flink."
            f"table.runtime.typeutils.RowDataSerializer@{old}).",
        }
        for new, old in (("38bd102a", "1eafd46d"), ("5c1a7e2", "77aa01b3"), ("1f2e3d4c", "6b5a4c3"))
    ]
    rest = _restarting(entries)
    assert _failure(rest, 60) == (
        "job j1 cannot restore its state (3 tries in a row), so it was cancelled: "
        "org.apache.flink.util.StateMigrationException: For heap backends, the new state "
        "serializer (org.apache.flink.table.runtime.typeutils.RowDataSerializer) must not be "
        "incompatible with the old state serializer (org.apache.flink.table.runtime.typeutils."
        f"RowDataSerializer). {STATE_TYPES_CHANGED}Submit the job afresh, or from another "
        "snapshot (docs/jobs.md)"
    )
    assert rest.cancelled == ["j1"]


@pytest.mark.parametrize(
    "history",
    [
        # two tries only
        [(1000, "restore", "a")] * 2,
        # a failure before the wait began (a job that had restarted for another reason)
        [(1000, "restore", "a"), (1000, "restore", "a"), (-60_000, "restore", "a")],
        # not all of them restores
        [(1000, "restore", "a"), (1000, "lost", "a"), (1000, "restore", "a")],
        # not one cause
        [(1000, "restore", "a"), (1000, "restore", "b"), (1000, "restore", "a")],
    ],
    ids=["two-tries", "an-older-failure", "a-lost-taskmanager", "two-causes"],
)
def test_other_restarts_are_waited_for(history: list[tuple[int, str, str]]) -> None:
    """Anything else a restarting job shows (a TaskManager lost in a failover, too few tries,
    mixed causes) is waited for: the wait ends at its timeout, with the last failure."""
    from flinkpulse.errors import FlinkpulseError

    now = time.time() * 1000
    lost = "org.apache.flink.runtime.jobmaster.JobMasterException: TaskManager lost"
    entries = [
        {"timestamp": now + dt, "stacktrace": _restore_trace(c) if kind == "restore" else lost}
        for dt, kind, c in history
    ]
    with pytest.raises(FlinkpulseError, match="tasks not running after 3s; its last failure"):
        _restarting(entries).wait_running_tasks("j1", timeout=2.6)


def test_discard_deletes_one_jobs_checkpoints_and_state_changes_only(tmp_path: Path) -> None:
    """A benchmark's cancelled jobs keep their retained checkpoints and changelog files
    (2.9 GB after two soaks); `discard` deletes one job's, and nothing of another job."""
    cfg = _cfg(tmp_path)
    flink = tmp_path / "flink"
    gone, kept = "a" * 32, "b" * 32
    for jid in (gone, kept):
        _metadata(flink / "checkpoints" / jid / "chk-3", time.time())
        (flink / "changelog" / jid / "dstl").mkdir(parents=True)
        (flink / "changelog" / jid / "dstl" / "f").write_bytes(b"x")
    jobstate.discard(cfg, gone)
    jobstate.discard(cfg, "c" * 32)  # nothing there: nothing to do
    assert not (flink / "checkpoints" / gone).exists()
    assert not (flink / "changelog" / gone).exists()
    assert (flink / "checkpoints" / kept / "chk-3" / "_metadata").is_file()
    assert (flink / "changelog" / kept / "dstl" / "f").is_file()
    with pytest.raises(ValueError, match="not a Flink job id"):
        jobstate.discard(cfg, "../" + gone)


def test_a_resume_prunes_the_earlier_runs_but_the_one_it_restored(tmp_path: Path) -> None:
    """Every `stack down`/`stack up` resumes a job as a new id; the earlier runs' retained
    checkpoints were kept forever. After a resume, those of the same name go but the run it
    restored from (and the new run); another job's and the savepoints stay."""
    cfg = _cfg(tmp_path)
    flink = tmp_path / "flink"
    name = "flinkpulse-player_stats"
    old, restored, new, other = "a" * 32, "b" * 32, "c" * 32, "d" * 32
    for jid in (old, restored, new):
        jobstate.record_submit(cfg, "player_stats", name, jid, Path("c"))
    jobstate.record_submit(cfg, "web_traffic", "flinkpulse-web_traffic", other, Path("c"))
    now = time.time()
    for jid in (old, restored, other):
        _metadata(flink / "checkpoints" / jid / "chk-3", now)
        (flink / "changelog" / jid).mkdir(parents=True)
    sp = _metadata(flink / "savepoints" / "savepoint-aaaaaa-1", now)
    state = f"file://{flink / 'checkpoints' / restored / 'chk-3'}"
    assert jobstate.prune(cfg, name, new, state) == [old]
    assert not (flink / "checkpoints" / old).exists() and not (flink / "changelog" / old).exists()
    for jid in (restored, other):
        assert (flink / "checkpoints" / jid / "chk-3" / "_metadata").is_file()
        assert (flink / "changelog" / jid).is_dir()
    assert (sp / "_metadata").is_file()
    # restored from a savepoint: no earlier run's checkpoints are needed
    assert jobstate.prune(cfg, name, new, str(sp)) == [restored]
    assert not (flink / "checkpoints" / restored).exists()
    assert (flink / "checkpoints" / other / "chk-3" / "_metadata").is_file()


def test_a_claiming_restore_owns_a_copy_of_a_savepoint_not_the_savepoint(tmp_path: Path) -> None:
    """With the changelog backend a job restores in claim mode and deletes what it restored once
    subsumed: its own retained checkpoint is fine to give it, a savepoint is copied first."""
    cfg = _cfg(tmp_path)
    flink = tmp_path / "flink"
    chk = _metadata(flink / "checkpoints" / ("a" * 32) / "chk-3", time.time())
    assert jobstate.claimable(cfg, f"file://{chk}") == f"file://{chk}"
    sp = _metadata(tmp_path / "elsewhere" / "savepoint-aaaaaa-1", time.time())
    (sp / "state").write_bytes(b"s")
    copy = Path(jobstate.claimable(cfg, f"file:{sp}"))
    assert copy.parent == flink / "savepoints" and copy.name.startswith("claimed-")
    assert (copy / "_metadata").read_bytes() == b"x" and (copy / "state").read_bytes() == b"s"
    assert (sp / "_metadata").is_file()  # the savepoint itself is untouched


def test_a_resume_keeps_the_operators_the_job_was_submitted_with(tmp_path: Path) -> None:
    """A job submitted before a default changed (``flink.dedup_state`` was ``ttl``) resumes
    with it: its snapshot holds that deduplication's state. What only tunes it is today's."""
    from flinkpulse.config import write_config_file

    then = _cfg(tmp_path).derive(
        flink={"dedup_state": "ttl", "source_needs": False, "checkpoint_interval_s": 9.0}
    )
    conf = write_config_file(then, tmp_path / "ship" / "flinkpulse-player_stats.toml")
    now = _cfg(tmp_path).derive(flink={"checkpoint_interval_s": 2.0})
    jobstate.record_submit(now, "player_stats", "flinkpulse-player_stats", "a" * 32, conf)
    cfg, kept = jobstate.submitted_plan(now, "flinkpulse-player_stats")
    assert kept == ["flink.dedup_state='ttl'", "flink.source_needs=False"]
    assert (cfg.flink.dedup_state, cfg.flink.source_needs) == ("ttl", False)
    assert cfg.flink.checkpoint_interval_s == 2.0


def test_a_submission_from_before_a_setting_resumes_with_what_the_jobs_did_then(
    tmp_path: Path,
) -> None:
    """An older flinkpulse wrote no ``flink.dedup_state`` nor ``flink.source_needs``: its jobs
    counted copies in an OVER aggregate and read every field, and their snapshots hold those
    operators' state. Today's defaults (``auto``, needs on) would not map onto them."""
    import re

    from flinkpulse.config import to_toml

    now = _cfg(tmp_path)
    text = to_toml(now.to_dict())
    text = re.sub(r"(?m)^(dedup_state|source_needs) = .*\n", "", text)
    conf = tmp_path / "ship" / "flinkpulse-player_stats.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text(text)
    jobstate.record_submit(now, "player_stats", "flinkpulse-player_stats", "a" * 32, conf)
    cfg, kept = jobstate.submitted_plan(now, "flinkpulse-player_stats")
    assert kept == ["flink.dedup_state='ttl'", "flink.source_needs=False"]
    assert (cfg.flink.dedup, cfg.flink.vectorized_decode) == (now.flink.dedup, False)


def test_a_resume_of_an_unknown_submission_takes_the_config_as_it_is(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path).derive(flink={"dedup_state": "watermark"})
    assert jobstate.submitted_plan(cfg, "flinkpulse-player_stats") == (cfg, [])
    jobstate.record_submit(
        cfg, "player_stats", "flinkpulse-player_stats", "a" * 32, tmp_path / "gone.toml"
    )
    assert jobstate.submitted_plan(cfg, "flinkpulse-player_stats") == (cfg, [])
