"""device_stats: per-device sensor statistics, energy per home/appliance and energy hogs (IoT).
Readings are attributed to the home and room of their device at their event time (iot.devices)."""

from __future__ import annotations

import sys
from typing import Any

from flink_jobs import validation
from flink_jobs.common import JobContext, Wire, job_params, run_job, wire
from flinkpulse.config import Config
from flinkpulse.topics import DEVICES_TOPIC

JOB = "device_stats"
DEFAULTS: dict[str, Any] = {"window_size_s": 60, "window_slide_s": 10}
OUTPUTS = ["device_stats", "energy_usage"]


def build(t_env: Any, cfg: Config, ctx: JobContext | None = None, wire: Wire = wire) -> JobContext:
    """Wire sources, `sql/flink/device_stats.sql` and the sinks into `t_env` (no execution)."""
    ctx = ctx or JobContext(cfg=cfg, t_env=t_env, job=JOB)
    sources = [
        ("iot.sensor-readings", "sensor_readings", validation.sensor_reading, True),
        # where each device is: the versioned table `devices` (sql/flink/devices.sql)
        (DEVICES_TOPIC, "device_changes", None, True),
    ]
    return wire(ctx, sources, "device_stats.sql", job_params(cfg, JOB, DEFAULTS), OUTPUTS)


def main(argv: list[str] | None = None) -> None:
    # a backfill is a bounded streaming run, not batch: Flink runs the event-time temporal join
    # with the devices only in streaming mode
    run_job(JOB, build, argv, batch_backfill=False)


if __name__ == "__main__":
    main(sys.argv[1:])
