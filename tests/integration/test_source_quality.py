"""Issue 14 item 6: the loader component samples data quality per source topic into ClickHouse.

Source, late and dead-letter topics of a private prefix get known numbers of records (dead
letters with a "future:" reason or another one); a sample — taken in-process, and by the
component's own `loader-quality` process — lands in ``source_quality`` of a private database
and ``source_quality_latest`` gives exactly the counts and shares that
:func:`flinkpulse.quality.source_quality` (what `stack status` prints) computes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from flinkpulse import quality
from flinkpulse.clickhouse.migrate import client, migrate
from flinkpulse.config import Config
from flinkpulse.loader import quality as sampler
from flinkpulse.loader.component import LoaderComponent
from flinkpulse.paths import ROOT
from tests.kafka_helpers import create_topics, produce

pytestmark = pytest.mark.integration

WEB = "web.access-logs"
IOT = "iot.sensor-readings"
#: logical topic -> (records, late, dead letters "future: ...", other dead letters)
KNOWN = {WEB: (400, 30, 8, 12), IOT: (50, 0, 0, 0)}


@pytest.fixture
def qcfg(ensure_stack: Any, cfg: Config, prefix: str) -> Any:
    """`cfg` (topics prefixed) with a database of its own, migrated; dropped afterwards."""
    ensure_stack("kafka", "clickhouse")
    cfg = cfg.derive(clickhouse={"database": f"{prefix}_quality"})
    migrate(cfg, log=None)
    bootstrap = cfg.kafka.bootstrap_servers
    for logical, (n, late, future, other) in KNOWN.items():
        names = [cfg.kafka.topic(logical)]
        if late:
            names.append(cfg.kafka.topic(f"late.{logical}"))
        if future or other:
            names.append(cfg.kafka.topic(f"dlq.{logical}"))
        create_topics(bootstrap, names, partitions=2)
        produce(bootstrap, cfg.kafka.topic(logical), [(b"k%d" % i, b"v") for i in range(n)])
        if late:
            produce(bootstrap, names[1], [(b"k%d" % i, b"v") for i in range(late)])
        if future or other:
            dlq = names[2]
            from flinkpulse.producer import Producer

            p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
            for i in range(future):
                p.produce(dlq, key=b"f%d" % i, value=b"x", headers=[("error", b"future: ahead")])
            for i in range(other):
                p.produce(dlq, key=b"o%d" % i, value=b"x", headers=[("error", b"decode: bad")])
            assert p.flush(30) == 0
    writer = client(cfg, "writer", database=cfg.clickhouse.database)
    yield cfg, writer
    writer.command(f"DROP DATABASE IF EXISTS `{cfg.clickhouse.database}`")
    writer.close()


def _latest(writer: Any) -> dict[str, tuple[Any, ...]]:
    rows = writer.query(
        "SELECT topic, records, late, dead_lettered, future, late_pct, dead_lettered_pct, "
        "future_pct FROM source_quality_latest"
    ).result_rows
    return {r[0]: tuple(r[1:]) for r in rows}


def _expected(cfg: Config) -> dict[str, tuple[Any, ...]]:
    """What `stack status` computes, with the view's shares (percent, 3 decimals)."""
    out = {}
    for q in quality.source_quality(cfg):
        pct = [round(100 * n / q.records, 3) if q.records else 0.0
               for n in (q.late, q.dead_lettered, q.future)]  # fmt: skip
        out[q.topic] = (q.records, q.late, q.dead_lettered, q.future, *pct)
    return out


def test_sample_matches_source_quality_with_known_counts(qcfg: Any) -> None:
    cfg, writer = qcfg
    counts = sampler.sample_once(cfg)
    assert {q.topic for q in counts} == {WEB, IOT}  # only the source topics that exist
    latest = _latest(writer)
    assert latest == _expected(cfg)
    # the known input: dead_lettered excludes the "future" ones, shares of the records
    assert latest[WEB] == (400, 30, 12, 8, 7.5, 3.0, 2.0)
    assert latest[IOT] == (50, 0, 0, 0, 0.0, 0.0, 0.0)
    # a later sample supersedes the earlier one in the view; the table keeps both
    produce(cfg.kafka.bootstrap_servers, cfg.kafka.topic(IOT), [(b"k", b"v")] * 50)
    sampler.sample_once(cfg)
    assert _latest(writer)[IOT][:2] == (100, 0)
    assert writer.command("SELECT count() FROM source_quality") == 4


def test_loader_component_samples_in_its_own_process(qcfg: Any, tmp_path: Any) -> None:
    """The `loader-quality` process of the stack component, as `stack up` starts it; it also
    samples the loader's own rate and lag (its status file) into job_metrics."""
    cfg, writer = qcfg
    comp = LoaderComponent(cfg)
    procs = {p.name: p for p in comp.procs()}
    argv = procs["loader-quality"].argv
    assert argv[1:4] == ["-m", "flinkpulse.loader.quality", "--interval"]
    assert argv[5:] == ["--loader-status", str(comp.status_file)]
    status = tmp_path / "status.json"  # what the loader writes (flinkpulse.loader.core)
    status.write_text(
        '{"pid": 4242, "state": "running", "rows": 1234, "rows_per_s": 56.5, "lag_total": 78}'
    )
    env = {
        **os.environ,
        "FLINKPULSE_KAFKA__TOPIC_PREFIX": cfg.kafka.topic_prefix,
        "FLINKPULSE_KAFKA__BOOTSTRAP_SERVERS": cfg.kafka.bootstrap_servers,
        "FLINKPULSE_CLICKHOUSE__URL": cfg.clickhouse.url,
        "FLINKPULSE_CLICKHOUSE__DATABASE": cfg.clickhouse.database,
    }
    proc = subprocess.Popen(
        [sys.executable, *argv[1:3], "--interval", "2", "--loader-status", str(status)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if int(writer.command("SELECT count(DISTINCT sampled_at) FROM source_quality")) >= 2:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(1)
        else:
            pytest.fail("the quality process wrote fewer than 2 samples in 90 s")
    finally:
        proc.terminate()
        rc = proc.wait(30)
    assert rc == 0  # SIGTERM ends it cleanly
    assert _latest(writer) == _expected(cfg)
    loader = writer.query(
        "SELECT DISTINCT job, job_id, state, records_in, records_out, records_in_per_s, lag "
        "FROM job_metrics WHERE job = 'loader'"
    ).result_rows
    assert loader == [("loader", "4242", "running", 1234, 1234, 56.5, 78)]
    # no sampling process when the interval is 0
    cfg = cfg.derive(loader={"quality_interval_s": 0})
    assert [p.name for p in LoaderComponent(cfg).procs()] == ["loader"]


def test_dlq_follow_reads_a_side_topic_created_after_it_started(
    ensure_stack: Any, cfg: Config
) -> None:
    """`flinkpulse dlq --follow` started before any job created the side topics (a fresh
    stack) still lists their records once they exist: it looks for them every FOLLOW_LOOK_S."""
    import threading

    from flinkpulse.producer import Producer

    ensure_stack("kafka")
    got: list[quality.SideRecord] = []
    done = threading.Event()

    def follow() -> None:
        for r in quality.side_records(cfg, ["dlq"], [IOT], follow=True, stop=done.is_set):
            got.append(r)

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    try:
        time.sleep(1)
        assert got == [] and t.is_alive()  # nothing to read yet, and it waits
        dlq = cfg.kafka.topic(f"dlq.{IOT}")
        create_topics(cfg.kafka.bootstrap_servers, [dlq], partitions=2)
        p = Producer({"bootstrap.servers": cfg.kafka.bootstrap_servers, "enable.idempotence": True})
        p.produce(dlq, key=b"dev-7", value=b"\x00garbage", headers=[("error", b"decode: bad")])
        assert p.flush(30) == 0
        deadline = time.monotonic() + 3 * quality.FOLLOW_LOOK_S + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        done.set()
        t.join(15)
    assert [(r.kind, r.source, r.key, r.value, r.reason) for r in got] == [
        ("dlq", IOT, b"dev-7", b"\x00garbage", "decode: bad")
    ]
