"""quality's counts ask Kafka again while a partition has no leader yet (a topic just created):
`stack status` used to print "data quality: not available (... NOT_LEADER_FOR_PARTITION ...)"
right after the jobs created their topics."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from flinkpulse.quality import _settled


def _failing(codes: list[int]) -> tuple[list[int], Callable[[], str]]:
    """(calls made, a read that fails with each of `codes` in turn, then answers)."""
    calls: list[int] = []

    def read() -> str:
        calls.append(1)
        if len(calls) <= len(codes):
            raise KafkaException(KafkaError(codes[len(calls) - 1]))
        return "counts"

    return calls, read


def test_a_partition_without_a_leader_yet_is_asked_again() -> None:
    calls, read = _failing([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE])
    assert _settled(read, settle_s=5) == "counts"
    assert len(calls) == 3


def test_another_error_is_raised_at_once() -> None:
    calls, read = _failing([KafkaError._TRANSPORT])
    with pytest.raises(KafkaException, match="_TRANSPORT"):
        _settled(read, settle_s=5)
    assert len(calls) == 1


def test_a_leader_that_never_comes_fails_after_the_settle_time() -> None:
    calls, read = _failing([KafkaError.NOT_LEADER_FOR_PARTITION] * 100)
    t0 = time.monotonic()
    with pytest.raises(KafkaException, match="NOT_LEADER_FOR_PARTITION"):
        _settled(read, settle_s=1.2)
    assert 1.2 <= time.monotonic() - t0 < 2.5 and 3 <= len(calls) <= 4
