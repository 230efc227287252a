"""Machine facts recorded with every result: cores, memory, load, versions."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _java() -> str | None:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = (out.stderr or out.stdout).splitlines()
    return line[0].strip() if line else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def facts() -> dict[str, Any]:
    """What the numbers depend on: hardware, load when the run started, software versions."""
    return {
        "hostname": socket.gethostname(),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "arch": platform.machine(),
        "memory_gb": _mem_gb(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": _java(),
        "versions": {
            d: _version(d)
            for d in (
                "flinkpulse",
                "apache-flink",
                "confluent-kafka",
                "fastavro",
                "chdb",
                "clickhouse-connect",
                "pyarrow",
            )
        },
    }
