"""The CLI contract a new user relies on (issue 15): a bad argument is one line and exit 2, a
service that is down is one line and exit 1, `jobs submit all` starts only what is missing,
`jobs list` keeps one row per job."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from flinkpulse.commands.jobs import one_line
from flinkpulse.config import Config
from flinkpulse.flinkrest import FlinkRest

JOB_LIST = "player_stats, device_stats, web_traffic, security_alerts, archive, all"


def flinkpulse(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flinkpulse", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["jobs", "submit", "nosuchjob"],
            f"flinkpulse: error: unknown job 'nosuchjob' (jobs: {JOB_LIST})",
        ),
        (
            ["jobs", "savepoint", "nosuchjob"],
            f"flinkpulse: error: unknown job 'nosuchjob' (jobs: {JOB_LIST})",
        ),
        (
            ["jobs", "cancel", "nosuchjob"],
            f"flinkpulse: error: unknown job 'nosuchjob' (jobs: {JOB_LIST})",
        ),
        (
            ["jobs", "resume", "nosuchjob"],
            f"flinkpulse: error: unknown job 'nosuchjob' (jobs: {JOB_LIST})",
        ),
        (
            ["jobs", "submit", "all", "--from-savepoint", "/x"],
            "flinkpulse: error: --from-savepoint needs one job, not all",
        ),
        (
            ["jobs", "submit", "player_stats", "--from", "1"],
            "flinkpulse: error: --from and --to go together",
        ),
        (
            ["jobs", "submit", "web_traffic", "--start-at", "5", "--from", "1", "--to", "9"],
            "flinkpulse: error: --start-at starts a streaming job afresh: not with --from/--to "
            "(a replay's own range) or --from-savepoint (the snapshot's offsets)",
        ),
        (
            ["jobs", "submit", "device_stats", "--start-at", "yesterday"],
            "flinkpulse jobs submit: error: argument --start-at: expected epoch milliseconds, an "
            "ISO 8601 time (UTC unless zoned, e.g. 2026-11-30T08:00) or now[-DURATION] (e.g. "
            "now-10m), got 'yesterday' (see `flinkpulse jobs submit --help`)",
        ),
        (
            ["backfill", "web_traffic", "--from", "now-1y", "--to", "now"],
            "flinkpulse backfill: error: argument --from: expected a duration such as 30m, 24h "
            "or 7d, got '1y' (see `flinkpulse backfill --help`)",
        ),
        (
            ["clickhouse", "migrate", "--database", "x;drop"],
            "flinkpulse: error: clickhouse.database 'x;drop' is not a plain identifier (letters, digits, _)",
        ),
        (
            ["produce", "nosuch"],
            "flinkpulse produce: error: argument domain: invalid choice: 'nosuch' "
            "(choose from 'gaming', 'iot', 'web', 'all') (see `flinkpulse produce --help`)",
        ),
        (["produce", "web", "--rate", "-5"], "flinkpulse: error: --rate must be >= 0"),
        (
            ["produce", "web", "--count", "abc"],
            "flinkpulse produce: error: argument --count: invalid int value: 'abc' "
            "(see `flinkpulse produce --help`)",
        ),
        (
            ["stack", "sideways"],
            "flinkpulse stack: error: argument ACTION: invalid choice: 'sideways' "
            "(choose from 'up', 'down', 'status', 'logs') (see `flinkpulse stack --help`)",
        ),
        (
            ["--set", "nosection", "sql"],
            "flinkpulse: error: --set 'nosection': expected section.key=value",
        ),
        (
            ["schemas", "check", "--against", "nope"],
            "flinkpulse: error: --against expects git:REF, e.g. --against git:HEAD~1",
        ),
        (
            ["alerts", "tail", "--rule", "nosuchrule"],
            "flinkpulse: error: unknown rule 'nosuchrule' (rules: brute_force_login, "
            "door_open_while_armed, energy_over_threshold, impossible_kill_rate, "
            "motion_while_away)",
        ),
        (
            ["alerts", "tail", "--since", "now-1h", "--from-beginning"],
            "flinkpulse: error: --since and --from-beginning both say where to start: give one",
        ),
        (
            ["dlq", "--idle-timeout", "5"],
            "flinkpulse: error: --idle-timeout ends a --follow: without it the read ends by itself",
        ),
        (
            ["dlq", "--kind", "late", "results.player-stats"],
            "flinkpulse: error: 'results.player-stats' has no late topic (topics: "
            "gaming.player-events, iot.security-events, iot.sensor-readings, web.access-logs)",
        ),
        (
            ["sql", "--jobmanager", "nope"],
            "flinkpulse: error: --jobmanager must be host:port, got 'nope'",
        ),
    ],
)
def test_bad_argument_is_one_line_and_exit_2(args: list[str], error: str, tmp_path: Path) -> None:
    out = flinkpulse(*args, cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (2, "", error + "\n")


def test_clickhouse_down_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """No stray clickhouse-connect warning before our message."""
    out = flinkpulse(
        "--set", "clickhouse.url=http://127.0.0.1:1", "clickhouse", "migrate", cwd=tmp_path
    )
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        "flinkpulse: error: ClickHouse is not reachable at http://127.0.0.1:1 — run `flinkpulse stack up`\n"
    )


@pytest.mark.parametrize("args", [["dlq", "--follow"], ["alerts", "tail"]])
def test_kafka_down_is_one_line_and_exit_1(args: list[str], tmp_path: Path) -> None:
    """The commands that read Kafka, against a port nothing listens on: our one line, not
    librdkafka's traceback (`dlq` printed one)."""
    out = flinkpulse("--set", "kafka.bootstrap_servers=127.0.0.1:1", *args, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert out.stderr.splitlines()[-1] == (
        "flinkpulse: error: Kafka is not reachable at 127.0.0.1:1 — run `flinkpulse stack up`"
    )
    assert "Traceback" not in out.stderr


def test_one_line_flattens_and_caps_job_names() -> None:
    assert (
        one_line("INSERT INTO sink\n  SELECT x\n  FROM src") == "INSERT INTO sink SELECT x FROM src"
    )
    assert one_line("x" * 150) == "x" * 99 + "…"


def test_submit_all_reports_running_jobs_and_list_keeps_one_row_each(
    ensure_stack: Callable[..., Config], tmp_path: Path
) -> None:
    """With every job already running, `jobs submit all` says so for each and exits 0 (its
    `--start-at now` changes nothing: it applies to jobs it starts)."""
    cfg = ensure_stack("kafka", "registry", "flink")
    prefix = f"t{uuid.uuid4().hex[:8]}."
    jobs = ["player_stats", "device_stats", "web_traffic", "security_alerts"]
    names = [f"flinkpulse-{prefix}{job}" for job in jobs] + [
        f"{prefix}adhoc\n  SELECT x\n  FROM idle"
    ]
    script = [
        "CREATE TEMPORARY TABLE idle (x INT) WITH ('connector' = 'datagen', 'rows-per-second' = '1');",
        "CREATE TEMPORARY TABLE sink (x INT) WITH ('connector' = 'blackhole');",
    ]
    for name in names:  # cheap stand-ins carrying the jobs' names
        script += [f"SET 'pipeline.name' = '{name}';", "INSERT INTO sink SELECT x FROM idle;"]
    (tmp_path / "standins.sql").write_text("\n".join(script) + "\n")
    rest = FlinkRest(cfg)
    try:
        out = flinkpulse(
            "--set", f"kafka.topic_prefix={prefix}", "sql", "-f", "standins.sql", cwd=tmp_path
        )
        assert out.returncode == 0, out.stdout[-3000:]
        ids = {
            j["name"]: j["jid"]
            for j in rest.jobs()
            if j["name"] in names and j["state"] == "RUNNING"
        }
        assert set(ids) == set(names)

        out = flinkpulse(
            "--set", f"kafka.topic_prefix={prefix}", "jobs", "submit", "all", "--start-at", "now",
            cwd=tmp_path,
        )  # fmt: skip
        assert (out.returncode, out.stderr) == (0, "")
        expected = [
            f"{job:<16} already running as {ids[f'flinkpulse-{prefix}{job}']}" for job in jobs
        ]
        assert out.stdout.splitlines() == expected

        out = flinkpulse("jobs", "list", "--all", cwd=tmp_path)
        assert out.returncode == 0
        adhoc = [line for line in out.stdout.splitlines() if f"{prefix}adhoc" in line]
        assert adhoc == [f"{ids[names[-1]]:<34} {'RUNNING':<12} {prefix}adhoc SELECT x FROM idle"]
        assert not [
            line for line in out.stdout.splitlines() if line.strip().startswith(("SELECT", "FROM"))
        ]
    finally:
        for j in rest.jobs():
            if j["name"] in names and j["state"] == "RUNNING":
                rest.cancel(j["jid"])
