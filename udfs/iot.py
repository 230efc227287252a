"""Energy integration: power samples (W) -> energy (kWh) with the trapezoidal rule.

Pure Python; the Flink wrappers (``energy_kwh`` general UDAF, ``energy_kwh_pd`` pandas UDAF)
live in :mod:`udfs.flink` and call :func:`integrate_kwh`, so every form returns the same double.

Semantics: samples are sorted by (time, power) inside the group/window (they may arrive out of
order), consecutive samples form trapezoids ``(p_i + p_(i+1)) / 2 * (t_(i+1) - t_i)`` in joules,
summed with ``math.fsum`` (correctly rounded, so the result does not depend on arrival order)
and divided by 3.6e6. A group with a single sample, or none, contributes 0.0; samples with a
NULL power or time are ignored. Energy before the first and after the last sample of a window is
not extrapolated, so per-window kWh of a HOP window are not additive across windows.

Which SQL forms work in Flink 2.2 (tested in tests/unit/test_udfs_flink.py): see the table in
:mod:`udfs.flink`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

JOULES_PER_KWH = 3_600_000.0
_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


def to_epoch_ms(ts: datetime | int) -> int:
    """Epoch milliseconds of a naive (UTC / local-agnostic) datetime; ints pass through.

    Only differences between samples matter, so a naive TIMESTAMP(3) is fine as it is.
    """
    if isinstance(ts, int):
        return ts
    if ts.tzinfo is not None:
        ts = ts.replace(tzinfo=None) - ts.utcoffset()  # type: ignore[operator]
    return (ts - _EPOCH) // _MS


def integrate_kwh(samples: Iterable[tuple[int, float]]) -> float:
    """kWh of ``(epoch_ms, power_w)`` samples in any order (trapezoidal rule, see module doc)."""
    ordered = sorted((t, p) for t, p in samples if t is not None and p is not None)
    if len(ordered) < 2:
        return 0.0
    joules = math.fsum(
        (p0 + p1) * (t1 - t0) / 2000.0  # W * ms / 2 / 1000 = J
        for (t0, p0), (t1, p1) in zip(ordered, ordered[1:], strict=False)
    )
    return joules / JOULES_PER_KWH


@dataclass
class EnergyAccumulator:
    """Mergeable accumulator: the samples of one group/window (kept until the window fires)."""

    times_ms: list[int] = field(default_factory=list)
    powers_w: list[float] = field(default_factory=list)

    def add(self, power_w: float | None, ts: datetime | int | None) -> None:
        if power_w is None or ts is None:
            return
        self.times_ms.append(to_epoch_ms(ts))
        self.powers_w.append(float(power_w))

    def merge(self, other: EnergyAccumulator) -> None:
        self.times_ms.extend(other.times_ms)
        self.powers_w.extend(other.powers_w)

    def result(self) -> float:
        return integrate_kwh(zip(self.times_ms, self.powers_w, strict=True))
