"""`flinkpulse dlq`'s pieces as plain Python: which side topics exist, where a record came
from, and its line (the command against real jobs: tests/integration/test_bad_input.py)."""

from __future__ import annotations

import json

from flinkpulse.commands.dlq import PREVIEW_CHARS, as_json, as_line
from flinkpulse.quality import SideRecord, side_topics

T = 1_796_601_600_123  # 2026-12-07T00:00:00.123Z


def _rec(
    headers: dict[str, str], value: bytes | None = b"\x01abc", key: bytes | None = b"k"
) -> SideRecord:
    return SideRecord(
        "dlq", "iot.security-events", "p.dlq.iot.security-events", 0, 7, T, key, value, headers
    )


def test_side_topics_follow_the_topology() -> None:
    assert side_topics(["late"]) == [
        ("late", "gaming.player-events"),
        ("late", "iot.sensor-readings"),
        ("late", "iot.security-events"),
        ("late", "web.access-logs"),
    ]
    # the loader dead-letters results too; only dlq.<topic> exists for them
    assert ("dlq", "results.player-stats") in side_topics(["dlq"])
    assert side_topics(["dup", "late"], ["web.access-logs"]) == [
        ("late", "web.access-logs"),
        ("dup", "web.access-logs"),
    ]


def test_a_line_names_origin_key_and_reason() -> None:
    full = {"error": "truncated", "source.topic": "p.iot.security-events"}
    rec = _rec({**full, "source.partition": "2", "source.offset": "41"})
    assert as_line(rec) == (
        "2026-12-07 00:00:00.123Z  dlq   p.iot.security-events[2]@41  key=k  truncated"
    )
    # refused by the ingest tier: it never reached the topic, so no partition or offset
    assert as_line(_rec(full, key=None)) == (
        "2026-12-07 00:00:00.123Z  dlq   p.iot.security-events  key=-  truncated"
    )
    assert as_line(_rec({})).endswith("dlq   iot.security-events  key=k  (no reason header)")


def test_values_are_decoded_when_they_can_be_else_their_first_bytes() -> None:
    rec = _rec({"error": "late: …"})
    assert as_line(rec, lambda v: {"event_id": "e-1"}).endswith('late: …  value={"event_id":"e-1"}')
    assert as_line(rec, lambda v: None).endswith("value=<4 bytes: 01 61 62 63>")
    long = as_line(_rec({}, value=bytes(range(40))), lambda v: None)
    assert long.endswith("value=<40 bytes: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f …>")
    big = as_line(rec, lambda v: {"x": "y" * 500})
    assert len(big.split("value=", 1)[1]) == PREVIEW_CHARS and big.endswith("…")


def test_json_keeps_everything() -> None:
    rec = _rec({"error": "truncated", "source.topic": "t"})
    got = json.loads(as_json(rec, lambda v: None))
    assert got == {
        "kafka_time": "2026-12-07 00:00:00.123Z",
        "kind": "dlq",
        "source": "iot.security-events",
        "origin": "t",
        "topic": "p.dlq.iot.security-events",
        "partition": 0,
        "offset": 7,
        "reason": "truncated",
        "headers": {"error": "truncated", "source.topic": "t"},
        "key": "k",
        "value": None,
        "value_base64": "AWFiYw==",
    }
