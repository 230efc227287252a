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
