"""udfs.stats as plain Python: exact percentiles, identical to numpy's default (linear)."""

import random

import numpy as np
import pytest

from udfs.stats import percentile

pytestmark = pytest.mark.unit

# 21 request latencies (ms); sorted: 10..20, 22, 25, 28, 30, 35, 40, 45, 60, 100, 250
LATENCIES = [12, 15, 11, 30, 45, 10, 100, 14, 13, 20, 16, 18, 17, 19, 22, 25, 28, 35, 40, 250, 60]


def test_p95_p50_of_known_latencies() -> None:
    assert percentile(LATENCIES, 0.95) == 100.0  # rank (21-1)*0.95 = 19 -> 20th smallest
    assert percentile(LATENCIES, 0.5) == 20.0
    assert percentile(LATENCIES, 0.0) == 10.0
    assert percentile(LATENCIES, 1.0) == 250.0


def test_interpolates_between_ranks() -> None:
    assert percentile([0.0, 10.0, 10.0], 0.3) == 6.0  # rank 0.6: 0 + 0.6 * 10
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile(range(1, 101), 0.95) == pytest.approx(95.05, abs=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0])
def test_bit_identical_to_numpy(p: float) -> None:
    rng = random.Random(3)
    for n in (1, 2, 5, 100, 1001):
        values = [rng.lognormvariate(3, 1) for _ in range(n)]
        assert percentile(values, p) == float(np.quantile(values, p))


def test_nulls_ignored_empty_and_bad_p_give_null() -> None:
    assert percentile([None, 5.0, None], 0.95) == 5.0
    assert percentile([], 0.5) is None
    assert percentile([None], 0.5) is None
    assert percentile([1.0], None) is None
    assert percentile([1.0], 1.5) is None
    assert percentile([1.0], -0.1) is None
    assert percentile([1.0], float("nan")) is None
