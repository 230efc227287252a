"""`flinkpulse alerts tail` and the webhook notifier, against real Kafka and the registry.

The webhook is a local HTTP server started by the test; it fails the first attempts on
purpose, so delivery must go through the retries. Alerts are incidents: the tail marks the
updates of one alert_id (version > 1) as updates, or leaves them out with --new-only, and
ClickHouse keeps the newest version of each (the migration to incidents keeps what was loaded).
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flinkpulse.alerts import Webhook, notify
from flinkpulse.bench.records import ALERT, Encoder, register
from flinkpulse.clickhouse.migrate import MIGRATIONS_DIR, client, migrate
from flinkpulse.config import Config
from flinkpulse.paths import ROOT
from flinkpulse.producer import Producer
from flinkpulse.schemas import latest_schema
from flinkpulse.topics import ensure_topics

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _alert(i: int, rule: str, severity: str, entity: str, summary: str) -> dict[str, Any]:
    return {
        "alert_id": f"{rule}:{entity}:{i}",
        "rule": rule,
        "severity": severity,
        "entity_type": "home" if entity.startswith("home") else "client_ip",
        "entity_id": entity,
        "summary": summary,
        "event_count": 2 + i,
        "first_event_time": T0 + i * 1000,
        "last_event_time": T0 + i * 1000 + 500,
        "detected_at": T0 + i * 1000 + 750,
        "attributes": {"n": str(i)},
    }


ALERTS = [
    _alert(0, "door_open_while_armed", "CRITICAL", "home-00001", "Door opened while armed"),
    _alert(1, "brute_force_login", "CRITICAL", "203.0.113.9", "6 failed logins then a success"),
    _alert(2, "door_open_while_armed", "CRITICAL", "home-00002", "Door opened while armed"),
    _alert(3, "motion_while_away", "WARNING", "home-00003", "Motion while away"),
]


@pytest.fixture
def acfg(ensure_stack: Callable[..., Config], cfg: Config) -> Config:
    """Alerts produced (Flink-shaped Avro, written before incidents: no version) to this
    test's prefixed alerts topic, each with its detected_at as its Kafka timestamp."""
    ensure_stack("kafka", "registry")
    ensure_topics(cfg, ["alerts"])
    topic = cfg.kafka.topic("alerts")
    enc = Encoder(register(cfg.registry.url, f"{topic}-value", ALERT), ALERT)
    p = Producer(cfg.kafka.client_conf())
    for a in ALERTS:
        # one partition: the tests read them back in this order (the topic has several)
        p.produce(
            topic,
            key=a["entity_id"].encode(),
            value=enc(a),
            partition=0,
            timestamp=a["detected_at"],
        )
    assert p.flush(10) == 0
    return cfg


def test_tail_prints_one_line_per_alert_filtered_by_rule(acfg: Config) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse.cli",
         "--set", f"kafka.topic_prefix={acfg.kafka.topic_prefix}",
         "alerts", "tail", "--from-beginning", "--rule", "door_open_while_armed",
         "--idle-timeout", "5"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split() for ln in lines] == [
        ["2026-01-01", "00:00:00.750Z", "CRITICAL", "door_open_while_armed",
         "home=home-00001", "Door", "opened", "while", "armed"],
        ["2026-01-01", "00:00:02.750Z", "CRITICAL", "door_open_while_armed",
         "home=home-00002", "Door", "opened", "while", "armed"],
    ]  # fmt: skip


def test_tail_since_starts_at_the_alerts_written_from_then_on(acfg: Config) -> None:
    """`--since TIME` (any time form, here ISO 8601) skips the alerts stamped before it: of the
    four written at T0 + 0.75 s, 1.75 s, 2.75 s and 3.75 s, `--since T0 + 2 s` prints the last
    two, in order."""
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse.cli",
         "--set", f"kafka.topic_prefix={acfg.kafka.topic_prefix}",
         "alerts", "tail", "--since", "2026-01-01T00:00:02Z", "--idle-timeout", "5"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    topic = acfg.kafka.topic("alerts")
    assert f"waiting for alerts written since 2026-01-01T00:00:02Z on {topic}" in out.stderr
    assert [ln.split()[1:5] for ln in out.stdout.splitlines()] == [
        ["00:00:02.750Z", "CRITICAL", "door_open_while_armed", "home=home-00002"],
        ["00:00:03.750Z", "WARNING", "motion_while_away", "home=home-00003"],
    ]


def _incident(player: str, version: int, severity: str) -> dict[str, Any]:
    """Update `version` of one impossible_kill_rate incident (10 kills per match)."""
    t = T0 + version * 10_000
    return {
        "alert_id": f"impossible_kill_rate:{player}:20260101000000000",
        "rule": "impossible_kill_rate",
        "severity": severity,
        "entity_type": "player",
        "entity_id": player,
        "summary": f"{10 * version} kills",
        "first_event_time": T0,
        "last_event_time": t - 1000,
        "detected_at": t,
        "attributes": {},
        "event_count": 10 * version,
        "occurrences": version,
        "version": version,
    }


def _tail(cfg: Config, *args: str) -> list[list[str]]:
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse.cli",
         "--set", f"kafka.topic_prefix={cfg.kafka.topic_prefix}",
         "alerts", "tail", "--from-beginning", "--idle-timeout", "5", *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return sorted(ln.split() for ln in out.stdout.splitlines())


def test_tail_shows_incident_updates_as_updates(
    ensure_stack: Callable[..., Config], cfg: Config
) -> None:
    """Records written with the current Alert contract (what Flink writes): one incident of
    3 updates for p-1, a new one for p-2."""
    ensure_stack("kafka", "registry")
    ensure_topics(cfg, ["alerts"])
    topic = cfg.kafka.topic("alerts")
    schema = latest_schema("flinkpulse.alerts.Alert")
    enc = Encoder(register(cfg.registry.url, f"{topic}-value", schema), schema)
    p = Producer(cfg.kafka.client_conf())
    for a in [
        _incident("p-1", 1, "WARNING"),
        _incident("p-1", 2, "WARNING"),
        _incident("p-1", 3, "CRITICAL"),
        _incident("p-2", 1, "WARNING"),
    ]:
        p.produce(topic, key=a["entity_id"].encode(), value=enc(a))
    assert p.flush(10) == 0
    head = ["impossible_kill_rate"]
    assert _tail(cfg) == [
        ["2026-01-01", "00:00:10.000Z", "WARNING", *head, "player=p-1", "new", "10", "kills"],
        ["2026-01-01", "00:00:10.000Z", "WARNING", *head, "player=p-2", "new", "10", "kills"],
        ["2026-01-01", "00:00:20.000Z", "WARNING", *head, "player=p-1", "update", "#2", "20",
         "kills"],
        ["2026-01-01", "00:00:30.000Z", "CRITICAL", *head, "player=p-1", "update", "#3", "30",
         "kills"],
    ]  # fmt: skip
    assert [ln[4] for ln in _tail(cfg, "--new-only")] == ["player=p-1", "player=p-2"]


class _Hook(http.server.BaseHTTPRequestHandler):
    """Fails the first `fail` POSTs with 503, then records the JSON bodies and answers 204."""

    fail = 0
    attempts: list[str] = []
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cls = type(self)
        cls.attempts.append(self.headers.get("X-Flinkpulse-Alert-Id", ""))
        if cls.fail > 0:
            cls.fail -= 1
            self.send_response(503)
            self.end_headers()
            return
        cls.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"fail": 3, "attempts": [], "received": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/alerts", handler
    srv.shutdown()
    srv.server_close()


def test_webhook_notifier_posts_each_alert_as_json_with_retries(
    acfg: Config, hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    wh = Webhook(url, retries=5, timeout=5, backoff=0.05)
    ok, failed = notify(acfg, wh, idle_timeout=5)
    assert (ok, failed) == (4, 0)
    # the first alert needed 3 retries (503s), the others went through at once
    assert handler.attempts == [ALERTS[0]["alert_id"]] * 4 + [a["alert_id"] for a in ALERTS[1:]]
    assert handler.received[0] == {
        "alert_id": "door_open_while_armed:home-00001:0",
        "rule": "door_open_while_armed",
        "severity": "CRITICAL",
        "entity_type": "home",
        "entity_id": "home-00001",
        "summary": "Door opened while armed",
        "event_count": 2,
        "first_event_time": "2026-01-01T00:00:00.000+00:00",
        "last_event_time": "2026-01-01T00:00:00.500+00:00",
        "detected_at": "2026-01-01T00:00:00.750+00:00",
        "attributes": {"n": "0"},
    }
    assert [a["alert_id"] for a in handler.received] == [a["alert_id"] for a in ALERTS]
    # a restarted notifier (same group) resumes after what was delivered: nothing is resent
    assert notify(acfg, wh, idle_timeout=3) == (0, 0)


def test_webhook_gives_up_after_retries_and_reports(hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    handler.fail = 100
    wh = Webhook(url, retries=2, timeout=2, backoff=0.01)
    assert wh.post(ALERTS[0]) is False
    assert len(handler.attempts) == 3  # the first try and two retries


def test_incidents_migration_keeps_loaded_alerts_and_keeps_the_newest_version(
    ensure_stack: Callable[..., Config], cfg: Config, prefix: str, tmp_path: Any
) -> None:
    """004_incidents on a database that already holds an alert (loaded before incidents):
    the row and its offset stay (the loader resumes after it) as version 1; afterwards
    alert_incidents shows one row per alert_id, its highest version, and the hourly rollup
    counts incidents, not updates."""
    ensure_stack("clickhouse")
    db = f"{prefix}_mig"
    before = tmp_path / "before"
    before.mkdir()
    for f in sorted(MIGRATIONS_DIR.glob("00[123]_*.sql")):
        (before / f.name).write_text(f.read_text())
    assert [m.version for m in migrate(cfg, db, before, log=None)] == [1, 2, 3]
    ch = client(cfg)
    cols = (
        "alert_id, rule, severity, entity_type, entity_id, summary, event_count, "
        "first_event_time, last_event_time, detected_at, attributes, _topic, _partition, _offset"
    )
    t = "toDateTime64('2026-01-01 00:00:00', 3, 'UTC')"
    ch.command(
        f"INSERT INTO `{db}`.alerts ({cols}) VALUES ('old:e:1', 'brute_force_login', "
        f"'CRITICAL', 'client_ip', 'e', 's', 7, {t}, {t}, {t}, map(), 'alerts', 0, 41)"
    )
    try:
        # 004 alone (later migrations are not this test's subject)
        (mig,) = MIGRATIONS_DIR.glob("004_*.sql")
        (before / mig.name).write_text(mig.read_text())
        assert [m.version for m in migrate(cfg, db, before, log=None)] == [4]
        got = ch.query(f"SELECT alert_id, occurrences, version, _offset FROM `{db}`.alerts")
        assert got.result_rows == [("old:e:1", 1, 1, 41)]
        for v, sev in ((1, "WARNING"), (2, "WARNING"), (3, "CRITICAL")):
            ch.command(
                f"INSERT INTO `{db}`.alerts ({cols}, occurrences, version) VALUES "
                f"('k:p:1', 'impossible_kill_rate', '{sev}', 'player', 'p', 's', {10 * v}, "
                f"{t}, {t}, {t}, map(), 'alerts', 1, {v}, {v}, {v})"
            )
        ch.command(
            f"INSERT INTO `{db}`.alerts ({cols}, occurrences, version) VALUES ('k:p:1', "
            f"'impossible_kill_rate', 'WARNING', 'player', 'p', 's', 20, {t}, {t}, {t}, map(), "
            "'alerts', 1, 2, 2, 2)"
        )  # a replayed older update: never wins over a newer one
        got = ch.query(
            f"SELECT alert_id, severity, event_count, version FROM `{db}`.alert_incidents "
            "ORDER BY alert_id"
        )
        assert got.result_rows == [("k:p:1", "CRITICAL", 30, 3), ("old:e:1", "CRITICAL", 7, 1)]
        hourly = ch.query(
            f"SELECT rule, sum(alerts) FROM `{db}`.alerts_hourly WHERE rule = "
            "'impossible_kill_rate' GROUP BY rule"
        )
        assert hourly.result_rows == [("impossible_kill_rate", 1)]
    finally:
        ch.command(f"DROP DATABASE IF EXISTS `{db}`")
        ch.close()
