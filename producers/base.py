"""What every generator shares: the event tuple, a simulated event-time clock with out-of-order
and late events, and deterministic ids.

Event time is simulated, not read from the wall clock, so that a seeded run is identical twice:
the clock starts at ``start_ms`` and advances ``1000 / events_per_second`` ms per event. When the
Kafka producer runs at ``--rate N`` it passes ``events_per_second=N`` and ``start_ms=now``, so
event time tracks wall-clock time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: (key, record, logical topic): what generators yield
Event = tuple[str, dict[str, Any], str]
EventStream = Iterator[Event]


@dataclass
class TimeConfig:
    """Event-time behaviour shared by all generators."""

    #: event time of the first event (ms since the epoch); None = now
    start_ms: int | None = None
    #: how fast simulated event time advances, in events per second of event time
    events_per_second: float = 1000.0
    #: fraction of events whose time is moved back by up to `out_of_order_ms` (within the
    #: watermark delay: re-ordered but not late)
    out_of_order_fraction: float = 0.05
    out_of_order_ms: int = 3000
    #: fraction of events moved back by `late_min_ms`..`late_max_ms` (behind any sane watermark)
    late_fraction: float = 0.0
    late_min_ms: int = 30_000
    late_max_ms: int = 120_000

    def start(self) -> int:
        return int(time.time() * 1000) if self.start_ms is None else int(self.start_ms)


class Clock:
    """Simulated event time plus the out-of-order/late jitter, driven by the generator's rng."""

    __slots__ = ("now", "step", "_rng", "_ooo", "_late", "_ooo_ms", "_late_min", "_late_span")

    def __init__(self, tc: TimeConfig, rng: random.Random) -> None:
        if not 0 <= tc.out_of_order_fraction + tc.late_fraction <= 1:
            raise ValueError("out_of_order_fraction + late_fraction must be within [0, 1]")
        self.now = float(tc.start())
        self.step = 1000.0 / tc.events_per_second
        self._rng = rng
        self._late = tc.late_fraction
        self._ooo = tc.late_fraction + tc.out_of_order_fraction
        self._ooo_ms = tc.out_of_order_ms
        self._late_min = tc.late_min_ms
        self._late_span = tc.late_max_ms - tc.late_min_ms

    def tick(self) -> int:
        """Advance one event; the current event time in ms."""
        self.now += self.step
        return int(self.now)

    def stamp(self, t: int) -> int:
        """Event time as emitted: `t`, or moved back (out of order / late) for a few events."""
        r = self._rng.random()
        if r >= self._ooo:
            return t
        if r < self._late:
            return t - self._late_min - int(self._rng.random() * self._late_span)
        return t - int(self._rng.random() * self._ooo_ms)


def make_id(rng: random.Random) -> str:
    """A random-looking UUID (version-4 layout) drawn from `rng`: reproducible for a seed."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:32]}"


def id_prefix(rng: random.Random) -> str:
    """A random UUID-shaped prefix; ``prefix + f"{n:012x}"`` makes cheap, unique, seeded ids."""
    return make_id(rng)[:24]


def take(stream: EventStream, n: int) -> list[Event]:
    """The first `n` events of a stream (for tests and samples)."""
    out = []
    for ev in stream:
        out.append(ev)
        if len(out) >= n:
            break
    return out
