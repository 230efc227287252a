"""The time flags' one parser (`flinkpulse.commands.times`): every form it takes, and what a bad
value says."""

from __future__ import annotations

import argparse

import pytest

from flinkpulse.commands.times import epoch_ms

NOW = 1_796_601_600_000  # 2026-12-07T00:00:00Z


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1796601600000", NOW),
        (" 1796601600000 ", NOW),
        ("2026-12-07T00:00:00Z", NOW),
        ("2026-12-07T00:00", NOW),
        ("2026-12-07 01:00:00+01:00", NOW),
        ("2026-12-07", NOW),
        ("2026-12-07T00:00:00.250Z", NOW + 250),
        ("now", NOW),
        ("NOW", NOW),
        ("now-10m", NOW - 600_000),
        ("now - 90s", NOW - 90_000),
        ("now-2h", NOW - 7_200_000),
        ("now-1d", NOW - 86_400_000),
    ],
)
def test_every_form_gives_epoch_milliseconds(text: str, ms: int) -> None:
    assert epoch_ms(text, now_ms=NOW) == ms


def test_now_is_the_wall_clock_by_default() -> None:
    import time

    before = int(time.time() * 1000)
    got = epoch_ms("now-1s")
    assert before - 1000 <= got <= int(time.time() * 1000) - 1000


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("yesterday", "expected epoch milliseconds, an ISO 8601 time"),
        ("-5", "expected epoch milliseconds, an ISO 8601 time"),
        ("1.5e12", "expected epoch milliseconds, an ISO 8601 time"),
        ("now+10m", "expected epoch milliseconds, an ISO 8601 time"),
        ("now-10", "expected a duration such as 30m, 24h or 7d, got '10'"),
        ("now-0m", "expected a duration such as 30m, 24h or 7d, got '0m'"),
        ("2026-13-01", "got '2026-13-01'"),
    ],
)
def test_a_bad_time_says_what_it_expects(text: str, error: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=error.replace("+", r"\+")):
        epoch_ms(text, now_ms=NOW)
