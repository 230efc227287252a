"""Where things live: the repository root, the venv and the jar directories."""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: The repository (or installed source tree) root: the parent of this package.
ROOT = Path(__file__).resolve().parent.parent


def venv_python() -> Path:
    """The Python interpreter flinkpulse runs under; Flink's Python workers use the same one."""
    return Path(sys.executable)


def venv_bin() -> Path:
    return Path(sys.executable).parent


def cli_command(cwd: Path | None = None) -> str:
    """How to run this flinkpulse from `cwd` (default: here), for the hints it prints:
    `flinkpulse` when that is the one on PATH, else its path (`.venv/bin/flinkpulse` after
    `make setup`, which does not put the venv on PATH)."""
    import os
    import shutil

    exe = venv_bin() / "flinkpulse"
    found = shutil.which("flinkpulse")
    if found and Path(found).resolve() == exe.resolve():
        return "flinkpulse"
    rel = os.path.relpath(exe, cwd or Path.cwd())
    return rel if not rel.startswith("..") else str(exe)


def site_packages() -> Path:
    """site-packages of the running interpreter (pemja must be importable from it in thread mode)."""
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


def pyflink_home() -> Path:
    """The Flink distribution shipped inside the apache-flink wheel (bin/, lib/, opt/)."""
    import importlib.util

    spec = importlib.util.find_spec("pyflink")
    if spec is None or spec.origin is None:
        from flinkpulse.errors import FlinkpulseError

        raise FlinkpulseError("apache-flink is not installed in this Python — run `make setup`")
    return Path(spec.origin).parent


def java_home() -> str | None:
    return os.environ.get("JAVA_HOME")
