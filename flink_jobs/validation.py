"""Per-record checks applied while decoding (issue: bad input gets a clear outcome).

Each returns None to accept the record (possibly clamped in place) or a reason, which sends the
record to dlq.<topic>: ``invalid value in field <field>: <why>`` (flinkpulse.avro.Reason, the
loader's reason for a value its table cannot store). Documented outcomes:

| input | outcome |
|---|---|
| negative damage | clamped to 0 |
| NaN / inf damage, sensor value or latency | dead-lettered |
| HTTP status outside 100..599 | dead-lettered |
| negative bytes or latency | dead-lettered |
| KILL without a target | dead-lettered |
| event time more than 10 years back | dead-lettered |
| a timestamp outside years 1..9999 (any timestamp field; all are top-level, tests/unit/test_decoding.py) | dead-lettered (flink_jobs/decoding.py) |
| event time more than `flink.future_tolerance_s` ahead of the Kafka timestamp | dead-lettered as "future" (flink_jobs/common.py) |
| event time more than `flink.watermark_delay_s` behind the Kafka timestamp | late.<topic> (flink_jobs/common.py) |

Records arrive here with timestamps as epoch milliseconds (flink_jobs/decoding.py). Times are
judged against the record's Kafka timestamp in SQL (it replays identically), not here
against this machine's clock: only the 10-year sanity bound uses the wall clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flinkpulse.avro import invalid_field

MAX_PAST_S = 10 * 365 * 86_400


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not (math.isnan(x) or math.isinf(x))


def _time_ok(rec: dict[str, Any]) -> str | None:
    """The event time (epoch milliseconds, as the jobs decode it) is there and not absurdly old."""
    t = rec.get("event_time")
    if not isinstance(t, int):
        return invalid_field("event_time", "missing")
    if t < (time.time() - MAX_PAST_S) * 1000:
        at = (datetime(1970, 1, 1) + timedelta(milliseconds=t)).isoformat()
        return invalid_field("event_time", f"{at} is more than 10 years in the past")
    return None


def player_event(rec: dict[str, Any]) -> str | None:
    dmg = rec.get("damage")
    if dmg is None or not _finite(dmg):
        return invalid_field("damage", f"{dmg!r} is not a finite number")
    if dmg < 0:
        rec["damage"] = 0.0
    if rec.get("event_type") == "KILL" and not rec.get("target_player_id"):
        return invalid_field("target_player_id", "missing for a KILL")
    return _time_ok(rec)


def sensor_reading(rec: dict[str, Any]) -> str | None:
    if not _finite(rec.get("value")):
        return invalid_field("value", f"{rec.get('value')!r} is not a finite number")
    return _time_ok(rec)


def security_event(rec: dict[str, Any]) -> str | None:
    return _time_ok(rec)


def access_log(rec: dict[str, Any]) -> str | None:
    status = rec.get("status")
    if not isinstance(status, int) or not 100 <= status <= 599:
        return invalid_field("status", f"{status!r} is not an HTTP status (100..599)")
    if not _finite(rec.get("latency_ms")) or rec["latency_ms"] < 0:
        return invalid_field(
            "latency_ms", f"{rec.get('latency_ms')!r} is not a non-negative number"
        )
    if rec.get("bytes") is None or rec["bytes"] < 0:
        return invalid_field("bytes", f"{rec.get('bytes')!r} is negative")
    return _time_ok(rec)


#: logical source topic -> its record's check (topics.SOURCE_RECORDS names the record): the
#: archive and bench/decode.py look it up here; the jobs' source specs are tested against it
BY_TOPIC: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "gaming.player-events": player_event,
    "iot.sensor-readings": sensor_reading,
    "iot.security-events": security_event,
    "web.access-logs": access_log,
}
