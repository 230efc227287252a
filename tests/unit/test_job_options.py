"""The Flink options every job gets come from the typed config."""

from __future__ import annotations

from flink_jobs.common import flink_table_options
from flinkpulse.config import load_config


def test_source_idle_timeout_comes_from_the_config() -> None:
    """Idleness decides when a quiet partition stops holding the watermark; a job catching
    up a backlog raises it (docs/event-time.md), so it must not be a constant."""
    default = flink_table_options(load_config(overrides=[]), "web_traffic")
    assert default["table.exec.source.idle-timeout"] == "10 s"
    raised = load_config(overrides=["flink.idle_timeout_s=60"])
    assert flink_table_options(raised, "web_traffic")["table.exec.source.idle-timeout"] == "60 s"
    assert flink_table_options(raised, "web_traffic")["table.local-time-zone"] == "UTC"
