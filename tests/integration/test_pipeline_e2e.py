"""Issues 5 and 6: scripted events with known answers through the whole pipeline.

Kafka -> Flink jobs on the session cluster -> result topics -> loader -> ClickHouse, on a
private topic prefix and database. Also: stop-with-savepoint and resume loses and duplicates
no window, and `flinkpulse sql -f` reads a live topic through the rendered catalog.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import clickhouse_connect
import pytest

from flinkpulse.clickhouse import credentials
from flinkpulse.config import Config
from flinkpulse.flinkrest import FlinkRest, job_name
from flinkpulse.flinkrun import submit_jobs
from flinkpulse.loader.core import Loader
from flinkpulse.paths import ROOT
from flinkpulse.topics import ensure_topics
from producers import scenarios
from producers.kafka import AvroKafkaProducer

pytestmark = pytest.mark.integration

MINUTE = 60_000
# a minute boundary well in the past (event-time validation accepts up to 10 years back)
T0 = (int(time.time() * 1000) // MINUTE - 30) * MINUTE


def match_events(t0: int, match: str) -> list[tuple[str, dict[str, Any], str]]:
    """ana (red) kills bo (blue) 3x (1 headshot), bo kills ana once; all within 4 s."""
    evs = []
    kills = [
        ("ana", "RED", "bo", "BLUE", True),
        ("ana", "RED", "bo", "BLUE", False),
        ("ana", "RED", "bo", "BLUE", False),
        ("bo", "BLUE", "ana", "RED", False),
    ]
    for i, (a, ta, b, tb, hs) in enumerate(kills):
        t = t0 + 1000 + i * 1000
        for pid, team, kind, target, dmg in ((a, ta, "KILL", b, 100.0), (b, tb, "DEATH", a, 0.0)):
            evs.append(
                (
                    pid,
                    {
                        "event_id": f"{match}-{i}-{kind}",
                        "match_id": match,
                        "player_id": pid,
                        "team": team,
                        "event_type": kind,
                        "target_player_id": target,
                        "damage": dmg,
                        "headshot": hs and kind == "KILL",
                        "weapon": "rifle",
                        "event_time": t,
                        "platform": "PC",
                    },
                    "gaming.player-events",
                )
            )
    return evs


def sentinel(t: int) -> list[tuple[str, dict[str, Any], str]]:
    """Events far enough ahead to move every watermark past the scripted windows."""
    return [
        (
            "zed",
            {
                "event_id": f"sentinel-{t}",
                "match_id": "sentinel",
                "player_id": "zed",
                "team": "RED",
                "event_type": "SPAWN",
                "target_player_id": None,
                "damage": 0.0,
                "headshot": False,
                "weapon": "none",
                "event_time": t,
                "platform": "PC",
            },
            "gaming.player-events",
        ),
        (
            "home-x",
            {
                "event_id": f"sentinel-{t}",
                "home_id": "home-x",
                "device_id": "home-x-p",
                "room": "hall",
                "kind": "DOOR_CLOSE",
                "event_time": t,
            },
            "iot.security-events",
        ),
    ]


def as_dt(ms: int) -> datetime:
    """Epoch millis as clickhouse-connect returns DateTime64 values: naive UTC."""
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


class Pipeline:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.producer = AvroKafkaProducer(
            cfg,
            [
                "gaming.player-events",
                "iot.security-events",
                "web.access-logs",
                "iot.sensor-readings",
            ],
        )
        self.ch = clickhouse_connect.get_client(
            host="127.0.0.1",
            port=cfg.stack.clickhouse_port,
            username=credentials(cfg, "writer")[0],
            password=credentials(cfg, "writer")[1],
        )

    def send(self, events: list[tuple[str, dict[str, Any], str]]) -> None:
        # a simulated clock: each record reaches Kafka at its event time (its Kafka timestamp)
        for key, rec, topic in events:
            assert self.producer.send(key, rec, topic, timestamp=int(rec["event_time"]))
        assert self.producer.flush() == 0

    def load_until(self, sql: str, expect: int, timeout: float = 150) -> int:
        """Run the loader until `sql` (a count) reaches `expect`, then until idle."""
        deadline = time.monotonic() + timeout
        got = -1
        while time.monotonic() < deadline:
            Loader(self.cfg).run(until_idle=4)
            got = int(self.ch.command(sql.format(db=self.cfg.clickhouse.database)))  # type: ignore[arg-type]
            if got >= expect:
                return got
        return got

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return list(self.ch.query(sql.format(db=self.cfg.clickhouse.database)).result_rows)


@pytest.fixture(scope="module")
def pipeline(ensure_stack: Any, base_cfg: Config) -> Iterator[Pipeline]:
    ensure_stack("kafka", "registry", "clickhouse", "flink")
    stamp = int(time.time())
    cfg = base_cfg.derive(
        kafka={"topic_prefix": f"e2e{stamp}."}, clickhouse={"database": f"e2e{stamp}"}
    )
    ensure_topics(cfg)
    p = Pipeline(cfg)
    submit_jobs(cfg, ["player_stats", "security_alerts"])
    yield p
    rest = FlinkRest(cfg)
    for job in ("player_stats", "security_alerts"):
        for j in rest.running(job_name(cfg, job)):
            rest.cancel(j["jid"])
    p.ch.command(f"DROP DATABASE IF EXISTS {cfg.clickhouse.database}")


def test_scripted_match_and_intrusion_land_in_clickhouse_exactly(pipeline: Pipeline) -> None:
    pipeline.send(
        match_events(T0, "m1") + scenarios.intrusion(T0 + 2000) + sentinel(T0 + 10 * MINUTE)
    )
    # HOP 60 s / 10 s: events at T0+1..4 s fall into the 6 windows starting T0-50 s .. T0
    n = pipeline.load_until("SELECT count() FROM {db}.player_stats FINAL WHERE match_id = 'm1'", 12)
    assert n == 12
    got = pipeline.rows(
        "SELECT player_id, kills, deaths, headshots, damage, kd_ratio, count(), "
        "uniqExact(window_start) FROM {db}.player_stats WHERE match_id = 'm1' "
        "GROUP BY player_id, kills, deaths, headshots, damage, kd_ratio ORDER BY player_id"
    )
    assert got == [("ana", 3, 1, 1, 300.0, 3.0, 6, 6), ("bo", 1, 3, 0, 100.0, 1 / 3, 6, 6)]
    alerts = pipeline.load_until(
        "SELECT count() FROM {db}.alerts FINAL WHERE entity_id = 'home-demo'", 2
    )
    assert alerts == 2
    rows = pipeline.rows(
        "SELECT rule, severity, first_event_time, last_event_time, event_count, occurrences, "
        "version FROM {db}.alerts WHERE entity_id = 'home-demo' ORDER BY rule"
    )
    t0 = T0 + 2000
    # each rule matched once: two incidents, each opened and never updated
    assert rows == [
        ("door_open_while_armed", "CRITICAL", as_dt(t0), as_dt(t0 + 20_000), 2, 1, 1),
        ("motion_while_away", "WARNING", as_dt(t0), as_dt(t0 + 22_000), 3, 1, 1),
    ]
    # every raw security event also lands once
    assert (
        pipeline.load_until(
            "SELECT count() FROM {db}.security_events WHERE home_id = 'home-demo'", 4
        )
        == 4
    )


def steady_cheater(t0: int, seconds: int) -> list[tuple[str, dict[str, Any], str]]:
    """scenarios.cheater's player making one kill every second for `seconds` s from `t0`."""
    (key, template, topic) = scenarios.cheater(t0)[0]
    return [
        (key, {**template, "event_id": f"steady-{t0}-{i}", "event_time": t0 + i * 1000}, topic)
        for i in range(seconds)
    ]


def entity_sentinels(t: int, events: list[tuple[str, dict[str, Any], str]]) -> list[Any]:
    """One harmless record per (key, topic) of `events` at `t`: moves the watermark of every
    partition those events went to (a SPAWN for players, 0 W for power sensors)."""
    out: dict[tuple[str, str], Any] = {}
    for key, rec, topic in events:
        if topic == "gaming.player-events":
            rec = {**rec, "event_type": "SPAWN", "target_player_id": None, "damage": 0.0}
        elif topic == "iot.sensor-readings":
            rec = {**rec, "value": 0.0}
        out[(key, topic)] = (key, {**rec, "event_id": f"end-{t}-{key}", "event_time": t}, topic)
    return list(out.values())


def test_cheater_and_energy_spike_are_one_incident_each(pipeline: Pipeline) -> None:
    """Issue 14: a kill every second for 3 minutes is one impossible_kill_rate incident whose
    count grows (18 matches of 10 kills); a spike over two energy windows is one alert."""
    # between the first test's sentinel (T0 + 10 min) and the savepoint test's match (T0 + 20)
    t_cheat, t_spike = T0 + 11 * MINUTE, T0 + 15 * MINUTE + 30_000
    cheat = steady_cheater(t_cheat, 180)
    # Every partition these records go to has been idle since the first test. Partitions that
    # wake together can be read one after the other, and one's later records then move the
    # watermark past the other's unread ones (docs/event-time.md, idleness). So each scenario
    # is one key, in one partition, in event-time order, and closed by its own key's record;
    # no record goes to another partition (the first test's sentinel(): its partitions are idle).
    # A CI run once counted 27 of the spike's 28 readings with oven and heater keyed apart.
    spike = [(scenarios.DEMO_HOME, r, topic) for _, r, topic in scenarios.energy_spike(t_spike)]
    end = T0 + 19 * MINUTE
    pipeline.send(cheat + spike + entity_sentinels(end, cheat + spike))
    inc = (
        "SELECT alert_id, severity, first_event_time, last_event_time, event_count, occurrences, "
        "version FROM {db}.alert_incidents WHERE rule = '%s' AND entity_id = '%s'"
    )
    cheater_sql = inc % ("impossible_kill_rate", scenarios.CHEATER)
    n = pipeline.load_until(f"SELECT max(version) FROM ({cheater_sql})", 18)
    assert n == 18

    assert pipeline.rows(cheater_sql) == [
        (
            f"impossible_kill_rate:{scenarios.CHEATER}:{as_dt(t_cheat):%Y%m%d%H%M%S}000",
            "CRITICAL",
            as_dt(t_cheat),
            as_dt(t_cheat + 179_000),
            180,
            18,
            18,
        )
    ]
    # every update loaded (merged or not yet) carried that one id
    assert pipeline.rows(
        "SELECT uniqExact(alert_id), max(event_count) FROM {db}.alerts "
        f"WHERE rule = 'impossible_kill_rate' AND entity_id = '{scenarios.CHEATER}'"
    ) == [(1, 180)]
    spike_sql = inc % ("energy_over_threshold", scenarios.DEMO_HOME)
    assert pipeline.load_until(f"SELECT max(version) FROM ({spike_sql})", 2) == 2
    ((alert_id, _, first, last, events, occurrences, version),) = pipeline.rows(spike_sql)
    assert (alert_id, first, last, events, occurrences, version) == (
        f"energy_over_threshold:{scenarios.DEMO_HOME}:{as_dt(t_spike):%Y%m%d%H%M%S}000",
        as_dt(t_spike),
        as_dt(t_spike + 65_000),
        28,
        2,
        2,
    )
    assert pipeline.rows(
        "SELECT uniqExact(alert_id) FROM {db}.alerts WHERE rule = 'energy_over_threshold'"
    ) == [(1,)]
    # never detected before the event that made the detection possible
    assert pipeline.rows("SELECT count() FROM {db}.alerts WHERE detected_at < last_event_time") == [
        (0,)
    ]


def test_stop_with_savepoint_and_resume_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    """Through the CLI: `jobs cancel --savepoint`, then `jobs resume` picks that savepoint,
    with the deduplication the job was submitted with though the config now says otherwise
    (as when a default changes under a running job): Flink would refuse the restore else."""
    cfg = pipeline.cfg
    err: list[str] = []

    def cli(*args: str, sets: tuple[str, ...] = ()) -> str:
        argv = [sys.executable, "-m", "flinkpulse.cli", *sets, "jobs", *args, "player_stats",
                "--topic-prefix", cfg.kafka.topic_prefix]  # fmt: skip
        res = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        err.append(res.stderr)
        return res.stdout

    out = cli("cancel", "--savepoint")
    savepoint = out.split("stopped with savepoint ")[1].split()[0]
    assert not FlinkRest(cfg).running(job_name(cfg, "player_stats"))
    # while the job is down: a second match, later in event time
    t1 = T0 + 20 * MINUTE
    pipeline.send(match_events(t1, "m2") + sentinel(t1 + 10 * MINUTE))
    submitted = cfg.flink.dedup_state
    other = "ttl" if submitted != "ttl" else "watermark"
    out = cli("resume", sets=("--set", f"flink.dedup_state={other}"))
    assert f"from {savepoint.removeprefix('file:')}" in out, out
    assert f"resumes with flink.dedup_state={submitted!r}, as it was submitted" in err[-1]
    n = pipeline.load_until(
        "SELECT count() FROM {db}.player_stats FINAL WHERE match_id IN ('m1', 'm2')", 24
    )
    assert n == 24
    # no window result lost or duplicated downstream: every (window, player) exactly once
    dup = pipeline.rows(
        "SELECT count(), uniqExact(window_start, player_id) FROM {db}.player_stats "
        "WHERE match_id IN ('m1', 'm2')"
    )
    assert dup == [(24, 24)]
    m2 = pipeline.rows(
        "SELECT player_id, kills, deaths, count() FROM {db}.player_stats WHERE match_id = 'm2' "
        "GROUP BY player_id, kills, deaths ORDER BY player_id"
    )
    assert m2 == [("ana", 3, 1, 6), ("bo", 1, 3, 6)]


def test_sql_client_reads_a_live_topic(pipeline: Pipeline, tmp_path: Any) -> None:
    script = tmp_path / "q.sql"
    script.write_text(
        # bounded at the offsets of "now": an ad-hoc query on a live topic that ends by itself
        "SELECT player_id, event_type FROM player_events "
        "/*+ OPTIONS('scan.bounded.mode'='latest-offset') */ "
        "WHERE match_id = 'm1' AND event_type = 'KILL' AND player_id = 'bo';\n"
    )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "flinkpulse",
            "sql",
            "-f",
            str(script),
            "--topic-prefix",
            pipeline.cfg.kafka.topic_prefix,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rows = [ln for ln in res.stdout.splitlines() if ln.startswith("| +I")]
    assert len(rows) == 1 and "bo" in rows[0] and "KILL" in rows[0], res.stdout[-2000:]
