"""Issue 22: a live rule change on the running security_alerts job, on the real stack.

Two homes draw 5000 W (the default threshold is 7000 W), live, with wall-clock event times.
`flinkpulse rules set energy_over_threshold --home A --watts 4000` lowers A's threshold while
the job runs: the job emits A's alert within 10 s of the change (detected_at; it is on the topic
when the exactly-once sink commits, at the next checkpoint), never for a window that ended before it, and
B never alerts. `flinkpulse rules list` shows the setting with who changed it and from what.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from flinkpulse.config import Config
from flinkpulse.paths import ROOT
from flinkpulse.rules import current
from tests.pipeline_helpers import Reader, Writer, deployment

pytestmark = pytest.mark.integration

SENSOR = "iot.sensor-readings"
WINDOW_MS = 2000


def _reading(home: str, t: int) -> dict[str, Any]:
    return {
        "device_id": f"{home}-heatpump", "home_id": home, "room": "utility",
        "sensor_type": "POWER", "value": 5000.0, "unit": "W", "appliance": "heat_pump",
        "event_time": t,
    }  # fmt: skip


def _cli(cfg: Config, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse.cli",
         "--set", f"kafka.topic_prefix={cfg.kafka.topic_prefix}", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_lowering_a_homes_threshold_alerts_that_home_within_10_s(
    ensure_stack: Callable[..., Config], base_cfg: Config, prefix: str
) -> None:
    ensure_stack("kafka", "registry", "flink")
    # 2 s energy windows and a 2 s watermark delay, so a window closes seconds after its events
    base = base_cfg.derive(
        flink={"watermark_delay_s": 2.0, "checkpoint_interval_s": 1.0},
        jobs={"security_alerts": {"energy_window_s": WINDOW_MS // 1000}},
    )
    a, b = f"{prefix}-a", f"{prefix}-b"
    with deployment(base, prefix, ["security_alerts"]) as cfg:
        w = Writer(cfg)
        alerts = Reader(cfg, "alerts", avro=True)

        def feed(seconds: float) -> None:
            """Both homes' readings every 250 ms, event time = Kafka timestamp = now."""
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                now = int(time.time() * 1000)
                for home in (a, b):
                    w.avro(SENSOR, home, _reading(home, now))
                w.flush()
                alerts.poll(0.25)

        # before: 12 s of 5000 W (and every empty partition idle: 10 s), no alert
        feed(12.0)
        changed = _cli(cfg, "rules", "set", "energy_over_threshold", "--home", a,
                       "--watts", "4000", "--reason", "heat pump", "--by", "ops")  # fmt: skip
        assert changed.startswith(f"energy_over_threshold home:{a}: watts unset -> 4000 (by ops")
        setting = current(cfg)[f"energy_over_threshold/home:{a}"]
        t_change = int(setting["changed_at"].timestamp() * 1000)
        assert (setting["previous"], setting["changed_by"], setting["reason"]) == (
            None, "ops", "heat pump",
        )  # fmt: skip
        # visible on the topic once the exactly-once sink commits (at the next checkpoint)
        while not any(v["entity_id"] == a for v in alerts.values):
            assert time.time() * 1000 - t_change < 30_000, "no alert for the home within 30 s"
            feed(0.5)
        feed(2.0)
        got = [v for v in alerts.values if v["rule"] == "energy_over_threshold"]
        assert {v["entity_id"] for v in got} == {a}, got
        # a window is judged at its end: the first alert is for the window the change fell in,
        # none for any window that ended before it
        first = min(int(v["first_event_time"].timestamp() * 1000) for v in got)
        assert first >= t_change - t_change % WINDOW_MS, (first, t_change)
        assert got[0]["attributes"]["threshold_w"] == "4000.0"
        assert "(threshold 4000 W)" in got[0]["summary"]
        # decided and emitted by the job (detected_at) within 10 s of the change
        emitted_ms = int(got[0]["detected_at"].timestamp() * 1000) - t_change
        assert 0 < emitted_ms < 10_000, emitted_ms
        alerts.close()
        listed = _cli(cfg, "rules", "list")
        assert f"  home:{a}: 4000  (by ops at " in listed and ", was unset)" in listed
        assert "energy_over_threshold (watts): default 7000 (job config)" in listed
