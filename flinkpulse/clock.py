"""Steps of the wall clock, seen against the monotonic clock.

The ingest tier stamps every record's Kafka timestamp with its wall clock (producers, the MQTT
and HTTP bridges; docs/event-time.md), and the jobs judge event time against it. A step of that
clock (an NTP step, a laptop waking, a virtual machine resumed) makes the records around it late
or early by the step. Whoever stamps records watches for steps with `ClockSteps` and says so,
so that lateness has its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

#: a change of the wall clock against the monotonic one at least this big (s) is a step
CLOCK_STEP_S = 1.0
#: a reading of both clocks is taken when the monotonic clock moved less than this across it
CLOCK_READ_SLACK_S = 0.05


@dataclass(frozen=True)
class ClockStep:
    """The wall clock moved `size` seconds against the monotonic clock (an NTP step, a laptop
    waking, a virtual machine resumed), when it read `at` (epoch s, before the step). A live
    event stamped before a forward step reaches Kafka after it, late by its Kafka timestamp; so
    do the events a generator scheduled in the skipped span. After a backward step, events are
    behind the watermark the earlier Kafka timestamps set."""

    at: float
    size: float

    def __str__(self) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.at))
        return f"{self.size:+.1f} s at {when}.{int(self.at * 1000) % 1000:03d}Z"


class ClockSteps:
    """Steps of the wall clock seen between readings of both clocks (`observe`), kept in
    :attr:`steps`: a producer reports them, so lateness they caused has its reason."""

    __slots__ = ("steps", "_offset", "_monotonic", "_wall")

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.steps: list[ClockStep] = []
        self._offset: float | None = None
        self._monotonic = monotonic
        self._wall = wall

    def observe(self) -> ClockStep | None:
        """Read both clocks and compare with the last reading; the step, if the wall clock made
        one. A reading the thread was descheduled in the middle of (the monotonic clock moved
        more than `CLOCK_READ_SLACK_S` across it: a starved machine) is no verdict."""
        before = self._monotonic()
        wall = self._wall()
        after = self._monotonic()
        if after - before > CLOCK_READ_SLACK_S:
            return None
        offset = wall - (before + after) / 2
        last, self._offset = self._offset, offset
        if last is None or abs(offset - last) < CLOCK_STEP_S:
            return None
        step = ClockStep(at=wall - (offset - last), size=offset - last)
        self.steps.append(step)
        return step
