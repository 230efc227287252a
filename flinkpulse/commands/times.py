"""Times and durations on the command line: one parser for every flag that takes them.

`jobs submit --start-at/--from/--to`, `backfill --from/--to`, `report --from/--to` and
`produce --start-time` all accept the same forms, so what works for one works for all.
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime, timedelta

#: seconds per unit of a duration (`30s`, `90m`, `24h`, `7d`, `2w`)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: what a time flag accepts, for help texts and errors
TIME_FORMS = (
    "epoch milliseconds, an ISO 8601 time (UTC unless zoned, e.g. 2026-11-30T08:00) "
    "or now[-DURATION] (e.g. now-10m)"
)


def duration(text: str) -> timedelta:
    """'90m', '24h', '7d' ... -> timedelta (argparse type: a bad value is a usage error)."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 30m, 24h or 7d, got {text!r}"
        )
    return timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])


def epoch_ms(text: str, now_ms: int | None = None) -> int:
    """Epoch milliseconds of `text`: an integer (ms), an ISO 8601 time or date (UTC unless it
    has an offset), `now`, or `now-DURATION` (`now-10m`: ten minutes before `now_ms`, which
    defaults to the wall clock). An argparse type: a bad value is a usage error."""
    s = text.strip()
    if s.isdigit():
        return int(s)
    m = re.fullmatch(r"now\s*(?:-\s*(\S+))?", s, re.IGNORECASE)
    if m:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        back = duration(m.group(1)) if m.group(1) else timedelta(0)
        return now - int(back.total_seconds() * 1000)
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {TIME_FORMS}, got {text!r}") from None
    return int((t.replace(tzinfo=UTC) if t.tzinfo is None else t).timestamp() * 1000)


def utc_time(text: str) -> datetime:
    """`epoch_ms` as a UTC datetime (argparse type for flags that want a datetime)."""
    return datetime.fromtimestamp(epoch_ms(text) / 1000, UTC)
