"""Issue 9: `flinkpulse bench --quick` runs on the real stack and writes its JSON and Markdown.

Numbers are reported, not tested: the assertions are about the shape of the results (every
section present, measured or with the reason it was not), never about thresholds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flinkpulse.bench.report import SECTIONS
from flinkpulse.paths import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(1200)
def test_bench_quick_writes_json_and_markdown(ensure_stack: Any, tmp_path: Path) -> None:
    ensure_stack("kafka", "registry", "clickhouse", "flink")
    t = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1180,  # < 3 min on an idle machine; ~7 min at load 20-40
    )
    elapsed = time.monotonic() - t
    assert res.returncode == 0, res.stderr[-2000:]
    js = sorted(tmp_path.glob("*-quick.json"))
    md = sorted(tmp_path.glob("*-quick.md"))
    assert len(js) == 1 and len(md) == 1, list(tmp_path.iterdir())
    data = json.loads(js[0].read_text())
    assert data["quick"] is True
    assert data["machine"]["cores"] >= 1 and data["machine"]["memory_gb"] > 0
    assert data["machine"]["versions"]["apache-flink"] == "2.2.0"
    for section in ("producers", "jobs", "profile", "loader", "e2e", "startup"):
        sec = data[section]
        # measured, or saying why not: never silently empty
        assert sec and ("error" in sec or "skipped" in sec or len(sec) > 2), (section, sec)
    assert {r["domain"] for r in data["producers"]["rows"]} == {"gaming", "iot", "web"}
    assert {r["variant"] for r in data["jobs"]["rows"]} == {"udf", "twin"}
    assert "full run only" in data["profile"]["skipped"]  # minutes per job: not in --quick
    assert data["loader"]["loaded"] == data["loader"]["rows"] == 20_000
    assert [g["goal"] for g in data["goals"]][0].startswith("producer")
    text = md[0].read_text()
    for title in SECTIONS:
        assert f"\n## {title}\n" in text, title
    print(f"bench --quick took {elapsed:.0f} s")
