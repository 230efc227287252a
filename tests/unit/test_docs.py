"""Every command the README and docs/ show is real and exercised by a test.

Which text is a shown command (the rule):

* In a fenced block tagged ```bash, ```sh or ```shell: every line, after joining lines that end
  in a backslash and dropping comments and blank lines. A leading ``$ `` prompt is removed.
* In a fenced block tagged ```console: only the lines that start with ``$ `` (the rest is output).
* Outside fenced blocks: a line starting with ``$ ``, and an inline code span that starts with
  ``flinkpulse `` or ``make `` and is not a synopsis (no ``[ ] | … ...`` and no ALL-CAPS
  placeholder such as ``COMMAND``). Other fenced blocks (untagged, toml, sql, ...) are not
  commands.

Leading ``VAR=value`` assignments are skipped, and a command ends at a redirection or pipe
(``> file``, ``|``). An inline span may name a command without its required arguments
(`flinkpulse jobs resume`); everything else in it must parse. What is then checked, by program:

* ``flinkpulse ARGS``: ARGS parse with the real parser (``flinkpulse.cli.build_parser``, nothing
  runs), unknown arguments included, so every documented subcommand and flag exists; and the
  subcommand path (``jobs submit``, ``produce``, ...) is run by some test under ``tests/``: a
  test module that invokes the CLI (``python -m flinkpulse``, ``cli.main``) holds the path's
  words as consecutive string literals of one list, tuple or call.
* ``make TARGET``: TARGET is a target of the Makefile; each ``$(FP) ARGS`` line of its recipe is
  checked as a ``flinkpulse`` command above; a target without one must be listed in
  ``MAKE_TARGETS_WITHOUT_CLI`` with the reason it is covered otherwise.
* Any other program must be listed in ``EXCLUDED_PROGRAMS`` with the reason it is not run
  here: they are Kafka, Flink, container or cluster tools, whose commands no local test can run
  without a cluster (the deploy manifests themselves are checked by ``test_deploy_*.py``).

Also: README.md is a front door of at most 10,000 characters that shows ``make demo`` and
``make test`` on its first screen.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import io
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from flinkpulse.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_CHARS = 10_000
FIRST_SCREEN_LINES = 24

SHELL_FENCES = {"bash", "sh", "shell"}
CONSOLE_FENCES = {"console"}

#: programs shown in the docs that no test runs, and why
EXCLUDED_PROGRAMS = {
    "kubectl": "Kubernetes: needs a cluster; manifests are validated by test_deploy_k8s.py",
    "helm": "Kubernetes: needs a cluster and the Superset chart",
    "docker": "container engine, not on the dev machines; compose is validated by "
    "test_deploy_compose.py",
    "cp": "copies the compose env template (deploy/docker/.env.example), part of Docker Compose",
    "flink": "Flink's own CLI (`flink run` against any cluster); `flinkpulse jobs submit` "
    "runs it and is tested",
    "sql-client.sh": "Flink's own SQL client on another cluster; `flinkpulse sql` runs it here",
    "java": "Kafka's own tools (TopicCommand) from the broker's jars, not flinkpulse",
    "curl": "a raw ClickHouse HTTP request; test_clickhouse_server.py speaks the same HTTP",
}

#: Makefile targets shown in the docs whose recipe runs no `flinkpulse` command, and why
MAKE_TARGETS_WITHOUT_CLI = {
    "test": "runs pytest over tests/: this module is one of its tests",
    "test-unit": "runs pytest over tests/unit/: this module is one of those tests",
    "setup": "venv + jars + Superset venv; prerequisite of `make demo` and `make test`, "
    "so every test runs in what it built",
    "setup-superset": "part of `make setup`; the Superset venv serves tests/e2e/test_superset.py",
    "reliability-report": "renders docs/RELIABILITY.md from the last test run's rows; "
    "tests/unit/test_reliability_report.py runs it",
    "lint": "ruff + mypy, a developer check rather than a product command",
    "clean": "removes state and venvs; destructive, never run by the suite",
}


@dataclass(frozen=True)
class Shown:
    """One shell command as shown in a document."""

    where: str  # file:line
    text: str
    inline: bool = False  # an inline code span: may name a command without its required args

    def argv(self) -> list[str]:
        """The program and its arguments: without VAR=value prefixes, up to a redirection."""
        words = shlex.split(self.text, comments=True)
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words.pop(0)
        for i, word in enumerate(words):
            if re.match(r"[0-9]?[<>|;&]", word):
                return words[:i]
        return words

    def program(self) -> str:
        words = self.argv()
        return Path(words[0]).name if words else ""


_SYNOPSIS = re.compile(r"[\[\]|…]|\.\.\.|\b[A-Z][A-Z_]{2,}\b")


def shown_commands(path: Path) -> list[Shown]:
    """The commands of one Markdown file, by the rule in the module docstring."""
    rel = path.relative_to(ROOT)
    found: list[Shown] = []
    fence: str | None = None
    pending, pending_line = "", 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r"\s*```\s*([\w-]*)", line)
        if m:
            fence = None if fence is not None else m.group(1).lower()
            continue
        text = line.strip()
        if fence in SHELL_FENCES or (fence in CONSOLE_FENCES and text.startswith("$ ")):
            if not pending:
                pending_line = n
            pending += text.removeprefix("$ ").removesuffix("\\") + " "
            if text.endswith("\\"):
                continue
            command, pending = pending.strip(), ""
            if command and not command.startswith("#"):
                found.append(Shown(f"{rel}:{pending_line}", command))
        elif fence is None:
            if text.startswith("$ "):
                found.append(Shown(f"{rel}:{n}", text[2:]))
            for span in re.findall(r"(?<![`\\])`([^`]+)`(?!`)", line):
                if span.startswith(("flinkpulse ", "make ")) and not _SYNOPSIS.search(span):
                    found.append(Shown(f"{rel}:{n}", span, inline=True))
    return found


ALL_SHOWN = [c for f in DOC_FILES for c in shown_commands(f)]


# --- flinkpulse: parse with the real parser ----------------------------------------------


def parse_error(args: list[str]) -> str | None:
    """None if `flinkpulse ARGS` parses as `flinkpulse.cli.main` would, else argparse's message."""
    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            ns, extra = parser.parse_known_args(args)
    except SystemExit as e:
        if e.code == 0:
            return None  # an option that answers and exits: `flinkpulse --version`
        return err.getvalue().strip() or "argparse exited"
    if extra and not getattr(ns, "accepts_extra", False):
        return f"unrecognized arguments: {' '.join(extra)}"
    return None


def command_path(args: list[str]) -> list[str]:
    """The subcommand words of ARGS, e.g. ['jobs', 'submit'] (options and their values skipped)."""
    parser: argparse.ArgumentParser = build_parser()
    path: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word.startswith("-"):
            action = parser._option_string_actions.get(word.split("=", 1)[0])
            takes_value = action is not None and action.nargs != 0 and "=" not in word
            i += 2 if takes_value else 1
            continue
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        path.append(word)
        parser = subs[0].choices[word]
        i += 1
    return path


# --- tests that run the CLI ----------------------------------------------------------------

_RUNS_CLI = re.compile(r"""["']-m["'],\s*["']flinkpulse(\.cli)?["']|\bcli\.main\(""")


def _literal_runs(tree: ast.AST) -> list[list[str]]:
    """Runs of consecutive string literals in every list, tuple and call of a module."""
    runs: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple):
            items = node.elts
        elif isinstance(node, ast.Call):
            items = node.args
        else:
            continue
        run: list[str] = []
        for item in items:
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                run.append(item.value)
            else:
                if run:
                    runs.append(run)
                run = []
        if run:
            runs.append(run)
    return runs


@cache
def cli_test_runs() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(test file, literal run) for every test module under tests/ that invokes the CLI."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == Path(__file__).name:
            continue
        source = path.read_text()
        if not _RUNS_CLI.search(source):
            continue
        rel = str(path.relative_to(ROOT))
        out.extend((rel, tuple(run)) for run in _literal_runs(ast.parse(source)))
    return tuple(out)


def cli_tests_running(path: list[str]) -> list[str]:
    """Test files that hold PATH as consecutive literals (they run that subcommand)."""
    n = len(path)
    return sorted(
        {
            rel
            for rel, run in cli_test_runs()
            if any(list(run[i : i + n]) == path for i in range(len(run) - n + 1))
        }
    )


#: top-level options that answer without a subcommand: a test runs the CLI with them
ANSWERING_OPTIONS = ("--version",)

#: subcommands whose tests call the function the CLI handler calls, rather than the CLI:
#: "path" -> (module, function). Checked: the handler calls it and a test module calls it.
RUN_THROUGH_PYTHON = {
    "alerts notify": ("flinkpulse.alerts", "notify"),  # tests/integration/test_alerts.py
    "dashboards import": ("flinkpulse.commands.dashboards", "import_bundle"),  # tests/e2e
    "dashboards export": ("flinkpulse.commands.dashboards", "export_bundle"),  # tests/e2e
}

#: documented subcommands no test runs yet (strict xfail: adding the test turns this red
#: until the entry is removed)
KNOWN_UNTESTED: dict[str, str] = {}


def _handler_source(path: list[str]) -> str:
    ns, _ = build_parser().parse_known_args([*path, *["x"] * 3])
    return inspect.getsource(ns.func)


def python_tests_running(path: list[str]) -> list[str]:
    """Test files that call the function the subcommand's handler calls (RUN_THROUGH_PYTHON)."""
    entry = RUN_THROUGH_PYTHON.get(" ".join(path))
    if entry is None:
        return []
    module, func = entry
    assert re.search(rf"\b{func}\(", _handler_source(path)), (
        f"RUN_THROUGH_PYTHON: the handler of `flinkpulse {' '.join(path)}` no longer calls {func}"
    )
    parent, _, last = module.rpartition(".")
    imports = re.compile(
        rf"\bimport {re.escape(module)}\b|from {re.escape(module)} import "
        rf"|from {re.escape(parent)} import {last}\b"
    )
    found = []
    for test in sorted((ROOT / "tests").rglob("test_*.py")):
        source = test.read_text()
        if imports.search(source) and re.search(rf"\b{func}\(", source):
            found.append(str(test.relative_to(ROOT)))
    return found


def check_exercised(path: list[str], what: str) -> None:
    """Fail unless a test runs `flinkpulse PATH` (xfail for KNOWN_UNTESTED)."""
    key = " ".join(path)
    tests = cli_tests_running(path) + python_tests_running(path)
    if key in KNOWN_UNTESTED:
        assert not tests, f"`flinkpulse {key}` is now run by {tests}: drop it from KNOWN_UNTESTED"
        pytest.xfail(f"{what}: `flinkpulse {key}` is run by no test: {KNOWN_UNTESTED[key]}")
    assert tests, f"{what}: no test under tests/ runs `flinkpulse {key}`"


# --- make -----------------------------------------------------------------------------------


@cache
def make_recipes() -> dict[str, list[str]]:
    """Makefile target -> its recipe lines."""
    recipes: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)\s*:(?!=)", line)
        if m and not line.startswith("\t"):
            current = recipes.setdefault(m.group(1), [])
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif line.strip() and not line.startswith("#"):
            current = None
    return recipes


def make_cli_args(target: str) -> list[list[str]]:
    """The `flinkpulse` argument lists a target's recipe runs (`$(FP) ARGS`)."""
    return [
        shlex.split(line.split("$(FP)", 1)[1])
        for line in make_recipes().get(target, [])
        if "$(FP)" in line
    ]


# --- the checks ----------------------------------------------------------------------------


def _id(c: Shown) -> str:
    return f"{c.where} {c.text}"[:90]


def test_docs_show_commands():
    """The extraction finds the commands (guards against a rule that silently finds nothing)."""
    programs = {c.program() for c in ALL_SHOWN}
    assert {"flinkpulse", "make"} <= programs, programs
    assert len([c for c in ALL_SHOWN if c.program() == "flinkpulse"]) >= 20


@pytest.mark.parametrize("shown", ALL_SHOWN, ids=_id)
def test_shown_command_is_checked_or_excluded(shown: Shown):
    program = shown.program()
    assert program in {"flinkpulse", "make"} | EXCLUDED_PROGRAMS.keys(), (
        f"{shown.where}: `{shown.text}` runs `{program}`: check it here, or list it in "
        "EXCLUDED_PROGRAMS with the reason no test runs it"
    )


FLINKPULSE_SHOWN = [c for c in ALL_SHOWN if c.program() == "flinkpulse"]
MAKE_SHOWN = [c for c in ALL_SHOWN if c.program() == "make"]


@pytest.mark.parametrize("shown", FLINKPULSE_SHOWN, ids=_id)
def test_flinkpulse_command_parses(shown: Shown):
    error = parse_error(shown.argv()[1:])
    if shown.inline and error and "the following arguments are required" in error:
        error = None  # a command named in prose, its required arguments left out
    assert error is None, f"{shown.where}: `{shown.text}` does not parse: {error}"


@pytest.mark.parametrize("shown", FLINKPULSE_SHOWN, ids=_id)
def test_flinkpulse_command_is_run_by_a_test(shown: Shown):
    args = shown.argv()[1:]
    path = command_path(args) or [a for a in args if a in ANSWERING_OPTIONS]
    assert path, f"{shown.where}: `{shown.text}` names no subcommand"
    check_exercised(path, shown.where)


@pytest.mark.parametrize("shown", MAKE_SHOWN, ids=_id)
def test_make_target_exists_and_is_covered(shown: Shown):
    targets = [w for w in shown.argv()[1:] if not w.startswith("-") and "=" not in w]
    assert targets, f"{shown.where}: `{shown.text}` names no target"
    for target in targets:
        assert target in make_recipes(), f"{shown.where}: the Makefile has no target {target!r}"
        cli = make_cli_args(target)
        assert cli or target in MAKE_TARGETS_WITHOUT_CLI, (
            f"{shown.where}: `make {target}` runs no `flinkpulse` command: say in "
            "MAKE_TARGETS_WITHOUT_CLI how it is covered"
        )
        for args in cli:
            assert parse_error(args) is None, f"make {target}: `flinkpulse {args}` does not parse"
            check_exercised(command_path(args), f"{shown.where}: make {target}")


def test_readme_is_a_short_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text) <= README_MAX_CHARS, f"README.md has {len(text)} characters"
    first_screen = "\n".join(text.splitlines()[:FIRST_SCREEN_LINES])
    assert "make demo" in first_screen
    assert "make test" in first_screen


def test_readme_links_every_docs_page():
    text = (ROOT / "README.md").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    missing = [p for p in pages if f"(docs/{p})" not in text]
    assert not missing, f"README.md does not link {missing}"


def test_relative_links_resolve():
    broken = []
    for path in DOC_FILES:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (path.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, broken
