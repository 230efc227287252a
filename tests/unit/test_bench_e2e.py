"""The end-to-end benchmark's producers (flinkpulse/bench/e2e.py): plain Python, no services."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


def test_no_background_producer_resends_the_event_ids_of_another() -> None:
    """Every step (and the latency run) of one deployment sends new events: a step that re-sent
    an earlier one's ids would measure the jobs dropping copies (dup.<topic>), not the
    pipeline (2026-12-02: three steps in four were copies for the event-id domains)."""
    from flinkpulse.bench.e2e import LATENCY_SEED, step_seed
    from producers import streams
    from producers.base import TimeConfig, take

    seeds = [LATENCY_SEED, *(step_seed(i) for i in range(5))]
    assert len(set(seeds)) == len(seeds)
    per_run = []
    for seed in seeds:
        events = take(streams.stream("all", seed, TimeConfig(events_per_second=1000)), 600)
        per_run.append({rec["event_id"] for _key, rec, _topic in events if "event_id" in rec})
    assert all(len(ids) > 100 for ids in per_run)
    assert len(set().union(*per_run)) == sum(len(ids) for ids in per_run)


def test_a_bursty_flat_lag_is_not_growing_and_a_rising_one_is() -> None:
    """A step's verdict comes from the lag's trend over its second half, not from two samples:
    results arrive in bursts at each HOP slide, so the summed lag saws between ~0 and tens of
    thousands (the loader's part reached 40,000 in the 2026-12-04 soak) without falling behind."""
    from flinkpulse.bench.e2e import lag_slope

    step_s, limit = 180.0, 50_000  # 5,000 events/s, checkpoint 5 s: the step's threshold
    sawtooth = [(t, 60_000 if (t // 5) % 4 == 3 else 200) for t in range(0, 176, 5)]
    half = [lg for t, lg in sawtooth if t >= step_s / 2]
    assert half[-1] - half[0] > limit  # the old rule (first and last): a trough, then a peak
    assert abs(lag_slope(sawtooth, step_s / 2)) * step_s / 2 < limit
    rising = [(t, 1_000 + 700 * t) for t in range(0, 181, 5)]  # falls 700 records/s behind
    assert lag_slope(rising, step_s / 2) == pytest.approx(700)
    assert lag_slope(rising, step_s / 2) * step_s / 2 > limit
    assert lag_slope([(100.0, 5), (120.0, 9)], 90) == 0.0  # too few samples to tell
