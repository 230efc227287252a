"""The decode UDF's wire types: timestamps cross the Python/Java boundary as epoch millis."""

from __future__ import annotations

from datetime import datetime

from flink_jobs.decoding import epoch_millis, timestamp_fields


def test_epoch_millis_is_exact_at_millisecond_precision() -> None:
    assert epoch_millis(None) is None
    assert epoch_millis(datetime(1970, 1, 1)) == 0
    assert epoch_millis(datetime(2026, 1, 1, 0, 0, 0, 123_000)) == 1_767_225_600_123
    assert epoch_millis(datetime(2016, 11, 26, 23, 59, 59, 999_000)) == 1_480_204_799_999


def test_timestamp_fields_of_every_source_record() -> None:
    assert timestamp_fields("flinkpulse.gaming.PlayerEvent") == {"event_time"}
    assert timestamp_fields("flinkpulse.iot.SensorReading") == {"event_time"}
    assert timestamp_fields("flinkpulse.iot.SecurityEvent") == {"event_time"}
    assert timestamp_fields("flinkpulse.web.AccessLog") == {"event_time"}
