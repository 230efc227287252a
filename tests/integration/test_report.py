"""`flinkpulse report` on known rows: a fresh ClickHouse database of the real stack is filled with
scripted results (what the loader would insert), the CLI writes the PDF, HTML and JSON of the
period, and the PDF's text (pypdf) holds the exact figures: incidents per rule (an incident's
two versions count once, overlapping HOP windows and rows outside the period never count), the
top appliance and its kWh, the error rate, the K/D leader without the cheater. Its pages render
(pypdfium2) to non-blank images, with the charts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flinkpulse.clickhouse.migrate import client, migrate
from flinkpulse.config import Config

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
FROM, TO = "2026-11-29T10:00:00", "2026-11-29T11:00:00"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def win(start_min: float, size_s: int = 60) -> dict[str, Any]:
    s = at(start_min)
    return {"window_start": s, "window_end": s + timedelta(seconds=size_s)}


def alert(aid: str, rule: str, entity: str, t_min: float, version: int = 1, **kw: Any) -> dict:
    t = at(t_min)
    return {
        "alert_id": aid,
        "rule": rule,
        "severity": kw.get("severity", "WARNING"),
        "entity_type": kw.get("entity_type", "client_ip"),
        "entity_id": entity,
        "summary": kw.get("summary", f"{rule} on {entity}"),
        "event_count": kw.get("event_count", 1),
        "first_event_time": t - timedelta(seconds=30),
        "last_event_time": t,
        "detected_at": t + timedelta(seconds=2),
        "attributes": {},
        "occurrences": version,
        "version": version,
    }


def temp(start_min: float, avg: float, lo: float, hi: float, last: float) -> dict[str, Any]:
    """A kitchen temperature window of two samples."""
    return {
        **win(start_min),
        **{"device_id": "t1", "home_id": "h1", "room": "kitchen", "sensor_type": "TEMPERATURE"},
        **{"unit": "C", "samples": 2, "avg_value": avg, "min_value": lo, "max_value": hi},
        "last_value": last,
    }


ROWS: dict[str, list[dict[str, Any]]] = {
    "alerts": [
        alert("bf1", "brute_force_login", "203.0.113.7", 5, summary="7 failed logins then ok"),
        alert("bf2", "brute_force_login", "198.51.100.9", 20),
        # one incident updated: two versions, counted once, newest state
        alert("door1", "door_open_while_armed", "h1", 10, entity_type="home"),
        alert(
            "door1",
            "door_open_while_armed",
            "h1",
            12,
            version=2,
            entity_type="home",
            summary="front door opened twice while armed",
            event_count=2,
        ),
        alert(
            "en1",
            "energy_over_threshold",
            "h1",
            30,
            entity_type="home",
            summary="h1 drew 4200 W for 5 min",
        ),
        alert("kr1", "impossible_kill_rate", "cheat", 40, entity_type="player"),
        # outside the period
        alert("bf0", "brute_force_login", "203.0.113.7", -30),
        alert("bf9", "brute_force_login", "203.0.113.7", 61),
    ],  # fmt: skip
    "energy_usage": [
        {
            **win(1),
            "home_id": "h1",
            "appliance": "oven",
            "kwh": 0.5,
            "avg_power_w": 3000.0,
            "max_power_w": 3500.0,
        },
        {
            **win(2),
            "home_id": "h1",
            "appliance": "oven",
            "kwh": 0.25,
            "avg_power_w": 1500.0,
            "max_power_w": 2000.0,
        },
        {
            **win(3),
            "home_id": "h2",
            "appliance": "oven",
            "kwh": 0.125,
            "avg_power_w": 750.0,
            "max_power_w": 900.0,
        },
        {
            **win(4),
            "home_id": "h1",
            "appliance": "heater",
            "kwh": 0.6,
            "avg_power_w": 3600.0,
            "max_power_w": 3600.0,
        },
        # an overlapping HOP window (start not a multiple of the size): never summed
        {
            **win(4 + 1 / 6),
            "home_id": "h1",
            "appliance": "heater",
            "kwh": 5.0,
            "avg_power_w": 3600.0,
            "max_power_w": 3600.0,
        },
        {
            **win(70),
            "home_id": "h2",
            "appliance": "heater",
            "kwh": 9.0,
            "avg_power_w": 1.0,
            "max_power_w": 1.0,
        },
    ],  # fmt: skip
    "web_traffic": [
        {
            **win(1),
            "path": "/login",
            "status": 200,
            "requests": 80,
            "errors": 0,
            "error_rate": 0.0,
            "latency_p50": 20.0,
            "latency_p95": 50.0,
            "bytes": 8000,
        },
        {
            **win(1),
            "path": "/login",
            "status": 401,
            "requests": 20,
            "errors": 20,
            "error_rate": 1.0,
            "latency_p50": 200.0,
            "latency_p95": 300.0,
            "bytes": 2000,
        },
        {
            **win(2),
            "path": "/api/items",
            "status": 200,
            "requests": 300,
            "errors": 0,
            "error_rate": 0.0,
            "latency_p50": 10.0,
            "latency_p95": 40.0,
            "bytes": 90000,
        },
        {
            **win(2 + 1 / 6),
            "path": "/api/items",
            "status": 500,
            "requests": 100,
            "errors": 100,
            "error_rate": 1.0,
            "latency_p50": 10.0,
            "latency_p95": 40.0,
            "bytes": 100,
        },
    ],  # fmt: skip
    "client_activity": [
        {
            **win(1),
            "client_ip": "203.0.113.7",
            "country": "DE",
            "browser": "curl",
            "device": "Other",
            "requests": 25,
            "errors": 20,
            "bytes": 100,
        },
        {
            **win(2),
            "client_ip": "192.0.2.1",
            "country": "FR",
            "browser": "Firefox",
            "device": "Other",
            "requests": 375,
            "errors": 0,
            "bytes": 100,
        },
    ],  # fmt: skip
    "player_stats": [
        {
            **win(1),
            "player_id": "ana",
            "team": "red",
            "match_id": "m1",
            "kills": 6,
            "deaths": 2,
            "assists": 0,
            "damage": 600.0,
            "headshots": 1,
            "kd_ratio": 3.0,
        },
        {
            **win(1),
            "player_id": "bo",
            "team": "blue",
            "match_id": "m1",
            "kills": 1,
            "deaths": 3,
            "assists": 0,
            "damage": 100.0,
            "headshots": 0,
            "kd_ratio": 1 / 3,
        },
        {
            **win(1),
            "player_id": "cheat",
            "team": "blue",
            "match_id": "m1",
            "kills": 40,
            "deaths": 0,
            "assists": 0,
            "damage": 4000.0,
            "headshots": 40,
            "kd_ratio": 40.0,
        },
    ],  # fmt: skip
    "device_stats": [temp(1, 21.0, 20.0, 22.0, 22.0), temp(2, 23.0, 22.5, 23.5, 23.5)],
    "source_quality": [
        {
            "sampled_at": at(-1),
            "topic": "web.access-logs",
            "records": 100,
            "late": 1,
            "dead_lettered": 2,
            "future": 0,
        },
        {
            "sampled_at": at(59),
            "topic": "web.access-logs",
            "records": 1100,
            "late": 11,
            "dead_lettered": 7,
            "future": 3,
        },
    ],  # fmt: skip
}


@pytest.fixture
def rcfg(ensure_stack: Any, cfg: Config, prefix: str) -> Iterator[Config]:
    """`cfg` with a fresh migrated database holding ROWS; dropped afterwards."""
    ensure_stack("clickhouse")
    cfg.clickhouse.database = f"{prefix}_report"
    migrate(cfg, log=None)
    writer = client(cfg, "writer", database=cfg.clickhouse.database)
    try:
        for table, rows in ROWS.items():
            cols = list(rows[0])
            extra = [] if table == "source_quality" else ["_topic", "_partition", "_offset"]
            data = [
                [r[c] for c in cols] + ([table, 0, i] if extra else []) for i, r in enumerate(rows)
            ]
            writer.insert(table, data, column_names=cols + extra)
        yield cfg
    finally:
        writer.command(f"DROP DATABASE IF EXISTS `{cfg.clickhouse.database}`")
        writer.close()


def run(cfg: Config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flinkpulse", *args, "--database", cfg.clickhouse.database],
        capture_output=True,
        text=True,
        timeout=120,
    )


def pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(path).pages)


def test_report_has_the_exact_figures_of_known_rows(rcfg: Config, tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    res = run(rcfg, "report", "--from", FROM, "--to", TO, "--out", str(out), "--html", "--json")
    assert res.returncode == 0, res.stderr
    assert "incidents: 5" in res.stdout
    text = pdf_text(out)
    # incidents per rule: rule, incidents, events, entities, highest severity
    assert "brute_force_login 2 2 2 WARNING" in text
    assert "door_open_while_armed 1 2 1 WARNING" in text
    assert "energy_over_threshold 1 1 1 WARNING" in text
    assert "impossible_kill_rate 1 1 1 WARNING" in text
    assert "front door opened twice while armed" in text  # the incident's newest state
    # energy: the tiling windows only (the overlapping 5 kWh window never counts)
    assert "top appliance oven (0.875 kWh)" in text
    assert "1 oven 0.875 2 3,500" in text and "2 heater 0.600 1 3,600" in text
    assert "1 h1 1.350 3,600" in text and "2 h2 0.125 900" in text
    assert "h1 drew 4200 W for 5 min" in text
    # web: 20 errors of 400 requests in the tiling windows
    assert "web error rate 5.00 %" in text
    assert "400 requests, 20 errors: error rate 5.00 %" in text
    assert "/login 100 20 20.00 % 300.0" in text  # p95: 20 % of requests at 300 ms
    # K/D: the cheater is not a leader, but is listed as a cheater
    assert "ana leads with a K/D of 3.00 (6 kills, 2 deaths)" in text
    assert "cheat 1 40 0 40.00" in text
    # climate: last reading and the sample-weighted mean
    assert "h1 kitchen TEMPERATURE 23.5 C" in text
    assert "h1 kitchen TEMPERATURE 22.0 20.0 23.5 4" in text
    # data quality over the period: the difference of the cumulative samples
    assert "web.access-logs 1,000 10 (1.00 %) 5 (0.50 %) 3 (0.30 %)" in text
    # the newest benchmark is named with its date and machine
    assert "Newest benchmark: 2026-11-26-vm.json" in text

    model = json.loads(out.with_suffix(".json").read_text())
    assert dict(map(tuple, model["summary"]))["incidents"] == "5"
    html = out.with_suffix(".html").read_text()
    assert "oven (0.875 kWh)" in html and html.count("data:image/png;base64,") == len(
        [b for s in model["sections"] for b in s["blocks"] if "figure" in b]
    )

    import pypdfium2 as pdfium
    from pypdf import PdfReader

    # five charts: incidents, appliances, temperature, K/D, requests
    assert sum(len(page.images) for page in PdfReader(out).pages) == 5
    pdf = pdfium.PdfDocument(str(out))
    try:
        assert len(pdf) >= 3
        for i in range(len(pdf)):
            img = pdf[i].render(scale=0.5).to_pil().convert("L")
            lo, hi = img.getextrema()
            assert lo < 100 and hi > 200, f"page {i + 1} is blank"
    finally:
        pdf.close()


def test_empty_period_is_a_clear_report(rcfg: Config, tmp_path: Path) -> None:
    out = tmp_path / "empty.pdf"
    res = run(rcfg, "report", "--from", "2026-01-01", "--to", "2026-01-02", "--out", str(out))
    assert res.returncode == 0, res.stderr
    text = pdf_text(out)
    assert "nothing happened in this period; the data spans" in text
    assert "No incidents in this period." in text
    assert "No web requests in this period." in text


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--last", "2x"], "--last: expected a duration such as 30m, 24h or 7d, got '2x'"),
        (["--from", "yesterday"], "--from: expected an ISO 8601 time"),
        (["--last", "1h", "--from", FROM], "--last cannot be combined with --from/--to"),
        (["--from", TO, "--to", FROM], "--from must be before --to"),
        (["--out", "report.docx"], "--out must name a .pdf file"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], error: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "report", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert error in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
