"""`stack status` of a component some of whose processes stopped (real processes, no stack)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from flinkpulse import stack
from flinkpulse.config import load_config
from flinkpulse.stack.base import Component, Proc

pytestmark = pytest.mark.unit

WHY = "failed: t.alerts: ClickHouse holds rows of it loaded from the topic with ID A, " * 3


class _Pair(Component):
    """A main process that exits at once, having said why (as the loader's status file does),
    and a sidecar that waits (as loader-quality)."""

    name = "pair"

    def procs(self) -> list[Proc]:
        return [
            Proc(self.name, [sys.executable, "-c", "pass"]),
            Proc(f"{self.name}-sidecar", [sys.executable, "-c", "import time; time.sleep(60)"]),
        ]

    def healthy(self) -> bool:
        return True  # as the loader's was: its status file was fresh

    def failure(self) -> str:
        return WHY


def test_a_component_whose_main_process_stopped_is_unhealthy_and_says_why(
    tmp_path: Path,
) -> None:
    comp = _Pair(load_config(overrides=[f"stack.state_dir={tmp_path}"]))
    comp.start()
    try:
        deadline = time.monotonic() + 10
        while "pair" in comp.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        row = stack.status_row(comp)
        assert row["health"] == "unhealthy"
        assert row["log"] == str(comp.log_file("pair"))
        assert row["info"] == (
            f"pair not running ({WHY[: stack.FAILURE_CHARS - 1]}…): its log says how to go on"
        )
    finally:
        comp.stop()
    assert stack.status_row(comp)["health"] == "stopped"


def _rows(**health: str) -> list[dict[str, str]]:
    return [{"component": name, "health": h} for name, h in health.items()]


def test_status_says_what_to_do_when_not_everything_is_healthy() -> None:
    """Under the table: a stack that is not running says how to start it; a stopped or
    unhealthy component is named with the command that helps; a healthy stack adds nothing."""
    assert stack.status_hint(_rows(kafka="healthy", flink="healthy")) == ""
    assert stack.status_hint(_rows(kafka="stopped", flink="stopped")) == (
        "nothing is running: `flinkpulse stack up` starts it"
    )
    assert stack.status_hint(
        _rows(kafka="healthy", registry="stopped", loader="unhealthy", flink="stopped")
    ) == (
        "stopped: registry, flink — `flinkpulse stack up` starts what is stopped\n"
        "unhealthy: loader — see `flinkpulse stack logs loader`"
    )
