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
