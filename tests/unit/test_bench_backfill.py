"""The pure parts of the issue 18/22 benchmarks: state growth per event, the records read at a
checkpoint's trigger, and which script a bench variant submits."""

from __future__ import annotations

import pytest

from flinkpulse.bench.backfill import growth, read_at
from flinkpulse.bench.jobs import lever_cfg, variant_script
from flinkpulse.config import load_config

pytestmark = pytest.mark.unit


def test_growth_is_the_least_squares_line() -> None:
    assert growth([(0, 1000), (100, 3000), (200, 5000)]) == {
        "bytes_per_event": 20.0,
        "intercept_bytes": 1000.0,
    }
    fit = growth([(0, 0), (10, 10), (20, 40)])
    assert fit is not None
    assert fit["bytes_per_event"] == pytest.approx(2.0, abs=1e-12)
    assert fit["intercept_bytes"] == pytest.approx(-10.0 / 3, abs=1e-12)


def test_growth_needs_two_event_counts() -> None:
    assert growth([]) is None
    assert growth([(5, 100), (5, 200)]) is None


def test_read_at_is_the_last_sample_not_after() -> None:
    samples = [(10.0, 0), (11.0, 50), (12.0, 120)]
    assert read_at(samples, 9.5) is None
    assert read_at(samples, 11.0) == 50
    assert read_at(samples, 11.9) == 50
    assert read_at(samples, 99.0) == 120


def test_variant_scripts() -> None:
    assert variant_script("device_stats", "udf") == ("device_stats", [])
    assert variant_script("device_stats", "udf+no_dedup") == ("device_stats", [])
    assert variant_script("device_stats", "udf+no_join") == ("no_joins", ["--job", "device_stats"])
    assert variant_script("device_stats", "udf+archive") == ("device_stats", [])
    assert variant_script("player_stats", "twin+object_reuse") == (
        "builtin_twin",
        ["--job", "player_stats"],
    )
    with pytest.raises(ValueError, match="not with the twin"):
        variant_script("device_stats", "twin+no_join")


def test_script_and_alongside_levers_leave_the_config_alone() -> None:
    cfg = load_config()
    assert lever_cfg(cfg, "udf+no_join+archive") == cfg
    assert lever_cfg(cfg, "udf+no_dedup").flink.dedup is False
