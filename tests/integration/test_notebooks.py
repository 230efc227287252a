"""The notebooks run headless (nbclient, a real kernel) against the real stack on known input,
their own assertion cells checking the results; `flinkpulse notebook` serves them behind a
generated token that no committed file holds, and refuses a non-loopback address without one."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from flinkpulse.config import Config
from flinkpulse.paths import ROOT
from flinkpulse.stack.jupyter import Jupyter
from producers.kafka import AvroKafkaProducer
from tests.report_data import known_database

pytestmark = pytest.mark.integration

NOTEBOOKS = ROOT / "notebooks"


def execute(name: str, params: dict[str, Any], cwd: Path, timeout: int = 300) -> Any:
    """Run notebooks/NAME with `params` set in a cell after its "parameters" cell (papermill's
    convention); a failing cell (assertion) raises with its traceback."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    values = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("# injected by the test\n" + values))
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb


def outputs(nb: Any) -> str:
    return "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )


def test_notebooks_are_committed_without_outputs() -> None:
    """Committed notebooks hold no outputs (no data, no token, no machine paths)."""
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == [
        "01_flink_sql_live.ipynb",
        "02_clickhouse_exploration.ipynb",
        "03_schema_evolution.ipynb",
    ]
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), name


def test_flink_sql_notebook_streams_windows_from_the_cluster(
    ensure_stack: Any, cfg: Config, prefix: str, tmp_path: Path
) -> None:
    ensure_stack("kafka", "registry", "flink")
    topic = "gaming.player-events"
    producer = AvroKafkaProducer(cfg, [topic])
    t0 = int(datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp() * 1000)
    script = [(1, "ana", "KILL"), (2, "ana", "KILL"), (2, "bo", "DEATH"), (3, "bo", "DEATH"),
              (12, "ana", "DEATH"), (13, "bo", "KILL"), (25, "cy", "ASSIST")]  # fmt: skip
    for i, (s, player, kind) in enumerate(script):
        ev = dict(event_id=f"e{i}", match_id="m1", player_id=player, team="red",
                  event_type=kind, target_player_id=None, damage=0.0, headshot=False,
                  weapon="rifle", event_time=t0 + s * 1000, platform=None)  # fmt: skip
        assert producer.send(player, ev, topic, timestamp=ev["event_time"])
    assert producer.flush() == 0
    nb = execute(
        "01_flink_sql_live.ipynb",
        {
            "TOPIC_PREFIX": cfg.kafka.topic_prefix,
            "BOUNDED": True,
            "SECONDS": 240,
            "EXPECT": {"ana": (2, 1), "bo": (1, 2), "cy": (0, 0)},
        },
        tmp_path,
    )
    assert "kills and deaths as expected" in outputs(nb)


def test_clickhouse_notebook_explores_known_results(
    ensure_stack: Any, cfg: Config, prefix: str, tmp_path: Path
) -> None:
    ensure_stack("clickhouse")
    with known_database(cfg, f"{prefix}_nb") as c:
        nb = execute(
            "02_clickhouse_exploration.ipynb",
            {
                "DATABASE": c.clickhouse.database,
                "EXPECT": {
                    "leaders": ["ana", "bo"],  # the cheater (K/D 40) is left out
                    # all time: h2's 9 kWh heater window (after the report's period) leads
                    "home": "h2",
                    "appliances_kwh": {"heater": 9.0, "oven": 0.125},
                    "incidents_per_rule": {
                        "brute_force_login": 4,
                        "door_open_while_armed": 1,
                        "energy_over_threshold": 1,
                        "impossible_kill_rate": 1,
                    },
                },
            },
            tmp_path,
        )
    assert "as expected" in outputs(nb)
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 3  # K/D over time, energy profile, alert timeline


def test_schema_evolution_notebook_sees_the_new_column(
    ensure_stack: Any, cfg: Config, prefix: str, tmp_path: Path
) -> None:
    ensure_stack("kafka", "registry")
    nb = execute(
        "03_schema_evolution.ipynb",
        {"TOPIC_PREFIX": cfg.kafka.topic_prefix, "EXPECT": 87},
        tmp_path,
    )
    text = outputs(nb)
    assert "the new column arrived: 87" in text
    assert "breaks" in text  # the required field without a default was refused
    # the repository's schemas are untouched
    assert not (ROOT / "avro_schemas" / "flinkpulse.iot.SecurityEvent" / "v2.avsc").exists()


def flinkpulse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flinkpulse", *args], capture_output=True, text=True, timeout=180
    )


def _status(url: str, token: str | None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_notebook_command_serves_jupyterlab_behind_a_token(base_cfg: Config) -> None:
    refused = flinkpulse("notebook", "--ip", "0.0.0.0", "--no-token")
    assert refused.returncode == 2
    assert refused.stderr.startswith("flinkpulse: error: refusing to serve notebooks on 0.0.0.0")
    assert len(refused.stderr.strip().splitlines()) == 1

    comp = Jupyter(base_cfg)
    try:
        res = flinkpulse("notebook")
        assert res.returncode == 0, res.stderr
        token = comp.token()
        assert len(token) >= 32 and comp.token_file.stat().st_mode & 0o077 == 0
        assert f"?token={token}" in res.stdout
        api = f"http://127.0.0.1:{base_cfg.stack.jupyter_port}/api/contents"
        assert _status(api, token) == 200
        assert _status(api, None) == 403
        assert _status(api, "wrong") == 403
        again = flinkpulse("notebook")  # idempotent: the running server is reused
        assert "already running" in again.stdout
        # the token is in the state directory only, never in a file of the repository
        tracked = subprocess.run(
            ["git", "grep", "-l", token], cwd=ROOT, capture_output=True, text=True
        )
        assert tracked.stdout == ""
    finally:
        down = flinkpulse("stack", "down", "jupyter")
        assert down.returncode == 0, down.stderr
    assert not comp.running()
