"""Start-up: cold `flinkpulse stack up` of a private stack (own state dir and ports) to healthy.

Like tests/integration/test_stack_lifecycle.py, the stack runs beside the shared one and is
taken down (only its own components, by its own state dir) afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from flinkpulse.config import Config
from flinkpulse.paths import ROOT

PORT_KEYS = ("kafka_port", "kafka_controller_port", "registry_port", "clickhouse_port",
             "clickhouse_tcp_port", "flink_rest_port", "flink_rpc_port", "superset_port")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cfg: Config, components: list[str]) -> dict[str, Any]:
    from dataclasses import fields

    known = {f.name for f in fields(cfg.stack)}
    with tempfile.TemporaryDirectory(prefix="fp-bench-stack-") as state:
        env = dict(os.environ)
        env.update(
            {
                "FLINKPULSE_STACK__STATE_DIR": state,
                "FLINKPULSE_STACK__JARS_DIR": str(cfg.stack.jars_path()),
                "FLINKPULSE_STACK__COMPONENTS": ",".join(components),
            }
        )
        for k in PORT_KEYS:
            if k in known:
                env[f"FLINKPULSE_STACK__{k.upper()}"] = str(_free_port())
        for k in ("KAFKA_BOOTSTRAP_SERVERS", "FLINK_JOBMANAGER", "REGISTRY_URL", "CLICKHOUSE_URL"):
            env.pop(f"FLINKPULSE_{k}", None)
            env.pop(k, None)
        cmd = [sys.executable, "-m", "flinkpulse"]
        t = time.perf_counter()
        up = subprocess.run([*cmd, "stack", "up"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=600)  # fmt: skip
        up_s = time.perf_counter() - t
        per = {}
        for line in up.stdout.splitlines():
            parts = line.split()
            if parts and parts[0] in components and line.rstrip().endswith("s)"):
                per[parts[0]] = float(line.rstrip().rsplit("(", 1)[1].rstrip("s)"))
        down = subprocess.run([*cmd, "stack", "down"], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
    out: dict[str, Any] = {
        "components": components,
        "cold_up_s": round(up_s, 1),
        "per_component_s": per,
        "ok": up.returncode == 0,
        "down_ok": down.returncode == 0,
    }
    if up.returncode != 0:
        out["error"] = (up.stderr or up.stdout).strip().splitlines()[-1:]
    return out
