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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flinkpulse.config import Config
from flinkpulse.report.perf import newest_bench
from tests.report_data import FROM, TO, known_database

pytestmark = pytest.mark.integration


@pytest.fixture
def rcfg(ensure_stack: Any, cfg: Config, prefix: str) -> Iterator[Config]:
    """`cfg` with a fresh database holding the known rows (tests/report_data.py)."""
    ensure_stack("clickhouse")
    with known_database(cfg, f"{prefix}_report") as c:
        yield c


def run(cfg: Config, *args: str) -> subprocess.CompletedProcess[str]:
    """`flinkpulse ARGS --database <the test's database>`."""
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
    # web: 20 errors of 404 requests in the tiling windows
    assert "web error rate 4.95 %" in text
    assert "404 requests, 20 errors (5xx): error rate 4.95 %" in text
    # p95 per path from path_latency, request-weighted over its windows: 300, not the max 900
    assert "/login 104 20 19.23 % 300.0" in text
    assert "/api/items 300 0 0.00 % 40.0" in text
    # K/D: the cheater is not a leader, but is listed as a cheater
    assert "ana leads with a K/D of 3.00 (6 kills, 2 deaths)" in text
    assert "cheat 1 40 0 40.00" in text
    # climate: last reading and the sample-weighted mean
    assert "h1 kitchen TEMPERATURE 23.5 C" in text
    assert "h1 kitchen TEMPERATURE 22.0 20.0 23.5 4" in text
    # data quality over the period: the difference of the cumulative samples
    assert "web.access-logs 1,000 10 (1.00 %) 5 (0.50 %) 3 (0.30 %)" in text
    # the loader: rows loaded in the period (by _loaded_at), 2.5 s after their time
    assert "energy_usage 5 0.03 2.5 s 2.5 s" in text and "web_traffic 5 " in text
    # throughput and lag over the period, from job_metrics (counters per run, restarts counted)
    assert "player_stats 5 2,300 1,150 10.0 12.0 5.0 25 100 20" in text
    assert "loader 2 400 400 3.0 4.0 3.0 15 30 30" in text
    # the newest benchmark in bench/results (by its start time) is named with its date and
    # machine; which file that is changes with every committed bench run
    newest = newest_bench()
    assert newest is not None and newest["file"].startswith("20")
    assert f"Newest benchmark: {newest['file']}" in text

    model = json.loads(out.with_suffix(".json").read_text())
    assert dict(map(tuple, model["summary"]))["incidents"] == "5"
    html = out.with_suffix(".html").read_text()
    assert "oven (0.875 kWh)" in html and html.count("data:image/png;base64,") == len(
        [b for s in model["sections"] for b in s["blocks"] if isinstance(b, dict) and "figure" in b]
    )

    import pypdfium2 as pdfium
    from pypdf import PdfReader

    # six charts: incidents, appliances, temperature, K/D, requests, job throughput
    assert sum(len(page.images) for page in PdfReader(out).pages) == 6
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
        (["--from", "yesterday"], "--from: expected epoch milliseconds, an ISO 8601 time"),
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


def test_dead_letter_reasons_of_the_period(ensure_stack: Any, rcfg: Config, tmp_path: Path) -> None:
    """Dead letters in dlq.<topic> whose Kafka timestamp is in the period, counted per kind of
    reason (numbers and details left out); those before the period are not counted."""
    ensure_stack("kafka")
    from confluent_kafka import Producer

    from tests.kafka_helpers import create_topics

    dlq = rcfg.kafka.topic("dlq.web.access-logs")
    create_topics(rcfg.kafka.bootstrap_servers, [dlq], partitions=2)
    now = int(time.time() * 1000)
    letters = [
        ("cannot decode with schema id 7: the record ends early (truncated)", now - 60_000),
        ("cannot decode with schema id 9: 3 trailing bytes after the record", now - 50_000),
        ("wrong magic byte 3 (expected 0: not Confluent Avro)", now - 40_000),
        ("future: event_time 2026-11-30 12:00:00 is more than 5 s ahead", now - 30_000),
        ("invalid value in field status: 700 is not an HTTP status (100..599)", now - 20_000),
        (
            "cannot decode with schema id 7: the record ends early (truncated)",
            now - 20 * 60_000,
        ),  # before the period
    ]
    p = Producer({"bootstrap.servers": rcfg.kafka.bootstrap_servers})
    for i, (reason, ts) in enumerate(letters):
        p.produce(dlq, key=b"k%d" % i, value=b"x", timestamp=ts, headers=[("error", reason)])
    assert p.flush(30) == 0
    out = tmp_path / "dlq.pdf"
    res = run(
        rcfg,
        *["--set", f"kafka.topic_prefix={rcfg.kafka.topic_prefix}"],
        *["report", "--last", "10m", "--out", str(out)],
    )
    assert res.returncode == 0, res.stderr
    text = pdf_text(out)
    assert "web.access-logs cannot decode with schema id N 2" in text
    assert "web.access-logs wrong magic byte N (expected N: not Confluent Avro) 1" in text
    assert "web.access-logs future: event time too far ahead of its Kafka timestamp 1" in text
    assert "web.access-logs invalid value in field status 1" in text
