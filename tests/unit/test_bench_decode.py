"""bench/decode.py (issue 17) decodes every source schema with its job's validation: a record it
generates is never refused, so the µs it prints are those of accepted records."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "decode.py"


def test_every_source_decodes_accepted_in_the_benchmark() -> None:
    measure = runpy.run_path(str(SCRIPT))["measure"]
    for record in (
        "flinkpulse.iot.SensorReading",
        "flinkpulse.gaming.PlayerEvent",
        "flinkpulse.web.AccessLog",
        "flinkpulse.iot.SecurityEvent",
    ):
        assert 0 < measure(record, 200, passes=1) < 10_000, record


def test_the_command_prints_a_line_per_record_and_refuses_a_bad_flag_with_exit_2() -> None:
    ok = subprocess.run(
        [sys.executable, str(SCRIPT), "--records", "100", "flinkpulse.web.AccessLog"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert ok.stdout.startswith("flinkpulse.web.AccessLog") and "records/s" in ok.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unrecognized arguments: --bogus" in bad.stderr
