"""Where things live: the repository root, the venv and the jar directories."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

from flinkpulse.errors import FlinkpulseError

#: The repository (or installed source tree) root: the parent of this package.
ROOT = Path(__file__).resolve().parent.parent


#: the longest path an AF_UNIX socket binds to on Linux (sun_path: 108 bytes with its NUL)
SOCKET_PATH_MAX = 107


def socket_path(path: Path) -> Path:
    """Where to bind the socket meant for `path`: `path` itself, or a short stand-in under
    $TMPDIR/flinkpulse-<uid>/ when it is longer than an AF_UNIX socket may be. A state
    directory deep in a home or CI workspace would otherwise fail to bind ("AF_UNIX path too
    long") and its fork server or warm submitter would be missing."""
    raw = os.fsencode(path)
    if len(raw) <= SOCKET_PATH_MAX:
        return path
    home = Path(tempfile.gettempdir()) / f"flinkpulse-{os.getuid()}"
    home.mkdir(mode=0o700, exist_ok=True)
    st = home.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise FlinkpulseError(
            f"{home} is not this user's private directory: the sockets of a state directory "
            f"whose paths are too long ({path}) go there; remove it or set TMPDIR"
        )
    return home / f"{path.stem}-{hashlib.sha256(raw).hexdigest()[:16]}.sock"


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
        raise FlinkpulseError("apache-flink is not installed in this Python — run `make setup`")
    return Path(spec.origin).parent


def java_home() -> str | None:
    return os.environ.get("JAVA_HOME")
