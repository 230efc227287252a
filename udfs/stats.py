"""Exact percentile with linear interpolation between closest ranks (numpy's default).

Flink 2.2 has a built-in ``PERCENTILE(expr, p)`` aggregate with the same definition, and it works
in window TVF aggregations in streaming and batch mode (tested in tests/unit/test_udfs_flink.py):
the jobs use it, it stays in the JVM (it can differ from numpy in the last bit). This module is
the reference definition the tests hold Flink's PERCENTILE to.

Definition: sort the n non-NULL values x_0..x_(n-1); h = (n - 1) * p; result =
x_floor(h) + (h - floor(h)) * (x_floor(h)+1 - x_floor(h)), computed with numpy's symmetric lerp
so results are bit-identical to ``numpy.percentile(x, 100 * p)`` / ``numpy.quantile(x, p)``.
No values -> NULL; p outside [0, 1] or NULL -> NULL (a UDAF must not fail the job).
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's lerp: exact at both ends and monotonic (uses the nearer end as the base)."""
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


def percentile(values: Iterable[float | None], p: float | None) -> float | None:
    """The p-quantile (0 <= p <= 1) of ``values``, NULLs ignored (see module doc)."""
    if p is None or not 0.0 <= p <= 1.0 or math.isnan(p):
        return None
    xs = sorted(float(v) for v in values if v is not None)
    if not xs:
        return None
    h = (len(xs) - 1) * p
    lo = math.floor(h)
    if lo >= len(xs) - 1:
        return xs[-1]
    return _lerp(xs[lo], xs[lo + 1], h - lo)
