"""Query tests: scripted rows with event times through the jobs' own .sql files (local Flink).

Each test asserts exact results: K/D and leaderboard of a scripted match, kWh of a known
power profile, p95 latency of known latencies, countries of known IPs, every alert rule
firing exactly once on its scripted sequence and never on benign traffic of the same shape,
and alerts as incidents: repeats update one alert_id until an inactivity gap closes it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flink_jobs import device_stats, player_stats, security_alerts, web_traffic
from flinkpulse.topics import DEVICES_TOPIC, PLAYERS_TOPIC
from producers import scenarios
from tests.query_harness import make_env, register_input, register_reference, run_views

pytestmark = pytest.mark.flink_local

T0 = datetime(2026, 3, 1, 12, 0, 0)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def pe(
    i: int,
    t: float,
    player: str,
    team: str,
    kind: str,
    target: str | None = None,
    dmg: float = 0.0,
    hs: bool = False,
    match: str = "m1",
) -> dict[str, Any]:
    return dict(
        event_id=f"e{i}",
        match_id=match,
        player_id=player,
        team=team,
        event_type=kind,
        target_player_id=target,
        damage=dmg,
        headshot=hs,
        weapon="rifle",
        event_time=at(t),
        platform=None,
    )


def scripted_match() -> list[dict[str, Any]]:
    """ana (red) kills bo (blue) 3x (1 headshot), bo kills ana once, cy (red) kills bo once."""
    evs, i = [], 0
    for t, (a, ta, b, tb, hs) in enumerate(
        [
            ("ana", "red", "bo", "blue", True),
            ("ana", "red", "bo", "blue", False),
            ("ana", "red", "bo", "blue", False),
            ("bo", "blue", "ana", "red", False),
            ("cy", "red", "bo", "blue", False),
        ],
        start=1,
    ):
        i += 2
        evs.append(pe(i, t, a, ta, "KILL", b, 100.0, hs))
        evs.append(pe(i + 1, t, b, tb, "DEATH", a))
    evs.append(pe(99, 6, "cy", "red", "ASSIST", "bo"))
    return evs


@pytest.mark.parametrize("parallelism", [1, 2])
def test_player_stats_kd_ratio_and_leaderboard(parallelism: int) -> None:
    t_env = make_env(parallelism)
    register_input(t_env, "player_events", "flinkpulse.gaming.PlayerEvent", scripted_match())
    register_players(t_env, [])
    params = {**player_stats.DEFAULTS, "window_size_s": 20, "window_slide_s": 10}
    out = run_views(
        t_env, "player_stats.sql", params, ["player_stats", "team_stats", "leaderboard"]
    )
    # events at 12:00:01..06 fall in HOP windows [11:59:50, 12:00:10) and [12:00:00, 12:00:20)
    ps = {(r["window_start"], r["player_id"]): r for r in out["player_stats"]}
    assert len(ps) == 6
    for ws in (at(-10), at(0)):
        assert (
            ps[(ws, "ana")]["kills"],
            ps[(ws, "ana")]["deaths"],
            ps[(ws, "ana")]["kd_ratio"],
        ) == (3, 1, 3.0)
        assert ps[(ws, "ana")]["headshots"] == 1 and ps[(ws, "ana")]["damage"] == 300.0
        assert (ps[(ws, "bo")]["kills"], ps[(ws, "bo")]["deaths"]) == (1, 4)
        assert ps[(ws, "bo")]["kd_ratio"] == 0.25
        assert ps[(ws, "cy")]["kd_ratio"] == 1.0  # 1 kill, 0 deaths -> as if 1 death
        assert ps[(ws, "cy")]["assists"] == 1
    teams = {(r["window_start"], r["team"]): r for r in out["team_stats"]}
    assert (
        teams[(at(0), "red")]["kills"],
        teams[(at(0), "red")]["deaths"],
        teams[(at(0), "red")]["players"],
    ) == (4, 1, 2)
    assert teams[(at(0), "blue")]["kd_ratio"] == 0.25
    board = sorted(
        (r["rank"], r["player_id"], r["score"])
        for r in out["leaderboard"]
        if r["window_start"] == at(0)
    )
    # score = 100*kills + 50*assists + 25*headshots + damage/10 - 30*deaths
    assert board == [
        (1, "ana", 300 + 25 + 30 - 30),
        (2, "cy", 100 + 50 + 10),
        (3, "bo", 100 + 10 - 120),
    ]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_player_windows_carry_the_profile_in_force_at_their_end(parallelism: int) -> None:
    """Issue 22: ana plays in eu-west as gold and is promoted to platinum at 12:00:15; bo has
    no profile. The HOP windows (20 s, slide 10 s) of the scripted match end at 12:00:10 (before
    the promotion: gold) and 12:00:20 (after it: platinum), at any parallelism; the promotion
    changes no count, no team row and no leaderboard rank."""
    t_env = make_env(parallelism)
    register_input(t_env, "player_events", "flinkpulse.gaming.PlayerEvent", scripted_match())
    register_players(t_env, [profile(-60, "ana", "eu-west", "gold"),
                             profile(-60, "cy", "na-east", "silver"),
                             profile(15, "ana", "eu-west", "platinum")])  # fmt: skip
    params = {**player_stats.DEFAULTS, "window_size_s": 20, "window_slide_s": 10}
    out = run_views(t_env, "player_stats.sql", params, ["player_stats", "leaderboard"])
    got = sorted(
        (r["window_end"], r["player_id"], r["region"], r["skill_tier"], r["kills"])
        for r in out["player_stats"]
    )
    assert got == [
        (at(10), "ana", "eu-west", "gold", 3),
        (at(10), "bo", None, None, 1),
        (at(10), "cy", "na-east", "silver", 1),
        (at(20), "ana", "eu-west", "platinum", 3),
        (at(20), "bo", None, None, 1),
        (at(20), "cy", "na-east", "silver", 1),
    ]
    board = sorted((r["window_end"], r["rank"], r["player_id"]) for r in out["leaderboard"])
    assert board == [(at(e), k, p) for e in (10, 20) for k, p in enumerate(("ana", "cy", "bo"), 1)]


def profile(t: float, player: str, region: str, tier: str) -> dict[str, Any]:
    """Player `player`'s profile from `t` on (as `flinkpulse produce gaming` writes it)."""
    return dict(player_id=player, region=region, skill_tier=tier, updated_at=at(t))


def sr(
    t: float,
    device: str,
    home: str,
    stype: str,
    value: float,
    appliance: str | None = None,
    room: str = "kitchen",
    unit: str = "W",
) -> dict[str, Any]:
    return dict(
        device_id=device,
        home_id=home,
        room=room,
        sensor_type=stype,
        value=value,
        unit=unit,
        appliance=appliance,
        event_time=at(t),
    )


@pytest.mark.parametrize("parallelism", [1, 2])
def test_device_stats_and_energy_of_known_power_profile(parallelism: int) -> None:
    rows = [sr(t, "plug-1", "h1", "POWER", 1000.0, "heater") for t in range(0, 60, 10)]
    rows += [
        sr(t, "plug-2", "h1", "POWER", 200.0 if t < 30 else 400.0, "fridge")
        for t in range(0, 60, 10)
    ]
    rows += [
        sr(t, "th-1", "h1", "TEMPERATURE", v, None, "living", "C")
        for t, v in [(5, 20.0), (15, 21.0), (25, 22.5)]
    ]
    t_env = make_env(parallelism)
    register_input(t_env, "sensor_readings", "flinkpulse.iot.SensorReading", rows)
    register_devices(t_env, [])
    params = {**device_stats.DEFAULTS, "window_size_s": 60, "window_slide_s": 60}
    out = run_views(t_env, "device_stats.sql", params, ["device_stats", "energy_usage"])
    ds = {(r["device_id"], r["sensor_type"]): r for r in out["device_stats"]}
    th = ds[("th-1", "TEMPERATURE")]
    assert (th["samples"], th["min_value"], th["max_value"], th["last_value"]) == (
        3,
        20.0,
        22.5,
        22.5,
    )
    assert th["avg_value"] == pytest.approx(63.5 / 3)
    energy = {r["appliance"]: r for r in out["energy_usage"]}
    # heater: 1000 W for the 50 s between its first and last sample = 50,000 J
    assert energy["heater"]["kwh"] == pytest.approx(1000 * 50 / 3.6e6, rel=1e-12)
    # fridge: 200 W for 20 s, a 200->400 ramp for 10 s (300 W avg), 400 W for 20 s
    assert energy["fridge"]["kwh"] == pytest.approx(
        (200 * 20 + 300 * 10 + 400 * 20) / 3.6e6, rel=1e-12
    )
    assert energy["fridge"]["max_power_w"] == 400.0


def register_devices(t_env: Any, rows: list[dict[str, Any]]) -> None:
    """`rows` (device assignments) as the job's device_changes, and the versioned `devices`."""
    register_reference(t_env, DEVICES_TOPIC, "device_changes", rows)


def register_players(t_env: Any, rows: list[dict[str, Any]]) -> None:
    """`rows` (player profiles) as the job's player_changes, and the versioned `players`."""
    register_reference(t_env, PLAYERS_TOPIC, "player_changes", rows)


def assign(t: float, device: str, home: str, room: str, owner: str) -> dict[str, Any]:
    """Device `device` installed in `home`/`room` at `t` (as `flinkpulse produce iot` writes it)."""
    return dict(device_id=device, home_id=home, room=room, owner=owner, updated_at=at(t))


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_moved_device_is_attributed_to_its_room_before_and_after_the_move(
    parallelism: int,
) -> None:
    """Issue 22: plug-1 reads 100 W every 10 s from 12:00:00 to 12:02:50; it is installed in
    h1's kitchen at 11:59 and moved to h2's bedroom at 12:01:25 (its readings still say kitchen).
    Every reading before the move counts for the kitchen of h1, every one from it on for the
    bedroom of h2: the 60 s windows [12:00, 12:01) and [12:02, 12:03) have one row each, the
    window of the move [12:01, 12:02) two (9 readings before, 3 after), and energy follows the
    home. th-9 is in no reference table: it keeps what its readings say."""
    rows = [sr(t, "plug-1", "h1", "POWER", 100.0 + t, "heater") for t in range(0, 180, 10)]
    rows += [sr(t, "th-9", "h3", "TEMPERATURE", 20.0, None, "hall", "C") for t in (5, 65)]
    changes = [
        assign(-60, "plug-1", "h1", "kitchen", "ann"),
        assign(85, "plug-1", "h2", "bedroom", "bob"),
    ]
    t_env = make_env(parallelism)
    register_input(t_env, "sensor_readings", "flinkpulse.iot.SensorReading", rows)
    register_devices(t_env, changes)
    params = {**device_stats.DEFAULTS, "window_size_s": 60, "window_slide_s": 60}
    out = run_views(t_env, "device_stats.sql", params, ["device_stats", "energy_usage"])
    got = sorted(
        (r["window_start"], r["device_id"], r["home_id"], r["room"], r["owner"], r["assigned_at"],
         r["samples"], r["min_value"], r["max_value"], r["last_value"])
        for r in out["device_stats"]
    )  # fmt: skip
    epoch = datetime(1970, 1, 1)
    assert got == [
        (at(0), "plug-1", "h1", "kitchen", "ann", at(-60), 6, 100.0, 150.0, 150.0),
        (at(0), "th-9", "h3", "hall", None, epoch, 1, 20.0, 20.0, 20.0),
        (at(60), "plug-1", "h1", "kitchen", "ann", at(-60), 3, 160.0, 180.0, 180.0),
        (at(60), "plug-1", "h2", "bedroom", "bob", at(85), 3, 190.0, 210.0, 210.0),
        (at(60), "th-9", "h3", "hall", None, epoch, 1, 20.0, 20.0, 20.0),
        (at(120), "plug-1", "h2", "bedroom", "bob", at(85), 6, 220.0, 270.0, 270.0),
    ]
    energy = sorted(
        (r["window_start"], r["home_id"], r["avg_power_w"]) for r in out["energy_usage"]
    )
    assert energy == [
        (at(0), "h1", 125.0),
        (at(60), "h1", 170.0),
        (at(60), "h2", 200.0),
        (at(120), "h2", 245.0),
    ]


def al(
    i: int,
    t: float,
    ip: str,
    path: str = "/",
    status: int = 200,
    latency: float = 10.0,
    method: str = "GET",
    user: str | None = None,
    ua: str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
) -> dict[str, Any]:
    return dict(
        event_id=f"w{i}",
        client_ip=ip,
        user_id=user,
        session_id="s",
        method=method,
        path=path,
        status=status,
        bytes=100,
        latency_ms=latency,
        user_agent=ua,
        referrer=None,
        event_time=at(t),
    )


@pytest.mark.parametrize("parallelism", [1, 2])
def test_web_traffic_percentiles_and_client_country(parallelism: int) -> None:
    rows = [al(i, i * 0.1, "8.8.8.8", "/product/42", 200, float(i)) for i in range(1, 101)]
    rows += [al(200 + i, 11 + i, "8.8.8.8", "/product/7", 500, 1.0) for i in range(5)]
    t_env = make_env(parallelism)
    register_input(t_env, "access_logs", "flinkpulse.web.AccessLog", rows)
    params = {**web_traffic.DEFAULTS, "window_size_s": 60, "window_slide_s": 60}
    out = run_views(t_env, "web_traffic.sql", params, web_traffic.OUTPUTS)
    wt = {(r["path"], r["status"]): r for r in out["web_traffic"]}
    ok = wt[("/product/{id}", 200)]
    assert ok["requests"] == 100 and ok["errors"] == 0
    assert ok["latency_p50"] == pytest.approx(50.5) and ok["latency_p95"] == pytest.approx(95.05)
    assert wt[("/product/{id}", 500)]["error_rate"] == 1.0
    # the path's own p95 over all 105 latencies (1..100 and five 1.0 ms errors), interpolated
    # at 0.95 * 104 = 98.8: between the 99th (94) and 100th (95) smallest
    (path,) = out["path_latency"]
    assert (path["path"], path["requests"], path["errors"]) == ("/product/{id}", 105, 5)
    assert path["latency_p95"] == pytest.approx(94.8) and path["latency_p50"] == pytest.approx(48.0)
    (client,) = out["client_activity"]
    assert (client["country"], client["browser"], client["device"]) == ("US", "Chrome", "desktop")
    assert (client["requests"], client["errors"]) == (105, 5)


def se(
    i: int, t: float, home: str, kind: str, device: str = "door-1", room: str = "hall"
) -> dict[str, Any]:
    return dict(
        event_id=f"s{i}", home_id=home, device_id=device, room=room, kind=kind, event_time=at(t)
    )


def scripted_alerts_input() -> dict[str, list[dict[str, Any]]]:
    """Every rule's scripted incident and benign traffic of the same shape, per source view."""
    sec = [
        # h1: armed, door opens -> door_open_while_armed once; then motion -> motion_while_away once
        se(1, 0, "h1", "ARM_AWAY"),
        se(2, 30, "h1", "DOOR_OPEN"),
        se(3, 31, "h1", "MOTION", "pir-1"),
        se(4, 60, "h1", "DISARM"),
        # h2 (benign, same shape): disarmed before the door opens and motion happens
        se(5, 0, "h2", "ARM_AWAY"),
        se(6, 20, "h2", "DISARM"),
        se(7, 30, "h2", "DOOR_OPEN"),
        se(8, 31, "h2", "MOTION", "pir-2"),
    ]
    web = []
    # attacker: 6 failures then success within 60 s -> one alert
    web += [al(i, i * 5, "5.5.5.5", "/login", 401, method="POST", user="bob") for i in range(6)]
    web += [al(10, 40, "5.5.5.5", "/login", 200, method="POST", user="bob")]
    # benign: 4 failures then success (below the threshold), and 6 failures spread over 10 min
    web += [al(20 + i, i * 5, "9.9.9.9", "/login", 401, method="POST") for i in range(4)]
    web += [al(30, 30, "9.9.9.9", "/login", 200, method="POST")]
    web += [al(40 + i, i * 100, "7.7.7.7", "/login", 401, method="POST") for i in range(6)]
    web += [al(50, 700, "7.7.7.7", "/login", 200, method="POST")]
    games = [
        pe(100 + i, i * 0.5, "cheat", "red", "KILL", "v", 100.0) for i in range(10)
    ]  # 10 in 4.5 s
    games += [
        pe(200 + i, i * 2.0, "pro", "blue", "KILL", "v", 100.0) for i in range(10)
    ]  # 10 in 18 s
    power = [sr(t, "oven-1", "h3", "POWER", 5000.0, "oven") for t in range(0, 60, 10)]
    power += [sr(t, "heat-1", "h3", "POWER", 3000.0, "heater") for t in range(0, 60, 10)]
    power += [sr(t, "oven-2", "h4", "POWER", 5000.0, "oven") for t in range(0, 60, 10)]  # under
    # what the rules must not see as theirs: other event types, pages, methods and sensors
    games += [pe(300 + i, i * 0.5, "medic", "red", "ASSIST", "v", 0.0) for i in range(12)]
    web += [al(60 + i, i * 2, "6.6.6.6", "/login", 401) for i in range(6)]  # GET /login
    web += [al(70, 14, "6.6.6.6", "/login", 200)]
    web += [al(80 + i, i * 2, "4.4.4.4", "/api/login", 401, method="POST") for i in range(6)]
    web += [al(90, 14, "4.4.4.4", "/api/login", 200, method="POST")]
    power += [sr(t, "oven-1", "h3", "TEMPERATURE", 9000.0, "oven") for t in range(0, 60, 10)]
    return {
        "security_events_in": sec,
        "access_logs": web,
        "player_events": games,
        "sensor_readings": power,
    }


@pytest.mark.parametrize("parallelism", [1, 2])
def test_alert_rules_fire_once_and_never_on_benign_traffic(parallelism: int) -> None:
    inputs = scripted_alerts_input()
    sec = inputs["security_events_in"]
    t_env = make_env(parallelism)
    for view, rows in inputs.items():
        register_input(t_env, view, ALERT_SOURCES[view], rows)
    register_rules(t_env, [])
    register_devices(t_env, [])
    out = run_views(
        t_env, "security_alerts.sql", dict(security_alerts.DEFAULTS), ["alerts", "security_events"]
    )
    got = sorted((a["rule"], a["entity_id"]) for a in out["alerts"])
    # one match per rule: each incident is opened and never updated
    assert {(a["occurrences"], a["version"]) for a in out["alerts"]} == {(1, 1)}
    assert got == [
        ("brute_force_login", "5.5.5.5"),
        ("door_open_while_armed", "h1"),
        ("energy_over_threshold", "h3"),
        ("impossible_kill_rate", "cheat"),
        ("motion_while_away", "h1"),
    ]
    by_rule = {a["rule"]: a for a in out["alerts"]}
    bf = by_rule["brute_force_login"]
    assert (bf["event_count"], bf["first_event_time"], bf["last_event_time"]) == (7, at(0), at(40))
    assert bf["attributes"]["failures"] == "6"
    assert bf["alert_id"] == "brute_force_login:5.5.5.5:20260301120000000"
    door = by_rule["door_open_while_armed"]
    assert (door["first_event_time"], door["last_event_time"], door["severity"]) == (
        at(0),
        at(30),
        "CRITICAL",
    )
    assert by_rule["impossible_kill_rate"]["event_count"] == 10
    assert by_rule["energy_over_threshold"]["attributes"]["total_w"] == "8000.0"
    assert len(out["security_events"]) == len(sec)


RULE_CHANGE = "flinkpulse.rules.RuleChange"
ALERT_SOURCES = {
    "security_events_in": "flinkpulse.iot.SecurityEvent",
    "access_logs": "flinkpulse.web.AccessLog",
    "player_events": "flinkpulse.gaming.PlayerEvent",
    "sensor_readings": "flinkpulse.iot.SensorReading",
}


def test_alerts_view_is_the_alert_contract() -> None:
    """The job writes `alerts` with the newest avro_schemas/ Alert: same fields in the same
    order, none nullable (Flink refuses to submit the job otherwise)."""
    from flink_jobs.common import JobContext, run_sql_file
    from flinkpulse.config import Config
    from flinkpulse.schemas import latest_schema
    from udfs.flink import register_all

    t_env = make_env()
    for view, record in ALERT_SOURCES.items():
        register_input(t_env, view, record, [])
    register_rules(t_env, [])
    register_devices(t_env, [])
    register_all(t_env)
    ctx = JobContext(cfg=Config().finalize(), t_env=t_env, job="test")
    run_sql_file(ctx, "security_alerts.sql", dict(security_alerts.DEFAULTS))
    schema = t_env.from_path("alerts").get_schema()
    contract = [f["name"] for f in latest_schema("flinkpulse.alerts.Alert")["fields"]]
    assert schema.get_field_names() == contract
    nullable = [
        n for n, t in zip(contract, schema.get_field_data_types(), strict=True) if t._nullable
    ]
    assert nullable == []


def test_what_security_alerts_reads_of_other_jobs_topics_gives_the_same_alerts() -> None:
    """`security_alerts.NEEDS` (flink.source_needs): with only those fields of the three other
    jobs' sources, and only the records their predicates keep, the SQL still plans and every
    alert of the scripted incidents is the same, field for field."""
    inputs = scripted_alerts_input()
    out = {}
    for pruned in (False, True):
        t_env = make_env()
        for view, rows in inputs.items():
            needs = security_alerts.NEEDS.get(view) if pruned else None
            register_input(t_env, view, ALERT_SOURCES[view], rows, needs=needs)
        register_rules(t_env, [])
        register_devices(t_env, [])
        params = dict(security_alerts.DEFAULTS)
        alerts = run_views(t_env, "security_alerts.sql", params, ["alerts"])["alerts"]
        # every field but detected_at, the wall-clock time the alert was made
        out[pruned] = sorted(
            ({k: v for k, v in a.items() if k != "detected_at"} for a in alerts),
            key=lambda a: a["alert_id"],
        )
    assert len(out[False]) == 5
    assert out[True] == out[False]
    assert set(security_alerts.NEEDS) == {"access_logs", "player_events", "sensor_readings"}


def register_rules(t_env: Any, rows: list[dict[str, Any]]) -> None:
    """`rows` (rule changes) as the job's rule_changes source, versioned by changed_at."""
    register_input(t_env, "rule_changes", RULE_CHANGE, rows, time_field="changed_at")


def alert_run(parallelism: int, **inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts view for `inputs` (view -> rows; the other sources and rule_changes empty),
    default params."""
    t_env = make_env(parallelism)
    for view, record in ALERT_SOURCES.items():
        register_input(t_env, view, record, inputs.get(view, []))
    register_rules(t_env, inputs.get("rule_changes", []))
    register_devices(t_env, inputs.get("device_changes", []))
    out = run_views(t_env, "security_alerts.sql", dict(security_alerts.DEFAULTS), ["alerts"])
    return out["alerts"]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_security_event_log_is_the_events_as_they_are(parallelism: int) -> None:
    """The security event log passes each event through as it came, without the devices
    reference table: an event-time temporal join would hold a quiet home's last event back until
    its next one (docs/techniques.md), and a log must show an event when it happens."""
    sec = [se(1, 10, "h1", "DOOR_OPEN"), se(2, 29.999, "h1", "DOOR_CLOSE"),
           se(3, 30, "h1", "DOOR_OPEN"), se(4, 40, "h1", "MOTION", "pir-7", "living")]  # fmt: skip
    changes = [assign(0, "door-1", "h1", "hallway", "ann")]
    t_env = make_env(parallelism)
    for view, record in ALERT_SOURCES.items():
        register_input(t_env, view, record, sec if view == "security_events_in" else [])
    register_rules(t_env, [])
    register_devices(t_env, changes)
    params = dict(security_alerts.DEFAULTS)
    (log,) = run_views(t_env, "security_alerts.sql", params, ["security_events"]).values()
    assert all("owner" not in r for r in log)
    assert sorted((r["event_id"], r["device_id"], r["room"], r["kind"]) for r in log) == [
        ("s1", "door-1", "hall", "DOOR_OPEN"),
        ("s2", "door-1", "hall", "DOOR_CLOSE"),
        ("s3", "door-1", "hall", "DOOR_OPEN"),
        ("s4", "pir-7", "living", "MOTION"),
    ]


def incidents(alerts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """alert_id -> its updates in version order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for a in sorted(alerts, key=lambda a: (a["alert_id"], a["version"])):
        out.setdefault(a["alert_id"], []).append(a)
    return out


@pytest.mark.parametrize("parallelism", [1, 2])
def test_cheater_for_three_minutes_is_one_incident_that_grows(parallelism: int) -> None:
    # a kill every second for 3 minutes: 18 matches of 10 kills, 1 s apart (gap 60 s)
    cheat = [pe(i, i, "cheat", "red", "KILL", "v", 100.0) for i in range(180)]
    # two bursts of 10 kills 5 minutes apart: the gap closes the first incident
    bursts = [pe(1000 + i, i * 0.5, "twice", "blue", "KILL", "v") for i in range(10)]
    bursts += [pe(2000 + i, 300 + i * 0.5, "twice", "blue", "KILL", "v") for i in range(10)]
    # 10 kills in 20 s: never a match, never an incident
    pro = [pe(3000 + i, i * 2.0, "pro", "blue", "KILL", "v") for i in range(10)]
    got = incidents(alert_run(parallelism, player_events=cheat + bursts + pro))
    assert sorted(got) == [
        "impossible_kill_rate:cheat:20260301120000000",
        "impossible_kill_rate:twice:20260301120000000",
        "impossible_kill_rate:twice:20260301120500000",
    ]
    ups = got["impossible_kill_rate:cheat:20260301120000000"]
    n = 18
    assert [a["version"] for a in ups] == list(range(1, n + 1))
    assert [a["occurrences"] for a in ups] == list(range(1, n + 1))
    assert [a["event_count"] for a in ups] == [10 * k for k in range(1, n + 1)]
    assert [a["last_event_time"] for a in ups] == [at(10 * k - 1) for k in range(1, n + 1)]
    assert {a["first_event_time"] for a in ups} == {at(0)}
    esc = security_alerts.DEFAULTS["incident_escalate_after"]
    assert [a["severity"] for a in ups] == ["WARNING"] * (esc - 1) + ["CRITICAL"] * (n - esc + 1)
    assert ups[-1]["summary"].endswith(f"[{n} matches since 12:00:00 UTC]")
    assert all(a["detected_at"] >= a["last_event_time"] for a in ups)
    twice = [got[k] for k in sorted(got) if ":twice:" in k]
    assert [[(a["version"], a["event_count"]) for a in ups] for ups in twice] == [
        [(1, 10)],
        [(1, 10)],
    ]


def spike_rows(t0: datetime) -> list[dict[str, Any]]:
    """producers.scenarios.energy_spike at `t0`, as sensor rows with datetime event times."""
    ms = int(t0.replace(tzinfo=UTC).timestamp() * 1000)
    rows = []
    for _, value, _topic in scenarios.energy_spike(ms):
        t = datetime.fromtimestamp(value["event_time"] / 1000, UTC).replace(tzinfo=None)
        rows.append({**value, "event_time": t})
    return rows


@pytest.mark.parametrize("parallelism", [1, 2])
def test_energy_spike_across_two_windows_is_one_incident(parallelism: int) -> None:
    # the 70 s spike from 12:00:30 covers the 60 s windows [12:00, 12:01) and [12:01, 12:02)
    rows = spike_rows(at(30))
    last = max(r["event_time"] for r in rows)
    got = incidents(alert_run(parallelism, sensor_readings=rows))
    assert list(got) == ["energy_over_threshold:home-demo:20260301120030000"]
    (ups,) = got.values()
    assert [(a["version"], a["occurrences"]) for a in ups] == [(1, 1), (2, 2)]
    assert [a["last_event_time"] for a in ups] == [at(55), last]
    assert [a["event_count"] for a in ups] == [12, len(rows)] == [12, 28]
    assert {a["first_event_time"] for a in ups} == {at(30)}
    # each window reported once, complete (after it closed): 12 readings, then 16 more
    assert all(a["detected_at"] >= a["last_event_time"] for a in ups)


def test_windows_of_100_seconds_and_more_are_valid_sql() -> None:
    """`INTERVAL '300' SECOND` is a parse error (SECOND's default leading precision is 2
    digits): every interval parameter of the SQL files takes SECOND(6), so a 5-minute window
    is a setting, not a failed submission."""
    rows = [sr(t, "th-1", "h1", "TEMPERATURE", 20.0 + t / 100, None, "living", "C")
            for t in range(0, 300, 30)]  # fmt: skip
    t_env = make_env(1)
    register_input(t_env, "sensor_readings", "flinkpulse.iot.SensorReading", rows)
    register_devices(t_env, [])
    params = {**device_stats.DEFAULTS, "window_size_s": 300, "window_slide_s": 150}
    out = run_views(t_env, "device_stats.sql", params, ["device_stats"])
    windows = sorted((r["window_end"], r["samples"]) for r in out["device_stats"])
    assert [n for _, n in windows] == [5, 10, 5]


def rule(t: float, rule: str, scope: str, value: float | None) -> dict[str, Any]:
    """A change of a live rule parameter at `t` (as `flinkpulse rules set` writes it)."""
    param = {"energy_over_threshold": "watts", "brute_force_login": "count"}[rule]
    return dict(
        rule=rule, scope=scope, param=param, value=value, previous=None, changed_by="test",
        reason=None, changed_at=at(t),
    )  # fmt: skip


def flat_spike(t0: float, home: str, watts: float) -> list[dict[str, Any]]:
    """One device of `home` drawing `watts` for the minute from `t0` (a reading every 10 s)."""
    return [sr(t0 + t, f"{home}-oven", home, "POWER", watts, "oven") for t in range(0, 60, 10)]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_live_rule_changes_apply_from_their_time_per_entity_with_global_fallback(
    parallelism: int,
) -> None:
    """Issue 22, one run. Energy: the same 5000 W minute (below the default 7000 W) in h1 and
    h2, four times. h1's threshold is lowered to 4000 W at 12:01:30: the minute before gives no
    alert, the one after does, for h1 only. A global 3000 W at 12:03:30 then catches h2, while
    h1's own 6000 W (set at the same time) wins over global for h1; removing h1's setting falls
    back to global. Brute force: 3 failures then a success from two IPs, before and after the
    count is lowered to 3 (default 5) for one IP only: one alert, that IP's, after the change."""
    power: list[dict[str, Any]] = []
    for home in ("h1", "h2"):
        for start in (0, 120, 240, 360):
            power += flat_spike(start, home, 5000.0)
    web = []
    for k, start in enumerate((0, 200)):
        for n, ip in enumerate(("5.5.5.5", "6.6.6.6")):
            base = 1000 * k + 100 * n
            web += [al(base + i, start + i * 5, ip, "/login", 401, method="POST") for i in range(3)]
            web += [al(base + 9, start + 20, ip, "/login", 200, method="POST", user="bob")]
    changes = [
        rule(90, "energy_over_threshold", "home:h1", 4000.0),
        rule(100, "brute_force_login", "ip:5.5.5.5", 3.0),
        rule(210, "energy_over_threshold", "global", 3000.0),
        rule(210, "energy_over_threshold", "home:h1", 6000.0),
        rule(330, "energy_over_threshold", "home:h1", None),
    ]
    alerts = alert_run(parallelism, sensor_readings=power, access_logs=web, rule_changes=changes)
    energy = sorted(
        (a["entity_id"], a["first_event_time"], a["attributes"]["threshold_w"])
        for a in alerts
        if a["rule"] == "energy_over_threshold"
    )
    assert energy == [
        ("h1", at(120), "4000.0"),  # lowered: alerts (its window ends after the change)
        ("h1", at(360), "3000.0"),  # h1's own setting removed: global
        ("h2", at(240), "3000.0"),  # global lowered
        ("h2", at(360), "3000.0"),
    ]
    (h1,) = [a for a in alerts if a["entity_id"] == "h1" and a["first_event_time"] == at(120)]
    assert h1["summary"] == "Home h1 drew 5000 W on average (threshold 4000 W)"
    logins = [
        (a["entity_id"], a["last_event_time"], a["attributes"]["min_failures"])
        for a in alerts
        if a["rule"] == "brute_force_login"
    ]
    assert logins == [("5.5.5.5", at(220), "3")]
