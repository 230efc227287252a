"""The reliability report: tests record what they measured; `make reliability-report` publishes it.

A pytest plugin (loaded from tests/conftest.py). Tests call the `reliability` fixture with one
row per fault or bad input: what was expected, the counts measured, lost/duplicated. At the end
of the session the rows go to test-artifacts/reliability-rows.json (untracked): a test run
never rewrites a tracked file. `make reliability-report` (``python -m tests.reliability_report``)
merges them (by test and case) into docs/reliability.json, so a run of a subset refreshes only
its own rows, and renders docs/RELIABILITY.md from it. Nothing there is written by hand.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
JSON_FILE = DOCS / "reliability.json"
MD_FILE = DOCS / "RELIABILITY.md"
#: what the last test session recorded (rows, and the tests that failed)
SESSION_FILE = ROOT / "test-artifacts" / "reliability-rows.json"

_ROWS: list[dict[str, Any]] = []

AREAS = ["bad input", "event time", "fault", "security"]

HEADER = """# Reliability report

Generated from the rows the tests record (`tests/reliability_report.py`), the last run of each
test: do not edit by hand — run `make test` (or the tests named below), then
`make reliability-report`.

Reconciliation per topic: **produced = accepted + dead-lettered + late**; *accepted* is
measured through the job's effect (result topics, ClickHouse rows), *dead-lettered* by reading
`dlq.<topic>`, *late* by reading `late.<topic>`. *Lost* and *duplicated* are computed from the
exact set of expected records.
"""


def _fmt_counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def render(rows: list[dict[str, Any]]) -> str:
    """The Markdown document for `rows` (grouped by area, in a stable order)."""
    out = [HEADER]
    for area in AREAS + sorted({r["area"] for r in rows} - set(AREAS)):
        mine = sorted((r for r in rows if r["area"] == area), key=lambda r: (r["test"], r["case"]))
        if not mine:
            continue
        out.append(f"\n## {area[0].upper() + area[1:]}\n")
        out.append("| fault / input | expected outcome | measured | lost | dup | result | test |")
        out.append("|---|---|---|---|---|---|---|")
        for r in mine:
            cell = [
                r["case"],
                r["expected"],
                _fmt_counts(r["measured"]),
                "–" if r.get("lost") is None else str(r["lost"]),
                "–" if r.get("duplicated") is None else str(r["duplicated"]),
                "pass" if r["passed"] else "**FAIL**",
                f"`{r['test']}`",
            ]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cell) + " |")
    run = max((r["recorded_at"] for r in rows), default="")
    out.append(f"\nLast recorded: {run} (UTC).\n")
    return "\n".join(out)


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Callable[..., None]:
    """`reliability(area, case, expected, measured={...}, lost=0, duplicated=0)`.

    Call it after the assertions of the case (a row is recorded as passed); a failing test
    records nothing new and keeps its previous row marked as failed at session end.
    """
    test = request.node.nodeid.split("::", 1)[-1].split("[")[0]
    module = Path(request.node.nodeid.split("::", 1)[0]).name

    def record(
        area: str,
        case: str,
        expected: str,
        measured: dict[str, Any],
        lost: int | None = None,
        duplicated: int | None = None,
    ) -> None:
        _ROWS.append(
            {
                "area": area,
                "case": case,
                "expected": expected,
                "measured": measured,
                "lost": lost,
                "duplicated": duplicated,
                "test": f"{module}::{test}",
                "passed": True,
                "recorded_at": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            }
        )

    return record


_FAILED: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        nodeid = report.nodeid
        _FAILED.add(f"{Path(nodeid.split('::', 1)[0]).name}::{nodeid.split('::', 1)[-1]}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _ROWS and not _FAILED:
        return
    SESSION_FILE.parent.mkdir(exist_ok=True)
    SESSION_FILE.write_text(
        json.dumps({"rows": _ROWS, "failed": sorted(_FAILED)}, indent=1, sort_keys=True) + "\n"
    )


def merge(old: list[dict[str, Any]], session: dict[str, Any]) -> list[dict[str, Any]]:
    """`old` rows with a session's: a test that recorded rows replaces all of its old ones; a
    test that failed keeps its previous rows, marked failed."""
    rows = session.get("rows", [])
    fresh = {(r["test"], r["case"]) for r in rows}
    tests_now = {r["test"] for r in rows}
    merged = [r for r in old if (r["test"], r["case"]) not in fresh and r["test"] not in tests_now]
    merged += rows
    failed = {f.split("[")[0] for f in session.get("failed", [])}
    for r in merged:
        if r["test"].split("[")[0] in failed:
            r["passed"] = False
    return merged


def publish(
    session_file: Path = SESSION_FILE, json_file: Path = JSON_FILE, md_file: Path = MD_FILE
) -> int:
    """Merge the last session's rows into docs/reliability.json and render docs/RELIABILITY.md."""
    try:
        session = json.loads(session_file.read_text())
    except FileNotFoundError:
        print(f"no recorded rows in {session_file}: run `make test` first", file=sys.stderr)
        return 1
    try:
        old = json.loads(json_file.read_text())
    except (OSError, ValueError):
        old = []
    merged = merge(old, session)
    json_file.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    md_file.write_text(render(merged))
    print(f"{len(session.get('rows', []))} rows of the last test run -> {md_file}")
    return 0


if __name__ == "__main__":
    sys.exit(publish())
