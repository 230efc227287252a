"""`flinkpulse bench`: every stage of the pipeline measured as ratios, in one run, on one machine.

Sections (each a module here, each returning a JSON-able dict; a failing section is recorded
with its error and the run goes on): machine facts, producers, jobs (Python UDFs vs their
built-in twin), loader, end to end (alert latency, sustained rate) and start-up. `runner.run`
writes `bench/results/<date>-<machine>.json`, a Markdown summary and PNG plots (`report`).
"""

from __future__ import annotations

import signal
from types import FrameType


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so a killed bench runs its `finally` blocks: it cancels
    the jobs it submitted and drops its database instead of leaving them on the cluster."""
    signal.signal(signal.SIGTERM, _interrupt)
