"""The decode UDF's wire types: timestamps cross the Python/Java boundary as epoch millis."""

from __future__ import annotations

from flink_jobs.decoding import timestamp_fields


def test_timestamp_fields_of_every_source_record() -> None:
    assert timestamp_fields("flinkpulse.gaming.PlayerEvent") == {"event_time"}
    assert timestamp_fields("flinkpulse.iot.SensorReading") == {"event_time"}
    assert timestamp_fields("flinkpulse.iot.SecurityEvent") == {"event_time"}
    assert timestamp_fields("flinkpulse.web.AccessLog") == {"event_time"}


def test_every_timestamp_of_every_schema_is_a_top_level_field_the_decoder_range_checks() -> None:
    """decode_batch range-checks the fields timestamp_fields names (years 1..9999), which are
    top-level only: a timestamp inside a nested record, array or map would pass unchecked, so
    a schema that adds one must extend the check first."""
    import json
    from pathlib import Path
    from typing import Any

    def nested(t: Any, depth: int) -> list[str]:
        if isinstance(t, list):
            return [n for x in t for n in nested(x, depth)]
        if not isinstance(t, dict):
            return []
        if t.get("type") == "record":
            return [n for f in t["fields"] for n in nested(f["type"], depth + 1)]
        if t.get("type") in ("array", "map"):
            return nested(t.get("items", t.get("values")), depth + 1)
        return [str(t)] if t.get("logicalType") == "timestamp-millis" and depth > 1 else []

    root = Path(__file__).resolve().parents[2] / "avro_schemas"
    files = sorted(root.glob("*/v*.avsc"))
    assert len(files) >= 10
    found = {f"{p.parent.name}/{p.name}": nested(json.loads(p.read_text()), 0) for p in files}
    assert {name: ts for name, ts in found.items() if ts} == {}


def test_each_job_checks_a_source_with_the_validator_its_topic_has() -> None:
    """validation.BY_TOPIC is the one topic -> check mapping (the archive and bench/decode.py
    read it); the jobs' declarative source specs name theirs and must agree with it."""
    import importlib
    from typing import Any

    from flink_jobs import validation
    from flink_jobs.common import JobContext
    from flinkpulse.config import load_config
    from flinkpulse.topics import SOURCE_RECORDS

    assert set(validation.BY_TOPIC) == set(SOURCE_RECORDS)
    cfg = load_config(overrides=[])
    seen: dict[str, Any] = {}
    for job in ("device_stats", "player_stats", "web_traffic", "security_alerts"):
        mod = importlib.import_module(f"flink_jobs.{job}")

        def record(ctx: Any, sources: Any, *_: Any, job: str = job, **__: Any) -> Any:
            seen[job] = {s[0]: s[2] for s in sources if s[0] in SOURCE_RECORDS}
            return ctx

        mod.build(None, cfg, JobContext(cfg=cfg, t_env=None, job=job), wire=record)
    assert seen["security_alerts"] == validation.BY_TOPIC
    for job, checks in seen.items():
        assert checks and all(validation.BY_TOPIC[t] is v for t, v in checks.items()), job
