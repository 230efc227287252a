"""What fills a TaskManager's heap: a class histogram of its live objects (`jcmd`).

The pipeline's sustained rate ends where the TaskManager's heap fills and its collector takes
the cores (bench/README.md). The heap-used metric says *that* it fills; the live objects by
class say *with what*: deduplication state (one state-map entry, key row and TTL value per
event id), window slices, or buffers. `jcmd <pid> GC.class_histogram` forces a full collection
first, so it counts live objects only and pauses the TaskManager for about a second: a
diagnostic, taken at a step's end (`bench/pipeline.py --heap`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

#: one row of the histogram: "   1:   1234   56789  [B (java.base@17.0.15)"
_ROW = re.compile(r"^\s*\d+:\s+(\d+)\s+(\d+)\s+(\S+)")


def parse(text: str) -> list[tuple[str, int, int]]:
    """(class, instances, bytes) per row of a `GC.class_histogram`, largest first."""
    rows = []
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            rows.append((m.group(3), int(m.group(1)), int(m.group(2))))
    return sorted(rows, key=lambda r: -r[2])


def summary(rows: list[tuple[str, int, int]], top: int = 12) -> dict[str, Any]:
    """The live heap in MB and its `top` classes by size (instances, MB, bytes each)."""
    return {
        "live_mb": round(sum(b for _, _, b in rows) / 1e6, 1),
        "top": [
            {"class": c, "instances": n, "mb": round(b / 1e6, 1), "bytes_each": round(b / n)}
            for c, n, b in rows[:top]
            if n
        ],
    }


def histogram(pid: int, top: int = 12, timeout_s: float = 120) -> dict[str, Any]:
    """The live heap of JVM `pid` (`summary`); {"error": ...} when `jcmd` is missing or fails,
    so a bench step still records the rest."""
    jcmd = shutil.which("jcmd")
    if jcmd is None:
        return {"error": "jcmd is not on PATH (it comes with the JDK)"}
    try:
        out = subprocess.run(
            [jcmd, str(pid), "GC.class_histogram"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError) as e:
        return {"error": f"jcmd {pid} GC.class_histogram: {e}"}
    return summary(parse(out), top)
