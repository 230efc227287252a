"""Flink-shaped Avro result records for the loader benchmark and the loader tests.

The schemas mirror what Flink's avro-confluent format derives from the result views: record
name ``record``, nullable columns as ``["null", T]`` unions, timestamps as timestamp-millis.
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import requests

from flinkpulse.avro import header

_TS = {"type": "long", "logicalType": "timestamp-millis"}


def _nullable(t: Any) -> list[Any]:
    return ["null", t]


def flink_schema(fields: list[tuple[str, Any, bool]]) -> dict[str, Any]:
    """fields: (name, avro type, nullable) -> the schema Flink would register."""
    return {
        "type": "record",
        "name": "record",
        "namespace": "org.apache.flink.avro.generated",
        "fields": [
            {"name": n, "type": _nullable(t), "default": None}
            if nullable
            else {"name": n, "type": t}
            for n, t, nullable in fields
        ],
    }


PLAYER_STATS = flink_schema(
    [
        ("window_start", _TS, False),
        ("window_end", _TS, False),
        ("player_id", "string", True),
        ("team", "string", True),
        ("match_id", "string", True),
        ("kills", "int", True),
        ("deaths", "int", True),
        ("assists", "int", True),
        ("damage", "double", True),
        ("headshots", "int", True),
        ("kd_ratio", "double", True),
    ]
)

ALERT = flink_schema(
    [
        ("alert_id", "string", True),
        ("rule", "string", True),
        ("severity", "string", True),
        ("entity_type", "string", True),
        ("entity_id", "string", True),
        ("summary", "string", True),
        ("event_count", "int", True),
        ("first_event_time", _TS, True),
        ("last_event_time", _TS, True),
        ("detected_at", _TS, False),
        ("attributes", {"type": "map", "values": _nullable("string")}, True),
    ]
)

SECURITY_EVENT = flink_schema(
    [
        ("event_id", "string", True),
        ("home_id", "string", True),
        ("device_id", "string", True),
        ("room", "string", True),
        ("kind", "string", True),
        ("event_time", _TS, True),
    ]
)


def register(registry_url: str, subject: str, schema: dict[str, Any]) -> int:
    r = requests.post(
        f"{registry_url}/subjects/{subject}/versions",
        json={"schema": json.dumps(schema)},
        timeout=10,
    )
    r.raise_for_status()
    return int(r.json()["id"])


class Encoder:
    """Confluent wire format for one schema id."""

    def __init__(self, schema_id: int, schema: dict[str, Any]) -> None:
        self.header = header(schema_id)
        self.parsed = fastavro.parse_schema(schema)

    def __call__(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self.header)
        fastavro.schemaless_writer(buf, self.parsed, record)
        return buf.getvalue()


def player_row(i: int, base_ms: int = 1_767_225_600_000) -> dict[str, Any]:
    """A deterministic player_stats row number i (distinct window/player per i)."""
    w = i // 10
    kills, deaths = i % 7, i % 3
    return {
        "window_start": base_ms + w * 10_000,
        "window_end": base_ms + w * 10_000 + 60_000,
        "player_id": f"player-{i % 10:05d}",
        "team": "red" if i % 2 else "blue",
        "match_id": f"match-{w // 100:04d}",
        "kills": kills,
        "deaths": deaths,
        "assists": i % 4,
        "damage": float(i % 1000) + 0.5,
        "headshots": kills // 2,
        "kd_ratio": None if i % 11 == 0 else (kills / deaths if deaths else float(kills)),
    }
