"""udfs.iot as plain Python: trapezoidal kWh of known power profiles."""

import random
from datetime import datetime, timedelta, timezone

import pytest

from udfs.iot import EnergyAccumulator, integrate_kwh, to_epoch_ms

pytestmark = pytest.mark.unit

HOUR_MS = 3_600_000


def test_constant_1000_w_for_one_hour_is_one_kwh() -> None:
    samples = [(t, 1000.0) for t in range(0, HOUR_MS + 1, 60_000)]
    assert integrate_kwh(samples) == 1.0


def test_linear_ramp_is_integrated_exactly() -> None:
    # 0 -> 3600 W over one hour, one sample per second: mean 1800 W for 1 h = 1.8 kWh
    samples = [(s * 1000, float(s)) for s in range(3601)]
    assert integrate_kwh(samples) == 1.8


def test_order_does_not_matter() -> None:
    samples = [(s * 1000, float((s * 37) % 500)) for s in range(1000)]
    shuffled = samples[:]
    random.Random(7).shuffle(shuffled)
    assert integrate_kwh(shuffled) == integrate_kwh(samples)


def test_step_profile() -> None:
    # 0 W at t=0, 2000 W at t=30 min, 2000 W at t=60 min:
    # (0+2000)/2 * 1800 s + 2000 * 1800 s = 1.8e6 + 3.6e6 J = 1.5 kWh
    assert integrate_kwh([(HOUR_MS, 2000.0), (0, 0.0), (HOUR_MS // 2, 2000.0)]) == 1.5


def test_single_sample_empty_and_nulls_contribute_zero() -> None:
    assert integrate_kwh([]) == 0.0
    assert integrate_kwh([(0, 5000.0)]) == 0.0
    assert integrate_kwh([(0, 5000.0), (1000, None)]) == 0.0  # type: ignore[list-item]


def test_equal_timestamps_are_deterministic() -> None:
    a = [(0, 100.0), (1000, 300.0), (1000, 100.0), (2000, 100.0)]
    assert integrate_kwh(a) == integrate_kwh(list(reversed(a)))


def test_accumulator_add_merge_with_datetimes() -> None:
    base = datetime(2024, 1, 1)
    left, right = EnergyAccumulator(), EnergyAccumulator()
    for minute in range(0, 61, 2):
        (left if minute % 4 else right).add(1000.0, base + timedelta(minutes=minute))
    left.add(None, base)
    left.add(123.0, None)
    left.merge(right)
    assert left.result() == 1.0


def test_to_epoch_ms() -> None:
    assert to_epoch_ms(datetime(1970, 1, 1, 0, 0, 1, 500_000)) == 1500
    assert to_epoch_ms(datetime(1970, 1, 1, 2, tzinfo=timezone(timedelta(hours=1)))) == HOUR_MS
    assert to_epoch_ms(42) == 42


@pytest.mark.parametrize("n", [2, 3, 10])
def test_accumulator_matches_function(n: int) -> None:
    acc = EnergyAccumulator()
    samples = [(i * 10_000, 100.0 * i) for i in range(n)]
    for t, p in samples:
        acc.add(p, t)
    assert acc.result() == integrate_kwh(samples)
