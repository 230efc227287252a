"""Known pipeline results for the report and notebook tests: rows as the loader would insert
them into ClickHouse, with the figures they must give (tests/integration/test_report.py,
test_notebooks.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from flinkpulse.clickhouse.migrate import client, migrate
from flinkpulse.config import Config
from flinkpulse.report.queries import LOADED_TABLES

#: how long after its time each row reached ClickHouse (the report's loader lag)
LOAD_LAG = timedelta(seconds=2.5)
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
FROM, TO = "2026-11-29T10:00:00", "2026-11-29T11:00:00"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def win(start_min: float, size_s: int = 60) -> dict[str, Any]:
    s = at(start_min)
    return {"window_start": s, "window_end": s + timedelta(seconds=size_s)}


def alert(aid: str, rule: str, entity: str, t_min: float, version: int = 1, **kw: Any) -> dict:
    t = at(t_min)
    return {
        "alert_id": aid,
        "rule": rule,
        "severity": kw.get("severity", "WARNING"),
        "entity_type": kw.get("entity_type", "client_ip"),
        "entity_id": entity,
        "summary": kw.get("summary", f"{rule} on {entity}"),
        "event_count": kw.get("event_count", 1),
        "first_event_time": t - timedelta(seconds=30),
        "last_event_time": t,
        "detected_at": t + timedelta(seconds=2),
        "attributes": {},
        "occurrences": version,
        "version": version,
    }


def jm(t_min: float, job: str, run: str, records_in: int, rate: float, lag: int) -> dict:
    """A job_metrics sample: the job writes one record for every two it reads."""
    return {
        "sampled_at": at(t_min),
        "job": job,
        "job_id": run,
        "state": "RUNNING",
        "records_in": records_in,
        "records_out": records_in // 2,
        "records_in_per_s": rate,
        "records_out_per_s": rate / 2,
        "lag": lag,
    }


def temp(start_min: float, avg: float, lo: float, hi: float, last: float) -> dict[str, Any]:
    """A kitchen temperature window of two samples."""
    return {
        **win(start_min),
        **{"device_id": "t1", "home_id": "h1", "room": "kitchen", "sensor_type": "TEMPERATURE"},
        **{"unit": "C", "samples": 2, "avg_value": avg, "min_value": lo, "max_value": hi},
        "last_value": last,
    }


ROWS: dict[str, list[dict[str, Any]]] = {
    "alerts": [
        alert("bf1", "brute_force_login", "203.0.113.7", 5, summary="7 failed logins then ok"),
        alert("bf2", "brute_force_login", "198.51.100.9", 20),
        # one incident updated: two versions, counted once, newest state
        alert("door1", "door_open_while_armed", "h1", 10, entity_type="home"),
        alert(
            "door1",
            "door_open_while_armed",
            "h1",
            12,
            version=2,
            entity_type="home",
            summary="front door opened twice while armed",
            event_count=2,
        ),
        alert(
            "en1",
            "energy_over_threshold",
            "h1",
            30,
            entity_type="home",
            summary="h1 drew 4200 W for 5 min",
        ),
        alert("kr1", "impossible_kill_rate", "cheat", 40, entity_type="player"),
        # outside the period
        alert("bf0", "brute_force_login", "203.0.113.7", -30),
        alert("bf9", "brute_force_login", "203.0.113.7", 61),
    ],  # fmt: skip
    "energy_usage": [
        {
            **win(1),
            "home_id": "h1",
            "appliance": "oven",
            "kwh": 0.5,
            "avg_power_w": 3000.0,
            "max_power_w": 3500.0,
        },
        {
            **win(2),
            "home_id": "h1",
            "appliance": "oven",
            "kwh": 0.25,
            "avg_power_w": 1500.0,
            "max_power_w": 2000.0,
        },
        {
            **win(3),
            "home_id": "h2",
            "appliance": "oven",
            "kwh": 0.125,
            "avg_power_w": 750.0,
            "max_power_w": 900.0,
        },
        {
            **win(4),
            "home_id": "h1",
            "appliance": "heater",
            "kwh": 0.6,
            "avg_power_w": 3600.0,
            "max_power_w": 3600.0,
        },
        # an overlapping HOP window (start not a multiple of the size): never summed
        {
            **win(4 + 1 / 6),
            "home_id": "h1",
            "appliance": "heater",
            "kwh": 5.0,
            "avg_power_w": 3600.0,
            "max_power_w": 3600.0,
        },
        {
            **win(70),
            "home_id": "h2",
            "appliance": "heater",
            "kwh": 9.0,
            "avg_power_w": 1.0,
            "max_power_w": 1.0,
        },
    ],  # fmt: skip
    "web_traffic": [
        {
            **win(1),
            "path": "/login",
            "status": 200,
            "requests": 80,
            "errors": 0,
            "error_rate": 0.0,
            "latency_p50": 20.0,
            "latency_p95": 50.0,
            "bytes": 8000,
        },
        {
            **win(1),
            "path": "/login",
            "status": 401,
            "requests": 20,
            "errors": 20,
            "error_rate": 1.0,
            "latency_p50": 200.0,
            "latency_p95": 300.0,
            "bytes": 2000,
        },
        {
            **win(2),
            "path": "/api/items",
            "status": 200,
            "requests": 300,
            "errors": 0,
            "error_rate": 0.0,
            "latency_p50": 10.0,
            "latency_p95": 40.0,
            "bytes": 90000,
        },
        {
            **win(2 + 1 / 6),
            "path": "/api/items",
            "status": 500,
            "requests": 100,
            "errors": 100,
            "error_rate": 1.0,
            "latency_p50": 10.0,
            "latency_p95": 40.0,
            "bytes": 100,
        },
        # a quiet later minute of /login, slow: the max of the windows' p95s would be 900
        {
            **win(5),
            "path": "/login",
            "status": 200,
            "requests": 4,
            "errors": 0,
            "error_rate": 0.0,
            "latency_p50": 850.0,
            "latency_p95": 900.0,
            "bytes": 400,
        },
    ],  # fmt: skip
    # the job's own per-path rows (every status of the path): /login's p95 over the period is
    # 300 ms (100 of its 104 requests are in a window whose p95 is 300), not the max 900
    "path_latency": [
        {
            **win(1),
            "path": "/login",
            "requests": 100,
            "errors": 20,
            "latency_p50": 25.0,
            "latency_p95": 300.0,
            "latency_p99": 320.0,
        },
        {
            **win(5),
            "path": "/login",
            "requests": 4,
            "errors": 0,
            "latency_p50": 850.0,
            "latency_p95": 900.0,
            "latency_p99": 900.0,
        },
        {
            **win(2),
            "path": "/api/items",
            "requests": 300,
            "errors": 0,
            "latency_p50": 10.0,
            "latency_p95": 40.0,
            "latency_p99": 45.0,
        },
        {
            **win(2 + 1 / 6),
            "path": "/api/items",
            "requests": 100,
            "errors": 100,
            "latency_p50": 10.0,
            "latency_p95": 40.0,
            "latency_p99": 45.0,
        },
    ],  # fmt: skip
    "client_activity": [
        {
            **win(1),
            "client_ip": "203.0.113.7",
            "country": "DE",
            "browser": "curl",
            "device": "Other",
            "requests": 25,
            "errors": 20,
            "bytes": 100,
        },
        {
            **win(2),
            "client_ip": "192.0.2.1",
            "country": "FR",
            "browser": "Firefox",
            "device": "Other",
            "requests": 375,
            "errors": 0,
            "bytes": 100,
        },
    ],  # fmt: skip
    "player_stats": [
        {
            **win(1),
            "player_id": "ana",
            "team": "red",
            "match_id": "m1",
            "kills": 6,
            "deaths": 2,
            "assists": 0,
            "damage": 600.0,
            "headshots": 1,
            "kd_ratio": 3.0,
        },
        {
            **win(1),
            "player_id": "bo",
            "team": "blue",
            "match_id": "m1",
            "kills": 1,
            "deaths": 3,
            "assists": 0,
            "damage": 100.0,
            "headshots": 0,
            "kd_ratio": 1 / 3,
        },
        {
            **win(1),
            "player_id": "cheat",
            "team": "blue",
            "match_id": "m1",
            "kills": 40,
            "deaths": 0,
            "assists": 0,
            "damage": 4000.0,
            "headshots": 40,
            "kd_ratio": 40.0,
        },
    ],  # fmt: skip
    "device_stats": [temp(1, 21.0, 20.0, 22.0, 22.0), temp(2, 23.0, 22.5, 23.5, 23.5)],
    "source_quality": [
        {
            "sampled_at": at(-1),
            "topic": "web.access-logs",
            "records": 100,
            "late": 1,
            "dead_lettered": 2,
            "future": 0,
        },
        {
            "sampled_at": at(59),
            "topic": "web.access-logs",
            "records": 1100,
            "late": 11,
            "dead_lettered": 7,
            "future": 3,
        },
    ],  # fmt: skip
    # job_metrics: the sampler's rows. player_stats ran as j1 (1,000 records read before the
    # period), then as j2, whose counters restarted once (a failed task) at minute 50: read in
    # the period 600 + 600 (j1) + 300 + 600 + 200 (j2) = 2,300, written half of it
    "job_metrics": [
        jm(-1, "player_stats", "j1", 1000, 12.0, 0),
        jm(10, "player_stats", "j1", 1600, 12.0, 5),
        jm(20, "player_stats", "j1", 2200, 12.0, 0),
        jm(30, "player_stats", "j2", 300, 6.0, 100),
        jm(40, "player_stats", "j2", 900, 10.0, 0),
        jm(50, "player_stats", "j2", 200, 10.0, 20),
        jm(70, "player_stats", "j2", 5000, 99.0, 99),
        # the loader: rows loaded since it started (its first sample counts them all)
        {**jm(10, "loader", "42", 100, 2.0, 0), "records_out": 100, "records_out_per_s": 2.0},
        {**jm(20, "loader", "42", 400, 4.0, 30), "records_out": 400, "records_out_per_s": 4.0},
    ],
}


@contextmanager
def known_database(cfg: Config, name: str) -> Iterator[Config]:
    """`cfg` with database `name` created, migrated and holding ROWS; dropped afterwards."""
    cfg = cfg.derive(clickhouse={"database": name})
    migrate(cfg, log=None)
    writer = client(cfg, "writer", database=name)
    try:
        for table, rows in ROWS.items():
            cols = list(rows[0])
            data = [[r[c] for c in cols] for r in rows]
            if table in LOADED_TABLES:
                # loaded LOAD_LAG after the row's time (window end, an alert's last event)
                at = LOADED_TABLES[table]
                for i, (row, r) in enumerate(zip(data, rows, strict=True)):
                    row += [table, 0, i, r[at] + LOAD_LAG]
                cols = [*cols, "_topic", "_partition", "_offset", "_loaded_at"]
            writer.insert(table, data, column_names=cols)
        yield cfg
    finally:
        writer.command(f"DROP DATABASE IF EXISTS `{name}`")
        writer.close()
