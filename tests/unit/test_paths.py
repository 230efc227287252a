"""How flinkpulse names itself in the hints it prints (the demo's "Where to look")."""

from __future__ import annotations

import os

import pytest

from flinkpulse.paths import ROOT, cli_command, venv_bin

pytestmark = pytest.mark.unit


def test_the_cli_is_named_as_it_can_be_run_from_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # `make setup` does not put the venv on PATH
    assert cli_command(ROOT) == os.path.relpath(venv_bin() / "flinkpulse", ROOT)
    assert cli_command(ROOT.parent.parent / "elsewhere") == str(venv_bin() / "flinkpulse")
    monkeypatch.setenv("PATH", f"{venv_bin()}:/usr/bin:/bin")  # an activated venv
    assert cli_command(ROOT) == "flinkpulse"
