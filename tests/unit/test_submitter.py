"""The warm job client's protocol and fallbacks (flinkpulse.submitter), without a JVM: a job
module here is a plain module whose main(argv) prints, as flink_jobs' do."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flinkpulse import submitter
from flinkpulse.config import Config

pytestmark = pytest.mark.unit

JOB = """
import sys

def main(argv):
    if argv == ["--bad"]:
        sys.exit(2)
    if argv == ["--boom"]:
        raise RuntimeError("no such table: events")
    print(f"submitted fakejob: job id {'a' * 32} ({' '.join(argv)})", flush=True)
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, submitter.Server]]:
    """A submitter of cluster 127.0.0.1:18081 (no gateway) under the state dir `tmp_path`,
    and a job module `fakejobs.fakejob` to run (its package: the only one it runs)."""
    (tmp_path / "mods" / "fakejobs").mkdir(parents=True)
    (tmp_path / "mods" / "fakejobs" / "fakejob.py").write_text(JOB)
    sys.path.insert(0, str(tmp_path / "mods"))
    server = submitter.Server(
        submitter.socket_path(tmp_path), "http://127.0.0.1:18081", package="fakejobs"
    )
    t = threading.Thread(target=server.serve, args=(False,), daemon=True)
    t.start()
    while not submitter.alive(tmp_path):
        assert t.is_alive()
    yield tmp_path, server
    sys.path.remove(str(tmp_path / "mods"))
    sys.modules.pop("fakejobs.fakejob", None)
    sys.modules.pop("fakejobs", None)


def test_it_runs_a_jobs_main_and_returns_its_output_and_exit_code(
    served: tuple[Path, submitter.Server],
) -> None:
    state, _ = served
    job = "fakejobs.fakejob"
    done = submitter.submit(state, "127.0.0.1:18081", job, ["--config", "x.toml"])
    assert done == (0, f"submitted fakejob: job id {'a' * 32} (--config x.toml)\n")
    assert submitter.submit(state, "http://127.0.0.1:18081/", job, ["--bad"]) == (2, "")
    rc, out = submitter.submit(state, "127.0.0.1:18081", job, ["--boom"]) or (-1, "")
    assert rc == 1 and out.strip().endswith("RuntimeError: no such table: events"), out


def test_it_refuses_another_cluster_and_code_changed_since_it_started(
    served: tuple[Path, submitter.Server],
) -> None:
    """Refused: the caller runs `flink run` instead (None). Code newer than the submitter's
    start: refused, and the server stops (its modules are the old ones; main() then starts the
    process afresh)."""
    state, server = served
    assert submitter.submit(state, "127.0.0.1:9999", "fakejobs.fakejob", []) is None
    assert submitter.submit(state, "127.0.0.1:18081", "os", []) is None  # not a job module
    server.started_code = "before"  # as if a file had changed since
    assert submitter.submit(state, "127.0.0.1:18081", "fakejobs.fakejob", []) is None
    deadline = time.monotonic() + 10  # it answers, then stops listening
    while submitter.socket_path(state).exists():
        assert time.monotonic() < deadline, "the submitter did not exit"
        time.sleep(0.01)
    assert not submitter.alive(state)


def test_no_submitter_means_flink_run(tmp_path: Path) -> None:
    assert submitter.submit(tmp_path, "127.0.0.1:8081", "flink_jobs.player_stats", []) is None
    assert not submitter.alive(tmp_path)


def test_its_client_jvm_submits_as_flink_run_d_py_would() -> None:
    zip_ = Path("/s/flinkpulse-src.zip")
    args = submitter.submit_args("http://127.0.0.1:8081", zip_)
    py = sys.executable
    assert args == f"remote -d -m 127.0.0.1:8081 -pyclientexec {py} -pyfs {zip_}"


def test_the_flink_component_runs_it_unless_turned_off(tmp_path: Path) -> None:
    from flinkpulse.stack.flink import Flink

    cfg = Config().derive(stack={"state_dir": str(tmp_path)})
    names = [p.name for p in Flink(cfg).procs()]
    assert names[-1] == submitter.PROC
    off = cfg.derive(stack={"flink_submitter": False})
    assert submitter.PROC not in [p.name for p in Flink(off).procs()]
