"""The report's pure parts: period arguments, dead-letter reason kinds, the benchmark summary,
and a report model rendered to HTML and PDF without any service."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flinkpulse.commands.report import period_of
from flinkpulse.commands.times import duration, utc_time
from flinkpulse.errors import UsageError
from flinkpulse.quality import reason_kind
from flinkpulse.report import Figure, Period, Report, Section, Table, charts, perf
from flinkpulse.report.render import to_html, to_pdf

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("90m", 5400), ("24h", 86400), ("7d", 604800), ("2w", 1209600)],
)
def test_durations(text: str, seconds: int) -> None:
    assert duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0h", "24", "h", "1.5h", "-1h", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def test_timestamps_are_utc_unless_zoned() -> None:
    assert utc_time("2026-11-30T08:00") == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert utc_time("2026-11-30 08:00:00Z") == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert utc_time("2026-11-30T09:00+01:00") == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert utc_time("2026-11-30") == datetime(2026, 11, 30, tzinfo=UTC)


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"last": None, "start": None, "end": None, **kw})


def test_periods() -> None:
    assert period_of(_args(), NOW) == (NOW - timedelta(hours=24), NOW)
    assert period_of(_args(last=timedelta(hours=2)), NOW) == (NOW - timedelta(hours=2), NOW)
    t = NOW - timedelta(hours=5)
    assert period_of(_args(start=t), NOW) == (t, NOW)
    with pytest.raises(UsageError, match="--to needs --from"):
        period_of(_args(end=t), NOW)
    with pytest.raises(UsageError, match="--from must be before --to"):
        period_of(_args(start=NOW, end=t), NOW)


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("cannot decode with schema id 12: the record ends early (truncated)", "cannot decode with schema id N"),
        ("too short for Confluent wire format (3 bytes)", "too short for Confluent wire format (N bytes)"),
        ("wrong magic byte 7 (expected 0: not Confluent Avro)", "wrong magic byte N (expected N: not Confluent Avro)"),
        ("invalid value in field damage: nan is not a finite number", "invalid value in field damage"),
        ("future: event_time 2026-11-30 is ahead", "future: event time too far ahead of its Kafka timestamp"),
        ("", "(no reason)"),
    ],
)  # fmt: skip
def test_reason_kinds(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind


def test_newest_bench_is_the_latest_run() -> None:
    b = perf.newest_bench()
    assert b is not None
    assert b["file"] == sorted(p.name for p in perf.BENCH_RESULTS.glob("*.json"))[-1]
    assert "cores" in b["machine"] and b["figures"]


def test_newest_bench_of_an_empty_directory(tmp_path: Path) -> None:
    assert perf.newest_bench(tmp_path) is None


def test_bucket_sizes() -> None:
    assert Period(NOW - timedelta(hours=1), NOW).bucket_s() == 300
    assert Period(NOW - timedelta(hours=24), NOW).bucket_s() == 1800
    assert Period(NOW - timedelta(days=30), NOW).bucket_s() == 86400


def test_one_model_two_renderings() -> None:
    """HTML and PDF carry the same text; HTML escapes what it shows."""
    png = charts.bars(["a<b", "c"], [1.0, 2.0], "kWh")
    r = Report(
        "t",
        Period(NOW - timedelta(hours=1), NOW),
        NOW,
        "db",
        [("incidents", "3")],
        [Section("S", ["note <x>", Table("T", ["k", "v"], [["a<b", "1"]]), Figure("F", png)])],
    )
    html = to_html(r)
    assert "note &lt;x&gt;" in html and "<td>a&lt;b</td>" in html
    assert html.count("data:image/png;base64,") == 1
    pdf = to_pdf(r)
    assert pdf.startswith(b"%PDF-") and to_pdf(r) == pdf  # the same report, the same bytes
