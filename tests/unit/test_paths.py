"""How flinkpulse names itself in the hints it prints (the demo's "Where to look"), and where
its sockets bind."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from flinkpulse.errors import FlinkpulseError
from flinkpulse.paths import ROOT, SOCKET_PATH_MAX, cli_command, socket_path, venv_bin

pytestmark = pytest.mark.unit


def test_the_cli_is_named_as_it_can_be_run_from_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # `make setup` does not put the venv on PATH
    assert cli_command(ROOT) == os.path.relpath(venv_bin() / "flinkpulse", ROOT)
    assert cli_command(ROOT.parent.parent / "elsewhere") == str(venv_bin() / "flinkpulse")
    monkeypatch.setenv("PATH", f"{venv_bin()}:/usr/bin:/bin")  # an activated venv
    assert cli_command(ROOT) == "flinkpulse"


def test_a_socket_path_too_long_for_af_unix_gets_a_short_private_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state directory deep in a workspace: its sockets bind under $TMPDIR/flinkpulse-<uid>/
    instead of failing with "AF_UNIX path too long"; one path always maps to one stand-in."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    short = tmp_path / "run" / "s.sock"
    assert socket_path(short) == short
    deep = tmp_path.joinpath(*["a-long-workspace-directory"] * 5, ".flinkpulse", "run", "x.sock")
    assert len(str(deep)) > SOCKET_PATH_MAX
    stand_in = socket_path(deep)
    assert stand_in == socket_path(deep) != socket_path(deep.with_name("y.sock"))
    assert stand_in.parent == tmp_path / "tmp" / f"flinkpulse-{os.getuid()}"
    assert stat.S_IMODE(stand_in.parent.stat().st_mode) == 0o700
    assert stand_in.name.startswith("x-") and len(str(stand_in)) <= SOCKET_PATH_MAX
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(stand_in))  # binds, where `deep` would not
    with pytest.raises(OSError, match="too long"), socket.socket(socket.AF_UNIX) as s:
        s.bind(str(deep))
    # someone else's (or a shared) directory there is refused, not used
    stand_in.parent.chmod(0o755)
    with pytest.raises(FlinkpulseError, match="not this user's private directory"):
        socket_path(deep)
