"""The exactly-once loader against real Kafka, registry and ClickHouse.

Each test has its own topic prefix and its own ClickHouse database (dropped afterwards).
Records are Flink-shaped Avro (flinkpulse/bench/records.py). Exactly once is checked by count AND
content: the rows in ClickHouse are compared, as a multiset, with the records produced.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from confluent_kafka import Consumer

from flinkpulse.bench.records import (
    ALERT,
    PLAYER_STATS,
    SECURITY_EVENT,
    Encoder,
    player_row,
    register,
)
from flinkpulse.clickhouse.migrate import client, discover, migrate
from flinkpulse.config import Config
from flinkpulse.loader.core import Loader
from flinkpulse.paths import ROOT
from flinkpulse.producer import Producer
from flinkpulse.topics import ensure_topics

pytestmark = pytest.mark.integration

PLAYER_COLS = [
    "window_start", "window_end", "player_id", "team", "match_id", "kills", "deaths",
    "assists", "damage", "headshots", "kd_ratio",
]  # fmt: skip


@pytest.fixture
def lcfg(ensure_stack: Callable[..., Config], cfg: Config, prefix: str) -> Iterator[Config]:
    """Per-test config: prefixed topics (3 partitions), database `<prefix>`, dropped after."""
    ensure_stack("kafka", "registry", "clickhouse")
    c = cfg.derive(
        clickhouse={"database": prefix}, kafka={"partitions": 3}, loader={"stats_interval_s": 2.0}
    )
    yield c
    ch = client(c)
    ch.command(f"DROP DATABASE IF EXISTS `{prefix}`")
    ch.close()


def _expected_player(row: dict[str, Any]) -> tuple[Any, ...]:
    r = dict(row)
    r["kd_ratio"] = r["kd_ratio"] if r["kd_ratio"] is not None else 0.0  # NULL -> default
    return tuple(
        datetime.fromtimestamp(r[c] / 1000, UTC).replace(tzinfo=None) if c.startswith("window_")
        else r[c]
        for c in PLAYER_COLS
    )  # fmt: skip


def _produce_players(cfg: Config, rows: range, bad_every: int = 0) -> int:
    """Produce player rows keyed by player (spread over partitions); returns bad records sent."""
    topic = cfg.kafka.topic("results.player-stats")
    enc = Encoder(register(cfg.registry.url, f"{topic}-value", PLAYER_STATS), PLAYER_STATS)
    p = Producer({**cfg.kafka.client_conf(), "linger.ms": 20})
    bad = 0
    for i in rows:
        row = player_row(i)
        p.produce(topic, key=row["player_id"].encode(), value=enc(row))
        if bad_every and i % bad_every == 0:
            p.produce(topic, key=b"bad", value=b"\x00\x00\x00\x00\x01\xff\xff\xff")
            bad += 1
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    return bad


def _player_rows(cfg: Config) -> list[tuple[Any, ...]]:
    ch = client(cfg)
    try:
        rows = ch.query(
            f"SELECT {', '.join(PLAYER_COLS)} FROM `{cfg.clickhouse.database}`.player_stats"
        ).result_rows
        return [
            tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in r) for r in rows
        ]
    finally:
        ch.close()


def _count(cfg: Config, table: str = "player_stats") -> int:
    ch = client(cfg)
    try:
        return int(ch.command(f"SELECT count() FROM `{cfg.clickhouse.database}`.{table}"))
    except Exception:
        return -1
    finally:
        ch.close()


def _assert_exactly(cfg: Config, n: int) -> None:
    got = Counter(_player_rows(cfg))
    want = Counter(_expected_player(player_row(i)) for i in range(n))
    assert sum(got.values()) == n, f"{sum(got.values())} rows in ClickHouse, expected {n}"
    assert got == want
    ch = client(cfg)
    dups = ch.query(
        f"SELECT count() - uniqExact(_partition, _offset) FROM "
        f"`{cfg.clickhouse.database}`.player_stats"
    ).result_rows[0][0]
    ch.close()
    assert dups == 0


def _dlq(cfg: Config, logical: str, expect: int, timeout: float = 20) -> list[Any]:
    c = Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": f"dlq-check-{time.time()}",
            "auto.offset.reset": "earliest",
        }
    )
    c.subscribe([cfg.kafka.topic(f"dlq.{logical}")])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            out.append(m)
    # nothing more arrives
    end = time.monotonic() + 2
    while time.monotonic() < end:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            out.append(m)
    c.close()
    return out


# -- migrations ---------------------------------------------------------------------------------


def test_migrate_twice_is_a_noop(lcfg: Config) -> None:
    first = migrate(lcfg, log=None)
    assert [m.version for m in first] == [m.version for m in discover()]
    assert migrate(lcfg, log=None) == []
    ch = client(lcfg)
    db = lcfg.clickhouse.database
    tables = set(ch.query(f"SHOW TABLES FROM `{db}`").result_columns[0])
    assert {
        "player_stats", "team_stats", "leaderboard", "device_stats", "energy_usage",
        "web_traffic", "client_activity", "alerts", "security_events", "energy_hogs",
        "player_stats_fair", "schema_migrations", "web_traffic_hourly", "alerts_hourly", "loader_topics",
    } <= tables  # fmt: skip
    assert ch.command(f"SELECT count() FROM `{db}`.schema_migrations") == len(first)
    ch.close()
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse.cli", "clickhouse", "migrate", "--database", db],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{db}: schema up to date"


# -- loading ------------------------------------------------------------------------------------


def test_loads_exact_rows_and_dead_letters(lcfg: Config) -> None:
    n = 3000
    bad = _produce_players(lcfg, range(n), bad_every=1000)
    # an alert and security events, with maps and nullable timestamps
    at = ensure_topics(lcfg, ["alerts", "results.security-events"]) and None
    del at
    alerts_t = lcfg.kafka.topic("alerts")
    sec_t = lcfg.kafka.topic("results.security-events")
    enc_a = Encoder(register(lcfg.registry.url, f"{alerts_t}-value", ALERT), ALERT)
    enc_s = Encoder(register(lcfg.registry.url, f"{sec_t}-value", SECURITY_EVENT), SECURITY_EVENT)
    t0 = 1_767_225_600_000
    alert = {
        "alert_id": "door_open_while_armed:home-00001:20260101000000000:door-1",
        "rule": "door_open_while_armed", "severity": "CRITICAL", "entity_type": "home",
        "entity_id": "home-00001", "summary": "Door door-1 (hall) opened while armed",
        "event_count": 2, "first_event_time": t0, "last_event_time": t0 + 5000,
        "detected_at": t0 + 6000, "attributes": {"device_id": "door-1", "room": "hall"},
    }  # fmt: skip
    p = Producer(lcfg.kafka.client_conf())
    p.produce(alerts_t, key=b"home-00001", value=enc_a(alert))
    for k in range(5):
        ev = {
            "event_id": f"e{k}", "home_id": "home-00001", "device_id": "door-1",
            "room": None if k == 4 else "hall", "kind": "DOOR_OPEN", "event_time": t0 + k,
        }  # fmt: skip
        p.produce(sec_t, key=b"home-00001", value=enc_s(ev))
    p.flush(10)

    stats = Loader(lcfg).run(once=True)
    assert stats.rows == n + 1 + 5
    assert stats.dead_letters == bad == 3
    _assert_exactly(lcfg, n)

    ch = client(lcfg)
    db = lcfg.clickhouse.database
    got = ch.query(
        f"SELECT alert_id, rule, event_count, toUnixTimestamp64Milli(first_event_time), "
        f"toUnixTimestamp64Milli(detected_at), attributes, _topic FROM `{db}`.alerts"
    ).result_rows
    assert got == [
        (alert["alert_id"], "door_open_while_armed", 2, t0, t0 + 6000,
         {"device_id": "door-1", "room": "hall"}, alerts_t)
    ]  # fmt: skip
    rooms = ch.query(f"SELECT event_id, room FROM `{db}`.security_events ORDER BY event_id")
    assert rooms.result_rows == [("e0", "hall"), ("e1", "hall"), ("e2", "hall"), ("e3", "hall"),
                                 ("e4", "")]  # fmt: skip
    ch.close()

    dead = _dlq(lcfg, "results.player-stats", bad)
    assert len(dead) == bad
    for m in dead:
        h = {k: v.decode() for k, v in m.headers()}
        assert h["source.topic"] == lcfg.kafka.topic("results.player-stats")
        assert "error" in h and h["error"]
        assert m.value() == b"\x00\x00\x00\x00\x01\xff\xff\xff"
        assert m.key() == b"bad"

    # a second run finds everything loaded: nothing new, nothing twice
    again = Loader(lcfg).run(once=True)
    assert again.rows == 0
    _assert_exactly(lcfg, n)


def _recreate(cfg: Config, only: list[str], rows: range) -> None:
    """Delete the topic of `only`, create it again, and fill it with `rows`."""
    from flinkpulse.topics import delete_topics

    topic = cfg.kafka.topic(only[0])
    assert delete_topics(cfg, lambda name: name == topic) == [topic]
    deadline = time.monotonic() + 60
    while True:  # the broker finishes a deletion in the background
        try:
            ensure_topics(cfg, only)
            _produce_players(cfg, rows)
            return
        except Exception:
            assert time.monotonic() < deadline, "the topic was not recreated within 60 s"
            time.sleep(1)


def _load_once_fails(cfg: Config) -> str:
    """`flinkpulse load --once` of results.player-stats: exit 1; its error line."""
    argv = [
        sys.executable, "-m", "flinkpulse.cli",
        "--set", f"kafka.topic_prefix={cfg.kafka.topic_prefix}",
        "--set", f"clickhouse.database={cfg.clickhouse.database}",
        "--set", f"clickhouse.url={cfg.clickhouse.url}",
        "load", "--once", "--topic", "results.player-stats",
    ]  # fmt: skip
    if cfg.clickhouse.user:
        argv[3:3] = ["--set", f"clickhouse.user={cfg.clickhouse.user}"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 1, res.stderr
    return res.stderr.strip().splitlines()[-1]


def _start_over(cfg: Config, line: str) -> None:
    """The error line gives the curl that empties player_stats: check it, and send it."""
    sql = f"TRUNCATE TABLE `{cfg.clickhouse.database}`.`player_stats`"
    url, user = cfg.clickhouse.url.rstrip("/"), cfg.clickhouse.user
    assert f"`curl {f'-u {user} ' if user else ''}'{url}/' --data-binary '{sql}'`" in line, line
    auth = (user, cfg.clickhouse.password) if user else None
    r = requests.post(f"{url}/", data=sql, auth=auth, timeout=30)
    assert r.status_code == 200, r.text


def test_a_recreated_topic_stops_the_loader_and_it_says_how_to_start_over(lcfg: Config) -> None:
    """A topic deleted and created again (a Kafka whose data directory was reset alike) keeps
    its name and starts its offsets over, so the rows of the old one would make the loader skip
    the new one's first records. `flinkpulse load` refuses to resume there, in one line that
    says how to start over; after the SQL it gives, the new topic loads exactly once.

    * Refilled past the old offsets: told by the topic ID recorded with the rows.
    * Rows loaded before IDs were recorded (loader_topics emptied here): told by a position
      past the partition's end (without that check Kafka reset the consumer to offset 0 and
      the loader died on an overlap)."""
    from flinkpulse.topics import topic_ids

    only = ["results.player-stats"]
    topic = lcfg.kafka.topic(only[0])
    ensure_topics(lcfg, only)  # 3 partitions, as after recreating it
    _produce_players(lcfg, range(300))
    assert Loader(lcfg, only).run(once=True).rows == 300
    old_id = topic_ids(lcfg, [topic])[topic]
    _recreate(lcfg, only, range(3000))
    new_id = topic_ids(lcfg, [topic])[topic]
    assert new_id != old_id
    line = _load_once_fails(lcfg)
    assert line.startswith(
        f"flinkpulse: error: {topic}: ClickHouse holds rows of it "
        f"(`{lcfg.clickhouse.database}`.`player_stats`) loaded from the topic with ID {old_id}, "
        f"but Kafka's topic of that name has ID {new_id}"
    ), line
    _assert_exactly(lcfg, 300)  # nothing was loaded over the old rows
    _start_over(lcfg, line)
    assert Loader(lcfg, only).run(once=True).rows == 3000
    _assert_exactly(lcfg, 3000)

    # a database loaded before the IDs were recorded: the positions past the ends tell
    ch = client(lcfg)
    ch.command(f"TRUNCATE TABLE `{lcfg.clickhouse.database}`.loader_topics")
    ch.close()
    _recreate(lcfg, only, range(300))
    line = _load_once_fails(lcfg)
    assert line.startswith(f"flinkpulse: error: {topic}["), line
    assert "(and 2 more partition(s))" in line and "but the partition ends at offset" in line
    _assert_exactly(lcfg, 3000)
    _start_over(lcfg, line)
    assert Loader(lcfg, only).run(once=True).rows == 300
    _assert_exactly(lcfg, 300)


@pytest.mark.parametrize("refill", [3000, 30], ids=["past-the-old-offsets", "short-of-them"])
def test_a_topic_recreated_under_a_running_loader_stops_it(
    lcfg: Config, refill: int, tmp_path: Path
) -> None:
    """A running loader's consumer goes on at its offsets in a topic recreated under it. Grown
    past them, it went on without a word and skipped the new topic's first records (its 300
    first, here); short of them, Kafka reset it to offset 0 and the loader stopped on an overlap
    it took for a bug of its own. Now it stops with the recreated topic's line within
    METADATA_S, its status file (what `stack status` shows) saying why; rows of the new topic
    it loaded by then go with the old ones at the start over, after which the new topic loads
    exactly once."""
    from flinkpulse.loader.core import METADATA_S
    from flinkpulse.loader.errors import TopicRecreated, first_line
    from flinkpulse.topics import topic_ids

    only = ["results.player-stats"]
    topic = lcfg.kafka.topic(only[0])
    ensure_topics(lcfg, only)
    _produce_players(lcfg, range(300))
    status = tmp_path / "status.json"
    loader, ended = Loader(lcfg, only, status_file=status), {}

    def run() -> None:
        try:
            loader.run()
        except TopicRecreated as e:
            ended["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        _wait(lambda: _count(lcfg) == 300, 60, "the first 300 rows")
        old_id = topic_ids(lcfg, [topic])[topic]
        _recreate(lcfg, only, range(refill))
        thread.join(METADATA_S + 30)
        assert not thread.is_alive(), "the loader went on in the recreated topic"
    finally:
        loader.stop()
        thread.join(30)
    new_id = topic_ids(lcfg, [topic])[topic]
    line = f"flinkpulse: error: {ended.get('error')}"
    assert line.startswith(
        f"flinkpulse: error: {topic}: ClickHouse holds rows of it "
        f"(`{lcfg.clickhouse.database}`.`player_stats`) loaded from the topic with ID {old_id}, "
        f"but Kafka's topic of that name has ID {new_id}"
    ), line
    state = json.loads(status.read_text())["state"]
    assert state == f"failed: {first_line(ended['error'])}", state
    _start_over(lcfg, line)
    assert Loader(lcfg, only).run(once=True).rows == refill
    _assert_exactly(lcfg, refill)


# -- crashes ------------------------------------------------------------------------------------


def _loader_proc(cfg: Config, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "flinkpulse.cli",
        "--set", f"kafka.topic_prefix={cfg.kafka.topic_prefix}",
        "--set", f"clickhouse.database={cfg.clickhouse.database}",
        "--set", f"clickhouse.url={cfg.clickhouse.url}",
        "--set", "loader.stats_interval_s=2",
        "load", "--topic", "results.player-stats", "--batch-rows", "2000", *extra,
    ]  # fmt: skip
    if cfg.clickhouse.user:
        argv[3:3] = ["--set", f"clickhouse.user={cfg.clickhouse.user}"]
    fh = open(log, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill9_mid_stream_then_restart_loads_exactly_once(lcfg: Config, tmp_path: Path) -> None:
    n = 60_000
    migrate(lcfg, log=None)
    _produce_players(lcfg, range(n))
    log = tmp_path / "loader.log"
    for _ in range(2):  # two crashes at different points
        before = max(0, _count(lcfg))
        proc = _loader_proc(lcfg, log, "--until-idle", "5")
        _wait(lambda b=before: _count(lcfg) > b + 4000, 120, "the loader to insert rows")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        mid = _count(lcfg)
        assert 0 < mid < n, f"kill came too late ({mid} rows)"
    proc = _loader_proc(lcfg, log, "--until-idle", "3")
    assert proc.wait(240) == 0, log.read_text()[-3000:]
    _assert_exactly(lcfg, n)


# -- ClickHouse down ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateClickHouse:
    """A ClickHouse server of our own (not the shared stack's), on a free port and a temp dir."""

    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "data"
        self.port = _free_port()
        self.log = tmp / "clickhouse.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        fh = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flinkpulse.cli", "clickhouse", "serve",
             "--path", str(self.data), "--port", str(self.port)],
            stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        _wait(self.ping, 60, "the private ClickHouse server")

    def ping(self) -> bool:
        try:
            return requests.get(f"{self.url}/ping", timeout=1).text.startswith("Ok.")
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.mark.slow
def test_clickhouse_down_30s_loader_waits_then_loads_exactly_once(
    lcfg: Config, tmp_path: Path
) -> None:
    server = PrivateClickHouse(tmp_path)
    server.start()
    c = lcfg.derive(clickhouse={"url": server.url, "user": "default"})
    try:
        n1, n2 = 20_000, 40_000
        _produce_players(c, range(n1))
        log = tmp_path / "loader.log"
        proc = _loader_proc(c, log)
        _wait(lambda: _count(c) == n1, 120, "the first rows")
        server.stop()
        t_down = time.monotonic()
        _produce_players(c, range(n1, n2))  # produced while ClickHouse is down
        time.sleep(max(0.0, 30 - (time.monotonic() - t_down)))
        assert proc.poll() is None, "the loader must wait, not exit"
        server.start()
        _wait(lambda: _count(c) >= n2, 180, "the rows produced during the outage")
        time.sleep(3)  # nothing more (no duplicates) arrives
        _assert_exactly(c, n2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        text = log.read_text()
        assert "ClickHouse not ready" in text or "insert failed" in text
    finally:
        if "proc" in locals() and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        server.stop()
