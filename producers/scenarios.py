"""Scripted incidents: one short, known sequence per alert rule, at a given event time.

The generators inject anomalies at realistic (low) rates, so a two-minute demo may not see
every rule fire. These sequences make each rule fire exactly once, on purpose:
`flinkpulse demo` splices them into the live stream, and tests use them as known input.
"""

from __future__ import annotations

from typing import Any

Event = tuple[str, dict[str, Any], str]

ATTACKER_IP = "203.0.113.66"  # TEST-NET-3: never a real client
DEMO_HOME = "home-demo"
CHEATER = "p-cheater-demo"


def brute_force(t0: int) -> list[Event]:
    """6 failed logins from one IP within 25 s, then a success -> brute_force_login."""
    evs: list[Event] = []
    for i in range(7):
        ok = i == 6
        evs.append(
            (
                ATTACKER_IP,
                {
                    "event_id": f"demo-bf-{t0}-{i}",
                    "client_ip": ATTACKER_IP,
                    "user_id": "admin" if ok else None,
                    "session_id": f"demo-bf-{t0}",
                    "method": "POST",
                    "path": "/login",
                    "status": 200 if ok else 401,
                    "bytes": 512,
                    "latency_ms": 40.0,
                    "user_agent": "python-requests/2.31.0",
                    "referrer": None,
                    "event_time": t0 + i * 4000,
                },
                "web.access-logs",
            )
        )
    return evs


def intrusion(t0: int) -> list[Event]:
    """ARM_AWAY, a door opens, motion, later DISARM -> door_open_while_armed + motion_while_away."""
    seq = [
        (0, "ARM_AWAY", "panel", "hall"),
        (20_000, "DOOR_OPEN", "door-back", "kitchen"),
        (22_000, "MOTION", "pir-kitchen", "kitchen"),
        (90_000, "DISARM", "panel", "hall"),
    ]
    return [
        (
            DEMO_HOME,
            {
                "event_id": f"demo-in-{t0}-{i}",
                "home_id": DEMO_HOME,
                "device_id": f"{DEMO_HOME}-{dev}",
                "room": room,
                "kind": kind,
                "event_time": t0 + dt,
            },
            "iot.security-events",
        )
        for i, (dt, kind, dev, room) in enumerate(seq)
    ]


def cheater(t0: int) -> list[Event]:
    """12 kills in 5.5 s by one player -> impossible_kill_rate."""
    evs: list[Event] = []
    for i in range(12):
        evs.append(
            (
                CHEATER,
                {
                    "event_id": f"demo-ch-{t0}-{i}",
                    "match_id": f"demo-match-{t0}",
                    "player_id": CHEATER,
                    "team": "RED",
                    "event_type": "KILL",
                    "target_player_id": f"p-victim-{i}",
                    "damage": 100.0,
                    "headshot": True,
                    "weapon": "awp",
                    "event_time": t0 + i * 500,
                    "platform": "PC",
                },
                "gaming.player-events",
            )
        )
    return evs


def energy_spike(t0: int, seconds: int = 70) -> list[Event]:
    """Oven 5 kW + heater 3.5 kW for a minute in one home -> energy_over_threshold (7 kW)."""
    evs: list[Event] = []
    for dt in range(0, seconds * 1000, 5000):
        for appliance, watts in (("oven", 5000.0), ("heater", 3500.0)):
            dev = f"{DEMO_HOME}-{appliance}"
            evs.append(
                (
                    dev,
                    {
                        "device_id": dev,
                        "home_id": DEMO_HOME,
                        "room": "kitchen",
                        "sensor_type": "POWER",
                        "value": watts,
                        "unit": "W",
                        "appliance": appliance,
                        "event_time": t0 + dt,
                    },
                    "iot.sensor-readings",
                )
            )
    return evs


def all_incidents(t0: int) -> list[Event]:
    """Every scripted incident starting at event time `t0` (ms), in event-time order."""
    evs = brute_force(t0) + intrusion(t0) + cheater(t0) + energy_spike(t0)
    return sorted(evs, key=lambda e: int(e[1]["event_time"]))
