"""Per-record checks applied while decoding (issue: bad input gets a clear outcome).

Each returns None to accept the record (possibly clamped in place) or a reason, which sends the
record to dlq.<topic>. Documented outcomes:

| input | outcome |
|---|---|
| negative damage | clamped to 0 |
| NaN / inf damage, sensor value or latency | dead-lettered |
| HTTP status outside 100..599 | dead-lettered |
| negative bytes or latency | dead-lettered |
| KILL without a target | dead-lettered |
| event time more than 10 years back | dead-lettered |
| event time more than `flink.future_tolerance_s` ahead of the Kafka timestamp | dead-lettered as "future" (flink_jobs/common.py) |
| event time more than `flink.watermark_delay_s` behind the Kafka timestamp | late.<topic> (flink_jobs/common.py) |

Times are judged against the record's Kafka timestamp in SQL (it replays identically), not here
against this machine's clock: only the 10-year sanity bound uses the wall clock.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

MAX_PAST_S = 10 * 365 * 86_400


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not (math.isnan(x) or math.isinf(x))


def _time_ok(rec: dict[str, Any]) -> str | None:
    t = rec.get("event_time")
    if not isinstance(t, datetime):
        return "event_time missing"
    from datetime import UTC

    ts = t.replace(tzinfo=UTC).timestamp()
    now = time.time()
    if ts < now - MAX_PAST_S:
        return f"event_time {t.isoformat()} is more than 10 years in the past"
    return None


def player_event(rec: dict[str, Any]) -> str | None:
    dmg = rec.get("damage")
    if dmg is None or not _finite(dmg):
        return f"damage is not a finite number: {dmg!r}"
    if dmg < 0:
        rec["damage"] = 0.0
    if rec.get("event_type") == "KILL" and not rec.get("target_player_id"):
        return "KILL without target_player_id"
    return _time_ok(rec)


def sensor_reading(rec: dict[str, Any]) -> str | None:
    if not _finite(rec.get("value")):
        return f"value is not a finite number: {rec.get('value')!r}"
    return _time_ok(rec)


def security_event(rec: dict[str, Any]) -> str | None:
    return _time_ok(rec)


def access_log(rec: dict[str, Any]) -> str | None:
    status = rec.get("status")
    if not isinstance(status, int) or not 100 <= status <= 599:
        return f"status {status!r} is not an HTTP status (100..599)"
    if not _finite(rec.get("latency_ms")) or rec["latency_ms"] < 0:
        return f"latency_ms {rec.get('latency_ms')!r} is not a non-negative number"
    if rec.get("bytes") is None or rec["bytes"] < 0:
        return f"bytes {rec.get('bytes')!r} is negative"
    return _time_ok(rec)
