"""`make reliability-report`: the rows a test run recorded are merged into the tracked report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flinkpulse.paths import ROOT
from tests import reliability_report as rr


def _row(test: str, case: str, lost: int = 0) -> dict[str, object]:
    return {
        "area": "fault",
        "case": case,
        "expected": "exact rows",
        "measured": {"produced": 600, "lost": lost},
        "lost": lost,
        "duplicated": 0,
        "test": test,
        "passed": True,
        "recorded_at": "2026-11-30 12:00",
    }


def test_a_run_replaces_its_tests_rows_and_marks_failed_ones(tmp_path: Path) -> None:
    session, js, md = tmp_path / "rows.json", tmp_path / "r.json", tmp_path / "R.md"
    js.write_text(json.dumps([_row("a.py::t1", "old case"), _row("b.py::t2", "kept")]))
    session.write_text(json.dumps({"rows": [_row("a.py::t1", "new case")], "failed": ["b.py::t2"]}))
    assert rr.publish(session, js, md) == 0
    rows = {(r["test"], r["case"]): r["passed"] for r in json.loads(js.read_text())}
    assert rows == {("a.py::t1", "new case"): True, ("b.py::t2", "kept"): False}
    text = md.read_text()
    assert "| new case | exact rows | produced 600, lost 0 | 0 | 0 | pass | `a.py::t1` |" in text
    assert "| kept |" in text and "**FAIL**" in text and "old case" not in text


def test_make_target_publishes_and_a_missing_run_is_one_line(tmp_path: Path) -> None:
    res = subprocess.run(["make", "-s", "-n", "reliability-report"], capture_output=True,
                         text=True, cwd=ROOT)  # fmt: skip
    assert res.returncode == 0 and "-m tests.reliability_report" in res.stdout
    res = subprocess.run(
        [sys.executable, "-c", "import sys, pathlib; from tests import reliability_report as r; "
         "sys.exit(r.publish(pathlib.Path(sys.argv[1])))", str(tmp_path / "none.json")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"no recorded rows in {tmp_path / 'none.json'}: run `make test` first"
    ]
