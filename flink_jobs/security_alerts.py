"""security_alerts: MATCH_RECOGNIZE rules + an energy threshold -> incidents on `alerts`; raw
security events. Thresholds follow live settings from config.rules (flinkpulse.rules)."""

from __future__ import annotations

import sys
from typing import Any

from flink_jobs import validation
from flink_jobs.common import JobContext, Needs, Wire, job_params, run_job, wire
from flinkpulse.config import Config
from flinkpulse.topics import RULES_TOPIC

JOB = "security_alerts"
DEFAULTS: dict[str, Any] = {
    "brute_force_failures": 5,
    "brute_force_window_s": 60,
    "kill_rate_kills": 10,
    "kill_rate_window_s": 10,
    "energy_threshold_w": 7000,
    "energy_window_s": 60,
    # an incident (one alert_id) ends after this many seconds without a match of its rule
    # and entity; escalate its severity one level from this many matches on
    "incident_gap_s": 60,
    "incident_escalate_after": 3,
}
OUTPUTS = ["alerts", "security_events"]
#: what the rules read of the topics other jobs own (flink.source_needs): these fields, and only
#: the records the rule views of security_alerts.sql select (login attempts, kills, power
#: readings), so the rest is never deduplicated or kept in state here
NEEDS = {
    "access_logs": Needs(
        ("client_ip", "user_id", "method", "path", "status"),
        "`method` = 'POST' AND path LIKE '/login%'",
    ),
    "player_events": Needs(
        ("player_id", "match_id", "weapon", "headshot", "event_type"), "event_type = 'KILL'"
    ),
    "sensor_readings": Needs(
        ("home_id", "device_id", "sensor_type", "value"), "sensor_type = 'POWER'"
    ),
}


def build(t_env: Any, cfg: Config, ctx: JobContext | None = None, wire: Wire = wire) -> JobContext:
    """Wire the four sources, `sql/flink/security_alerts.sql` and the sinks (no execution)."""
    ctx = ctx or JobContext(cfg=cfg, t_env=t_env, job=JOB)
    # (topic, view, validator, owns the topic's dlq./late. outputs)
    sources = [
        ("iot.security-events", "security_events_in", validation.security_event, True),
        ("web.access-logs", "access_logs", validation.access_log, False),
        ("gaming.player-events", "player_events", validation.player_event, False),
        ("iot.sensor-readings", "sensor_readings", validation.sensor_reading, False),
        # live rule parameters: the versioned table `rules` of the SQL (common.rules_source)
        (RULES_TOPIC, "rule_changes", None, True),
    ]
    params = job_params(cfg, JOB, DEFAULTS)
    # the raw security events go on to `security_events` as they arrive, not after a window
    return wire(
        ctx,
        sources,
        "security_alerts.sql",
        params,
        OUTPUTS,
        needs=NEEDS,
        immediate=("security_events_in",),
    )


def main(argv: list[str] | None = None) -> None:
    # a backfill is a bounded streaming run, not batch: the incident views order a rule's
    # matches by their arrival (PROCTIME, see the .sql), an order batch execution has not
    run_job(JOB, build, argv, batch_backfill=False)


if __name__ == "__main__":
    main(sys.argv[1:])
