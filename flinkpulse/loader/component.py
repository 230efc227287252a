"""Stack component `loader`: `flinkpulse load` as a supervised process of the local stack.

Health is the process being alive and its status file fresh (the loader rewrites it every
``loader.stats_interval_s`` and whenever its state changes); `stack status` shows its rows/s
and lag from that file.

A second process, ``loader-quality`` (:mod:`flinkpulse.loader.quality`), samples the data
quality of every source topic, and each job's throughput and lag (the Flink jobs' and the
loader's own, :mod:`flinkpulse.loader.jobmetrics`), into ClickHouse every
``loader.quality_interval_s`` (none at 0).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from flinkpulse.stack.base import Component, Proc


class LoaderComponent(Component):
    name = "loader"
    needs = ("kafka", "registry", "clickhouse")
    reads_config = True
    settings = ("kafka", "registry", "clickhouse", "loader")
    start_timeout = 90.0

    @property
    def status_file(self) -> Path:
        return self.dir / "status.json"

    def address(self) -> str:
        return f"{self.cfg.clickhouse.url} ({self.cfg.clickhouse.database})"

    def procs(self) -> list[Proc]:
        argv = [
            sys.executable, "-m", "flinkpulse.cli", "load",
            "--status-file", str(self.status_file),
        ]  # fmt: skip
        procs = [Proc("loader", argv)]
        interval = self.cfg.loader.quality_interval_s
        if interval > 0:
            procs.append(
                Proc(
                    "loader-quality",
                    [
                        sys.executable,
                        "-m",
                        "flinkpulse.loader.quality",
                        "--interval",
                        str(interval),
                        "--loader-status",
                        str(self.status_file),
                    ],
                )
            )
        return procs

    def prepare(self) -> None:
        self.status_file.unlink(missing_ok=True)

    def status(self) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = json.loads(self.status_file.read_text())
            return doc
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        doc = self.status()
        # the loader itself: loader-quality alone (alive after the loader stopped) is not one
        if "loader" not in self.pids() or doc is None:
            return False
        stale = time.time() - float(doc.get("updated", 0))
        return stale < max(60.0, 3 * self.cfg.loader.stats_interval_s)

    def ready(self) -> bool:
        doc = self.status()
        return self.healthy() and doc is not None and doc.get("state") == "running"

    def failure(self) -> str:
        doc = self.status()
        state = str((doc or {}).get("state", ""))
        return state if state.startswith("failed: ") and "loader" not in self.pids() else ""

    def extra_status(self) -> str:
        doc = self.status()
        if doc is None:
            return ""
        lag = doc.get("lag") or {}
        worst = max(lag.items(), key=lambda kv: kv[1]) if lag else None
        text = (
            f"{doc.get('state')}: {doc.get('rows_per_s', 0):.0f} rows/s, "
            f"{doc.get('rows', 0)} rows, lag {doc.get('lag_total', 0)}"
        )
        if worst and worst[1]:
            text += f" (max {worst[0]}={worst[1]})"
        if doc.get("dead_letters"):
            text += f", {doc['dead_letters']} dead letters"
        return text
