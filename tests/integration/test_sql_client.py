"""`flinkpulse sql` as a new user meets it (issue 15), and docs/sql-client.md run as written.

Every console command and SQL example of the page is run here, so the page cannot drift
from the client: a command or example the tests do not know fails
`test_page_shows_only_what_is_tested`.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from flinkpulse.commands.sql import render_catalog
from flinkpulse.config import Config
from flinkpulse.flinkrun import flink_env
from flinkpulse.paths import ROOT, pyflink_home
from flinkpulse.stack.java import flink_connector_jars

DOC = ROOT / "docs" / "sql-client.md"
#: web access-log events in the module's topic: seeded, none late or out of order
EVENTS = 600
#: the examples' HOP windows (60 s size, 10 s slide) hold each event 6 times
HOPS_PER_EVENT = 6

#: the console commands of the page, each run by the test named beside it
INTERACTIVE = "flinkpulse sql"  # test_ctrl_c_cancels_only_the_running_query
SCRIPT = "flinkpulse sql -f query.sql"  # test_sql_example["query.sql"]
UNREACHABLE = "flinkpulse sql --jobmanager 127.0.0.1:1 -f query.sql"
PRINT_CATALOG = "flinkpulse sql --print-catalog > catalog.local.sql"
NATIVE_CLIENT = (
    "sql-client.sh -i catalog.local.sql -j flink-sql-connector-kafka-5.0.0-2.2.jar "
    "-j flink-sql-avro-confluent-registry-2.2.0.jar"
)
#: SQL examples of the page -> total of their `requests` column (None: the example fails)
EXAMPLES: dict[str, int | None] = {
    "query.sql": None,
    "status.sql": EVENTS,
    "windows.sql": EVENTS * HOPS_PER_EVENT,
    "windows_view.sql": EVENTS * HOPS_PER_EVENT,
}

_SQL_BLOCK = re.compile(r"```sql\n-- (flinkpulse sql [^\n]*-f (\S+\.sql))\n(.*?)```", re.S)
_CONSOLE_COMMAND = re.compile(r"^\$ (.+)$", re.M)


def sql_examples() -> dict[str, tuple[str, str]]:
    """file name -> (command, SQL) of each ```sql block of the page."""
    return {m.group(2): (m.group(1), m.group(3)) for m in _SQL_BLOCK.finditer(DOC.read_text())}


def run_doc_command(
    command: str,
    prefix: str,
    cwd: Path,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command of the page as written: `flinkpulse` is this checkout on the test's topics,
    `sql-client.sh` the wheel's, `> FILE` a redirect into cwd."""
    command, _, redirect = command.partition(" > ")
    argv = shlex.split(command)
    if argv[0] == "flinkpulse":
        argv = [
            sys.executable,
            "-m",
            "flinkpulse",
            "--set",
            f"kafka.topic_prefix={prefix}",
            *argv[1:],
        ]
    elif argv[0] == "sql-client.sh":
        argv[0] = str(pyflink_home() / "bin" / "sql-client.sh")
    out = subprocess.run(
        argv, cwd=cwd, input=stdin, env=env, capture_output=True, text=True, timeout=900
    )
    if redirect:
        (cwd / redirect).write_text(out.stdout)
    return out


def result_rows(out: str) -> list[dict[str, str]]:
    """The rows of the one result table the client printed (tableau mode)."""
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert lines, f"no result table in:\n{out[-3000:]}"

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(lines[0])
    return [dict(zip(header, cells(line), strict=True)) for line in lines[1:]]


@pytest.fixture(scope="module")
def topics(ensure_stack: Callable[..., Config]) -> str:
    """A topic prefix whose web.access-logs holds EVENTS seeded events."""
    ensure_stack("kafka", "registry", "flink")
    prefix = f"t{uuid.uuid4().hex[:8]}."
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "--set", f"kafka.topic_prefix={prefix}"]
        + ["produce", "web", "--count", str(EVENTS), "--seed", "15", "--rate", "0"]
        + ["--no-anomalies", "--late-fraction", "0", "--out-of-order-fraction", "0", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return prefix


def test_page_shows_only_what_is_tested() -> None:
    doc = DOC.read_text()
    commands = set(_CONSOLE_COMMAND.findall(doc))
    assert commands == {INTERACTIVE, SCRIPT, UNREACHABLE, PRINT_CATALOG, NATIVE_CLIENT}
    assert set(sql_examples()) == set(EXAMPLES)
    assert sql_examples()["query.sql"][0] == SCRIPT


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_sql_example(name: str, topics: str, tmp_path: Path) -> None:
    """Each example runs as the page shows it, with plain output and the promised numbers."""
    command, sql = sql_examples()[name]
    (tmp_path / name).write_text(sql)
    out = run_doc_command(command, topics, tmp_path)
    assert "\x1b" not in out.stdout  # no colour codes when stdout is not a terminal
    assert out.stderr == ""  # no jline warning
    for line in out.stdout.splitlines():  # tables and messages start their own lines
        assert "+--" not in line or line.startswith("+"), line
        assert "[ERROR]" not in line or line.startswith("[ERROR]"), line
    total = EXAMPLES[name]
    if total is None:  # the failing script: exit 1, error shown, later statements skipped
        assert out.returncode == 1, out.stdout[-3000:]
        assert "Column 'nope' not found in any table" in out.stdout
        assert "never runs" not in out.stdout
        return
    assert out.returncode == 0, out.stdout[-3000:]
    rows = result_rows(out.stdout)
    assert sum(int(r["requests"]) for r in rows) == total
    if "--bounded" in command:  # batch mode: final rows only, one per group
        assert "op" not in rows[0]
        keys = [
            tuple(v for k, v in r.items() if k not in ("requests", "avg_latency_ms")) for r in rows
        ]
        assert len(keys) == len(set(keys))
    else:  # a bounded view in streaming mode: each window fires once
        assert {r["op"] for r in rows} == {"+I"}


def test_unreachable_jobmanager_fails_fast_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "query.sql").write_text("SELECT 1;\n")
    start = time.monotonic()
    out = run_doc_command(UNREACHABLE, "", tmp_path)
    assert time.monotonic() - start < 30  # the client alone retried for 68 s
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr == (
        "flinkpulse: error: Flink is not reachable at 127.0.0.1:1 — run `flinkpulse stack up`\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobmanager", "nope"], "--jobmanager must be host:port, got 'nope'"),
        (["--jobmanager", "h:99999"], "--jobmanager must be host:port, got 'h:99999'"),
        (["-f", "no-such.sql"], "no such SQL file: no-such.sql"),
    ],
)
def test_bad_argument_exits_2_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "sql", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (out.returncode, out.stdout, out.stderr) == (2, "", f"flinkpulse: error: {message}\n")


def test_bounded_catalog_bounds_every_table(base_cfg: Config) -> None:
    catalog = render_catalog(base_cfg, bounded=True)
    tables = catalog.count("CREATE TABLE")
    assert tables == 4
    assert catalog.count("'scan.bounded.mode' = 'latest-offset'") == tables
    assert "scan.bounded.mode" not in render_catalog(base_cfg)


def test_piped_session_is_plain_and_exits_1_on_an_error(topics: str, tmp_path: Path) -> None:
    """Statements on stdin (no terminal): plain output, the session goes on, exit 1 at the end."""
    session = "SELECT nope FROM access_logs;\nSELECT 'after the error' AS s;\nQUIT;\n"
    out = run_doc_command(INTERACTIVE, topics, tmp_path, stdin=session)
    assert out.returncode == 1
    assert out.stderr == ""
    assert "\x1b" not in out.stdout
    assert "Column 'nope' not found in any table" in out.stdout
    assert result_rows(out.stdout) == [{"op": "+I", "s": "after the error"}]


def test_printed_catalog_serves_flinks_own_client(
    topics: str, base_cfg: Config, tmp_path: Path
) -> None:
    out = run_doc_command(PRINT_CATALOG, topics, tmp_path)
    assert out.returncode == 0
    assert (tmp_path / "catalog.local.sql").read_text().count(f"'topic' = '{topics}") == 4
    for jar in flink_connector_jars(base_cfg):
        (tmp_path / jar.name).symlink_to(jar)
    session = (
        "SET 'sql-client.execution.result-mode' = 'tableau';\n"
        "SET 'execution.runtime-mode' = 'batch';\n"
        "SELECT COUNT(*) AS n FROM access_logs "
        "/*+ OPTIONS('scan.bounded.mode'='latest-offset') */;\nQUIT;\n"
    )
    out = run_doc_command(NATIVE_CLIENT, topics, tmp_path, stdin=session, env=flink_env(base_cfg))
    assert out.returncode == 0, out.stdout[-3000:]
    assert result_rows(out.stdout) == [{"n": str(EVENTS)}]


class Tmux:
    """One detached tmux session on a private server: a real terminal for the client."""

    def __init__(self, command: str, cwd: Path) -> None:
        self.tmux = shutil.which("tmux")
        assert self.tmux, "tmux is missing (.ci/run installs it)"
        self.socket = f"flinkpulse-test-{uuid.uuid4().hex[:8]}"
        self._run(
            "new-session", "-d", "-s", "sql", "-x", "200", "-y", "50", "-c", str(cwd), command
        )

    def _run(self, *args: str) -> str:
        argv = [self.tmux or "tmux", "-L", self.socket, *args]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    def type_line(self, text: str) -> None:
        """Type a statement and Enter (';' goes as a key code: tmux reads a trailing ';' as
        its own command separator)."""
        self._run("send-keys", "-t", "sql", "-l", text.rstrip(";"))
        self._run("send-keys", "-t", "sql", "-H", "3b")
        self._run("send-keys", "-t", "sql", "Enter")

    def ctrl_c(self) -> None:
        self._run("send-keys", "-t", "sql", "C-c")

    def wait_for(self, pattern: str, timeout: float) -> str:
        """The screen (with scrollback) once `pattern` appears on it."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self._run("capture-pane", "-p", "-t", "sql", "-S", "-500")
            if re.search(pattern, screen, re.M):
                return screen
            time.sleep(1)
        raise AssertionError(f"{pattern!r} did not appear within {timeout} s:\n{screen[-3000:]}")

    def kill(self) -> None:
        subprocess.run([self.tmux or "tmux", "-L", self.socket, "kill-server"], capture_output=True)


def test_ctrl_c_cancels_only_the_running_query(topics: str, tmp_path: Path) -> None:
    """Ctrl-C in a real terminal ends the query; the prompt stays and takes the next one."""
    rc_file = tmp_path / "rc"
    argv = [sys.executable, "-m", "flinkpulse", "--set", f"kafka.topic_prefix={topics}"]
    argv += shlex.split(INTERACTIVE)[1:]
    term = Tmux(f"{shlex.join(argv)}; echo $? > {shlex.quote(str(rc_file))}; sleep 900", tmp_path)
    try:
        term.wait_for(r"^Flink SQL>", 180)
        term.type_line("SELECT status, COUNT(*) AS requests FROM access_logs GROUP BY status;")
        term.wait_for(r"^\| [+-][IU] \|\s+200 \|", 300)  # a streaming query, running
        term.ctrl_c()
        screen = term.wait_for(r"Query terminated", 60)
        term.type_line("SELECT 'still here' AS s;")
        screen = term.wait_for(r"^\| \+I \|\s+still here \|$", 180)
        assert "interrupted" not in screen
        term.type_line("QUIT;")
        deadline = time.monotonic() + 60
        while not rc_file.exists() and time.monotonic() < deadline:
            time.sleep(1)
        assert rc_file.read_text() == "0\n"
    finally:
        term.kill()
