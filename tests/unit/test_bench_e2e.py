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
