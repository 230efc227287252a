"""Issue 2: the local stack runs a real PyFlink job (Kafka -> Python UDF -> Kafka)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flinkpulse.config import Config
from flinkpulse.flinkrest import FlinkRest
from flinkpulse.flinkrun import flink_env, source_zip
from flinkpulse.paths import ROOT, pyflink_home
from tests.kafka_helpers import consume, create_topics, produce

pytestmark = pytest.mark.integration


def test_pyflink_job_with_python_udf_on_session_cluster(
    ensure_stack, cfg: Config, prefix: str
) -> None:
    ensure_stack("kafka", "flink")
    bs = cfg.kafka.bootstrap_servers
    src, dst = f"{prefix}.smoke.in", f"{prefix}.smoke.out"
    create_topics(bs, [src, dst])
    rows = [("ana", 7, 0), ("bo", 3, 2), ("cy", 0, 0), ("di", 5, 4)]
    produce(
        bs,
        src,
        [
            (p.encode(), json.dumps({"player_id": p, "kills": k, "deaths": d}).encode())
            for p, k, d in rows
        ],
    )

    cmd = [
        str(pyflink_home() / "bin" / "flink"),
        "run",
        "-d",
        "-m",
        cfg.flink.jobmanager,
        "-pyclientexec",
        sys.executable,
        "-pyfs",
        str(source_zip(cfg)),
        "-py",
        str(ROOT / "flink_jobs" / "smoke.py"),
        "--input",
        src,
        "--output",
        dst,
    ]
    res = subprocess.run(
        cmd, capture_output=True, text=True, env=flink_env(cfg), cwd=ROOT, timeout=180
    )
    assert res.returncode == 0, res.stdout + res.stderr
    job_id = [ln.split()[-1] for ln in res.stdout.splitlines() if "JobID" in ln][0]
    try:
        msgs = consume(bs, dst, expect=len(rows), timeout=120)
        got = {json.loads(m.value())["player_id"]: json.loads(m.value())["kd_ratio"] for m in msgs}
        # kd_ratio: zero deaths count as one death, so 7/0 -> 7.0 and 0/0 -> 0.0
        assert got == {"ana": 7.0, "bo": 1.5, "cy": 0.0, "di": 1.25}
    finally:
        FlinkRest(cfg).cancel(job_id)
