"""What every generator shares: the event tuple, the event-time clock with out-of-order and late
events, and deterministic ids.

Two clocks (``TimeConfig.simulated``):

* live (the default): event time is the wall clock, read once every few events, so it is never
  ahead of the time the record is produced, at any rate (full speed included); the producer
  leaves the Kafka timestamp to librdkafka (the wall clock at ``produce()``).
* simulated (explicit: a start time, or ``simulated=True``): event time starts at ``start_ms``
  and advances ``1000 / events_per_second`` ms per event whatever the wall clock does, so a
  seeded run is identical twice; ``streams.stream`` then yields each event with its un-jittered
  clock time, which the producer sets as the record's Kafka timestamp (scripted scenarios,
  backfill data).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

#: (key, record, logical topic): what generators yield
Event = tuple[str, dict[str, Any], str]
#: an Event with its Kafka timestamp (ms): what simulated streams yield
TimedEvent = tuple[str, dict[str, Any], str, int]
EventStream = Iterator[Event]
_T = TypeVar("_T")


@dataclass
class TimeConfig:
    """Event-time behaviour shared by all generators."""

    #: event time of the first event (ms since the epoch); None = now
    start_ms: int | None = None
    #: how fast simulated event time advances, in events per second of event time (live: the
    #: nominal rate, which sizes the generators' populations and how often the wall clock is read)
    events_per_second: float = 1000.0
    #: fraction of events whose time is moved back by up to `out_of_order_ms` (within the
    #: watermark delay: re-ordered but not late)
    out_of_order_fraction: float = 0.05
    out_of_order_ms: int = 3000
    #: fraction of events moved back by `late_min_ms`..`late_max_ms` (behind any sane watermark)
    late_fraction: float = 0.0
    late_min_ms: int = 30_000
    late_max_ms: int = 120_000
    #: True: simulated clock; False: live (wall clock); None: simulated iff `start_ms` is set
    simulated: bool | None = None

    def start(self) -> int:
        return int(time.time() * 1000) if self.start_ms is None else int(self.start_ms)

    @property
    def is_simulated(self) -> bool:
        return self.start_ms is not None if self.simulated is None else self.simulated


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


class LiveClock(Clock):
    """Event time = the wall clock, read once every `every` events (20 ms at the nominal rate,
    at most 256 events) instead of per event: a reading only ages, so no event is ever stamped
    ahead of the moment it is produced, however fast the producer runs; and at the nominal rate
    it is at most ~20 ms old, well within the watermark delay."""

    __slots__ = ("_wall", "_every", "_left", "_first")

    def __init__(
        self, tc: TimeConfig, rng: random.Random, wall: Callable[[], float] = time.time
    ) -> None:
        super().__init__(tc, rng)
        self._wall = wall
        self._every = max(1, min(256, int(tc.events_per_second / 50)))
        # the first tick reads the clock again: a generator builds its pools after its clock,
        # and on a busy machine that took seconds, which the first events of a demo then
        # carried into Kafka as lateness (`late.*`, 2026-12-02)
        self._left = 1
        self.now = float(int(wall() * 1000))
        self._first = 0

    def tick(self) -> int:
        """The wall clock as of at most `every` events ago, in ms (never ahead of it)."""
        self._left -= 1
        if self._left <= 0:
            self._left = self._every
            self.now = float(int(self._wall() * 1000))
            if not self._first:
                self._first = int(self.now)
        return int(self.now)

    def stamp(self, t: int) -> int:
        """As :meth:`Clock.stamp`; a time scheduled before the first tick (from the reading
        when the generator was built, e.g. the first security events of the homes) is the
        first tick's: the stream starts when it is first read, not when it was built."""
        return super().stamp(max(t, self._first))


def new_clock(tc: TimeConfig, rng: random.Random) -> Clock:
    """The clock `tc` asks for: simulated (``tc.is_simulated``) or live."""
    return Clock(tc, rng) if tc.is_simulated else LiveClock(tc, rng)


def make_id(rng: random.Random) -> str:
    """A random-looking UUID (version-4 layout) drawn from `rng`: reproducible for a seed."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:32]}"


def id_prefix(rng: random.Random) -> str:
    """A random UUID-shaped prefix; ``prefix + f"{n:012x}"`` makes cheap, unique, seeded ids."""
    return make_id(rng)[:24]


def take(stream: Iterator[_T], n: int) -> list[_T]:
    """The first `n` events of a stream (for tests and samples)."""
    out = []
    for ev in stream:
        out.append(ev)
        if len(out) >= n:
            break
    return out
