"""Issue 5: the four jobs on the session cluster, against real topics fed by the producers.

One module-scoped deployment (own topic prefix): all four jobs are submitted once, the
producers write every domain, and each test reads what the jobs wrote.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

from flink_jobs import JOBS
from flinkpulse.config import Config
from flinkpulse.flinkrest import FlinkRest, job_name
from flinkpulse.flinkrun import submit_jobs
from flinkpulse.paths import ROOT
from flinkpulse.topics import ensure_topics
from tests.kafka_helpers import consume, produce

pytestmark = pytest.mark.integration

START_MS = int(time.time() * 1000) - 15 * 60_000  # event time well in the past


def _produce(cfg: Config, *args: str) -> str:
    cmd = [
        sys.executable,
        "-m",
        "flinkpulse",
        "--set",
        f"kafka.topic_prefix={cfg.kafka.topic_prefix}",
        "produce",
        *args,
        "--quiet",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def deployed(ensure_stack: Any, base_cfg: Config) -> Iterator[Config]:
    ensure_stack("kafka", "registry", "flink")
    cfg = base_cfg.with_prefix(f"jobs{int(time.time())}.")
    ensure_topics(cfg)
    ids = submit_jobs(cfg, list(JOBS))
    _produce(
        cfg, "all", "--count", "24000", "--rate", "0", "--seed", "7", "--start-time", str(START_MS)
    )
    yield cfg
    rest = FlinkRest(cfg)
    for jid in ids.values():
        with contextlib.suppress(Exception):
            rest.cancel(jid)


def _records(cfg: Config, logical: str, timeout: float = 60) -> list[dict[str, Any]]:
    de = AvroDeserializer(SchemaRegistryClient({"url": cfg.registry.url}))
    msgs = consume(cfg.kafka.bootstrap_servers, cfg.kafka.topic(logical), timeout=timeout, quiet=5)
    return [de(m.value(), None) for m in msgs]


def test_result_topics_carry_correct_avro_within_a_minute(deployed: Config) -> None:
    ps = _records(deployed, "results.player-stats")
    assert ps, "no player_stats within a minute"
    for r in ps:
        assert r["kd_ratio"] == r["kills"] / max(r["deaths"], 1)
        assert r["window_end"] - r["window_start"] == __import__("datetime").timedelta(seconds=60)
    lb = _records(deployed, "results.leaderboard")
    by_window: dict[Any, list[int]] = {}
    for r in lb:
        by_window.setdefault(r["window_start"], []).append(r["rank"])
    assert by_window and all(
        sorted(v) == list(range(1, len(v) + 1)) and len(v) <= 10 for v in by_window.values()
    )
    ts = _records(deployed, "results.team-stats")
    assert ts and all(r["players"] >= 1 for r in ts)
    ds = _records(deployed, "results.device-stats")
    # AVG is sum / count in doubles: over equal values it can land one ulp past them
    assert ds and all(_le(r["min_value"], r["avg_value"], r["max_value"]) for r in ds)
    assert all(r["min_value"] <= r["last_value"] <= r["max_value"] for r in ds)
    eu = _records(deployed, "results.energy-usage")
    # the same AVG as device-stats': a window of equal readings can average one ulp past them
    assert eu and all(r["kwh"] >= 0 and _le(r["avg_power_w"], r["max_power_w"]) for r in eu)
    wt = _records(deployed, "results.web-traffic")
    assert wt and all(r["error_rate"] == r["errors"] / r["requests"] for r in wt)
    assert all(r["latency_p50"] <= r["latency_p95"] for r in wt)
    ca = _records(deployed, "results.client-activity")
    assert ca and all(len(r["country"]) == 2 for r in ca)
    assert {r["device"] for r in ca} <= {"desktop", "mobile", "tablet", "bot", "other"}
    se = _records(deployed, "results.security-events")
    assert se and {r["kind"] for r in se} <= {
        "DOOR_OPEN",
        "DOOR_CLOSE",
        "MOTION",
        "ARM_AWAY",
        "DISARM",
    }


def _le(*xs: float) -> bool:
    """xs in order, up to the rounding of a double (relative 1e-12)."""
    return all(
        a <= b or math.isclose(a, b, rel_tol=1e-12) for a, b in zip(xs, xs[1:], strict=False)
    )


def test_garbage_goes_to_dlq_and_the_job_keeps_running(deployed: Config) -> None:
    topic = deployed.kafka.topic("web.access-logs")
    produce(
        deployed.kafka.bootstrap_servers,
        topic,
        [(b"10.0.0.1", b"\x00\x00\x00\xff\xffnot avro at all")],
    )
    produce(deployed.kafka.bootstrap_servers, topic, [(b"10.0.0.2", b"plain garbage")])
    dlq = consume(
        deployed.kafka.bootstrap_servers,
        deployed.kafka.topic("dlq.web.access-logs"),
        expect=2,
        timeout=60,
    )
    assert len(dlq) == 2
    reasons = {m.key(): dict(m.headers())["error"].decode() for m in dlq}
    assert "unknown schema id 65535" in reasons[b"10.0.0.1"]
    assert "wrong magic byte" in reasons[b"10.0.0.2"]
    assert all(dict(m.headers())["source.topic"].decode() == topic for m in dlq)
    rest = FlinkRest(deployed)
    for job in JOBS:
        (j,) = rest.running(job_name(deployed, job))
        assert j["state"] == "RUNNING"
