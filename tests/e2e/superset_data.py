"""Rows for the dashboards' tables, inserted through clickhouse-connect as the writer.

Until the e2e test runs after the real pipeline, this stands in for the loader's output: same
tables, same columns, realistic shapes (HOP windows of 60 s sliding by 10 s, ending now).
``FALLBACK_DDL`` creates the tables only if they do not exist yet (the real DDL lives in
``sql/clickhouse/``).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

DT = "DateTime64(3, 'UTC')"
_BOOK = "_topic String DEFAULT '', _partition UInt32 DEFAULT 0, _offset UInt64 DEFAULT 0"
_W = f"window_start {DT}, window_end {DT}"

FALLBACK_DDL = {
    "player_stats": f"{_W}, player_id String, team String, match_id String, kills UInt32, "
    "deaths UInt32, assists UInt32, damage Float64, headshots UInt32, kd_ratio Float64",
    "team_stats": f"{_W}, match_id String, team String, players UInt32, kills UInt32, "
    "deaths UInt32, damage Float64, kd_ratio Float64",
    "leaderboard": f"{_W}, rank UInt16, player_id String, team String, kills UInt32, "
    "deaths UInt32, kd_ratio Float64, score Float64",
    "device_stats": f"{_W}, device_id String, home_id String, room String, sensor_type String, "
    "unit String, samples UInt32, avg_value Float64, min_value Float64, max_value Float64, "
    "last_value Float64",
    "energy_usage": f"{_W}, home_id String, appliance String, kwh Float64, avg_power_w Float64, "
    "max_power_w Float64, hog_rank UInt16",
    "web_traffic": f"{_W}, path String, status UInt16, requests UInt64, errors UInt64, "
    "error_rate Float64, latency_p50 Float64, latency_p95 Float64, bytes UInt64",
    "client_activity": f"{_W}, client_ip String, country String, browser String, device String, "
    "requests UInt64, errors UInt64, bytes UInt64",
    "alerts": f"alert_id String, rule String, severity String, entity_type String, "
    f"entity_id String, summary String, event_count UInt32, first_event_time {DT}, "
    f"last_event_time {DT}, detected_at {DT}, attributes Map(String, String)",
    "security_events": f"event_id String, home_id String, device_id String, room String, "
    f"kind String, event_time {DT}",
}


def column_names(table: str) -> list[str]:
    """Column names of a FALLBACK_DDL table (commas inside parentheses do not split)."""
    names, depth, cur = [], 0, ""
    for ch in FALLBACK_DDL[table] + ",":
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            names.append(cur.split()[0])
            cur = ""
        else:
            cur += ch
    return names


def ensure_tables(client: Any, database: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    for table, cols in FALLBACK_DDL.items():
        order = "window_end" if "window_end" in cols else cols.split()[0]
        client.command(
            f"CREATE TABLE IF NOT EXISTS {database}.{table} ({cols}, {_BOOK}) "
            f"ENGINE = MergeTree ORDER BY {order}"
        )


def _windows(now: datetime, n: int) -> list[tuple[datetime, datetime]]:
    end = now.replace(microsecond=0) - timedelta(seconds=now.second % 10)
    return [
        (end - timedelta(seconds=10 * k + 60), end - timedelta(seconds=10 * k)) for k in range(n)
    ]


def seed(client: Any, database: str, now: datetime | None = None, seed: int = 7) -> dict[str, int]:
    """Insert a few minutes of results into every table; returns rows per table."""
    rnd = random.Random(seed)
    now = now or datetime.now(UTC)
    wins = _windows(now, 36)
    rows: dict[str, list[list[Any]]] = {t: [] for t in FALLBACK_DDL}
    players = [(f"player-{i:02d}", "red" if i % 2 else "blue") for i in range(1, 9)]
    homes = ["home-1", "home-2", "home-3"]
    appliances = {"heater": 2000.0, "oven": 1500.0, "fridge": 150.0, "tv": 120.0, "lamp": 40.0}
    paths = ["/", "/login", "/api/items", "/checkout", "/static/app.js"]
    clients = [
        (f"203.0.113.{i}", c) for i, c in enumerate(["DE", "US", "FR", "JP", "BR", "IN", "GB"], 1)
    ]
    for ws, we in wins:
        scores = []
        for pid, team in players:
            k, d = rnd.randint(0, 9), rnd.randint(0, 6)
            kd = k / max(d, 1)
            rows["player_stats"].append(
                [ws, we, pid, team, "match-1", k, d, rnd.randint(0, 4), k * 97.5, k // 3, kd]
            )
            scores.append((k * 10 + kd, pid, team, k, d, kd))
        for team in ("red", "blue"):
            mine = [r for r in rows["player_stats"][-8:] if r[3] == team]
            k, d = sum(r[5] for r in mine), sum(r[6] for r in mine)
            rows["team_stats"].append(
                [ws, we, "match-1", team, 4, k, d, sum(r[8] for r in mine), k / max(d, 1)]
            )
        for rank, (score, pid, team, k, d, kd) in enumerate(sorted(scores, reverse=True), 1):
            rows["leaderboard"].append([ws, we, rank, pid, team, k, d, kd, score])
        for h, home in enumerate(homes):
            for room in ("kitchen", "living_room", "bedroom"):
                for st, unit, base in (("TEMPERATURE", "C", 21.0), ("HUMIDITY", "%", 45.0)):
                    v = base + h + rnd.uniform(-1, 1)
                    rows["device_stats"].append(
                        [ws, we, f"{home}-{room}-{st.lower()}", home, room, st, unit, 6, v,
                         v - 0.5, v + 0.5, v]
                    )  # fmt: skip
            for rank, (app, watts) in enumerate(appliances.items(), 1):
                w = watts * rnd.uniform(0.5, 1.0)
                rows["energy_usage"].append([ws, we, home, app, w * 60 / 3.6e6, w, w * 1.2, rank])
        for path in paths:
            for status in (200, 500):
                req = rnd.randint(50, 200) if status == 200 else rnd.randint(0, 8)
                err = req if status >= 500 else 0
                rows["web_traffic"].append(
                    [ws, we, path, status, req, err, err / max(req, 1), 20.0, rnd.uniform(80, 400),
                     req * 2048]
                )  # fmt: skip
        for ip, country in clients:
            req = rnd.randint(5, 60)
            rows["client_activity"].append(
                [ws, we, ip, country, "Chrome", "Desktop", req, req // 10, req * 2048]
            )
    rules = ["door_open_while_armed", "motion_while_away", "brute_force_login",
             "impossible_kill_rate", "energy_over_threshold"]  # fmt: skip
    for i in range(25):
        t = now - timedelta(seconds=12 * i)
        rule = rules[i % len(rules)]
        rows["alerts"].append(
            [f"alert-{i}", rule, "WARNING" if i % 3 else "CRITICAL", "home", homes[i % 3],
             f"{rule} on {homes[i % 3]}", 3, t - timedelta(seconds=30), t, t, {"source": "e2e"}]
        )  # fmt: skip
    for i in range(40):
        kind = ["DOOR_OPEN", "DOOR_CLOSE", "MOTION", "ARM_AWAY", "DISARM"][i % 5]
        rows["security_events"].append(
            [f"sec-{i}", homes[i % 3], f"{homes[i % 3]}-door", "hall", kind,
             now - timedelta(seconds=7 * i)]
        )  # fmt: skip
    for table, data in rows.items():
        client.insert(f"{database}.{table}", data, column_names=column_names(table))
    return {t: len(r) for t, r in rows.items()}
