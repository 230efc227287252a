"""A resume whose snapshot cannot be restored, on the real cluster: Flink restarts such a job
forever, and the submission (`jobs resume`, `stack up`) reports why after three failures in a
row instead of waiting out its 120 s (flinkrest.FlinkRest.wait_running_tasks)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from flinkpulse.bench.e2e import consumer_lag
from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.flinkrest import FlinkRest, job_name
from flinkpulse.flinkrun import submit
from flinkpulse.topics import job_group
from tests.pipeline_helpers import Writer, deployment, kill_event

pytestmark = pytest.mark.integration

EVENTS = "gaming.player-events"


def test_a_savepoint_missing_its_state_files_is_reported_with_the_missing_file(
    ensure_stack: Callable[..., Config], base_cfg: Config
) -> None:
    """player_stats reads 3,000 kills (their ids are its deduplication state, too big to be
    inlined in the savepoint's _metadata), is stopped with a savepoint, and the savepoint's
    state files are deleted: resuming from it fails in the tasks on every restart, and the
    submission cancels the job and says which file is missing, long before its 120 s wait
    would have ended (18 s, against "tasks not running after 120s" before)."""
    ensure_stack("kafka", "registry", "flink")
    prefix = f"resumefail{uuid.uuid4().hex[:6]}"
    with deployment(base_cfg, prefix, ["player_stats"]) as cfg:
        rest = FlinkRest(cfg)
        w = Writer(cfg)
        t0 = int(time.time() * 1000) - 60_000
        for i in range(3000):
            w.avro(EVENTS, "kill", kill_event(i, t0 + i * 10, f"p{i % 50}"))
        w.flush()
        # read and checkpointed: the job's consumer group has committed every record
        deadline = time.monotonic() + 120
        while consumer_lag(cfg, job_group("player_stats"), [EVENTS]) > 0:
            assert time.monotonic() < deadline, "the job did not read the kills"
            time.sleep(2)
        (job,) = rest.running(job_name(cfg, "player_stats"))
        location = rest.savepoint(job["jid"], None, stop=True)
        state = [
            f
            for f in Path(location.removeprefix("file:")).iterdir()
            if f.is_file() and f.name != "_metadata"
        ]
        assert state, f"the savepoint {location} holds its state in _metadata only"
        for f in state:
            f.unlink()
        started = time.monotonic()
        with pytest.raises(FlinkpulseError) as e:
            submit(cfg, "player_stats", savepoint=location)
        took = time.monotonic() - started
        # cancelled: it would restart forever, holding its slots
        assert not rest.running(job_name(cfg, "player_stats"))
    message = str(e.value)
    assert "cannot restore its state (3 tries in a row), so it was cancelled" in message, message
    assert any(f.name in message for f in state), (message, [f.name for f in state])
    assert took < 60, took
