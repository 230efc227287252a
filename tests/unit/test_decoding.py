"""The decode UDF's wire types: timestamps cross the Python/Java boundary as epoch millis."""

from __future__ import annotations

from flink_jobs.decoding import timestamp_fields


def test_timestamp_fields_of_every_source_record() -> None:
    assert timestamp_fields("flinkpulse.gaming.PlayerEvent") == {"event_time"}
    assert timestamp_fields("flinkpulse.iot.SensorReading") == {"event_time"}
    assert timestamp_fields("flinkpulse.iot.SecurityEvent") == {"event_time"}
    assert timestamp_fields("flinkpulse.web.AccessLog") == {"event_time"}
