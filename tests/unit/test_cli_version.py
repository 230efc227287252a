"""`flinkpulse --version`: one line, exit 0, and it needs no config file or service."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import version

from flinkpulse import __version__
from flinkpulse.paths import ROOT


def test_version_names_flinkpulse_python_and_the_libraries_it_drives(tmp_path: object) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no flinkpulse.toml here: the version needs none
        timeout=60,
    )
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout == (
        f"flinkpulse {__version__} (Python {platform.python_version()}; "
        f"apache-flink {version('apache-flink')}, confluent-kafka {version('confluent-kafka')}, "
        f"chdb {version('chdb')}, clickhouse-connect {version('clickhouse-connect')}, "
        f"fastavro {version('fastavro')})\n"
    )
    assert version("flinkpulse") == __version__ and (ROOT / "pyproject.toml").exists()
