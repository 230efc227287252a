"""Smart homes: rooms and devices with daily cycles, appliance power profiles, and security.

Sensor readings (topic ``iot.sensor-readings``): every device reports every
``report_interval_s`` of event time, so the number of homes scales with the event rate.

* TEMPERATURE/HUMIDITY per room: a daily cycle by the home's local hour (warmest ~16:00),
  room offsets and Gaussian noise; humidity moves against temperature, bathrooms are humid.
* LIGHT: daylight curve plus lamps in the evening when someone is home; SWITCH: lamp state.
* POWER per appliance: the fridge compressor cycles (~120 W for 15 of every 40 minutes, a start
  spike, ~3 W idle); heaters run on cold mornings/evenings (~1.8 kW, thermostat cycling); ovens
  spike at meal times (~2.2 kW); TVs in the evening; washing machines now and then.
  ``energy_hog_fraction`` of homes have an old freezer or space heater drawing ~3 kW all day.

Security events (topic ``iot.security-events``), from an occupancy schedule per home: people
leave (MOTION, DOOR_OPEN, DOOR_CLOSE, ARM_AWAY), stay away, come back (DISARM from the app, then
DOOR_OPEN, DOOR_CLOSE, MOTION), and move around while home. A cycle lasts
``occupancy_cycle_s`` of event time (compressed from a day so that a demo sees it). With
``intrusions=True`` an away period is broken into with probability ``intrusion_probability``:
the back door opens while the alarm is armed, then motion inside — the patterns
``door_open_while_armed`` and ``motion_while_away``. Without intrusions neither pattern occurs:
doors open and motion happens only while disarmed.

Devices (topic ``iot.devices``, compacted, key device_id): where each device is installed and
whose it is (:meth:`IotGenerator.reference`, written by ``flinkpulse produce iot`` before the first
event). With ``move_every_s`` a climate sensor moves to another room of its home that often (event
time): the stream yields its new assignment, stamped at the move, and its readings say the new
room from then on. The jobs attribute readings and security events by this table at their event
time (docs/techniques.md).
"""

from __future__ import annotations

import heapq
import math
import random
from typing import Any

from producers.base import EventStream, TimeConfig, id_prefix, new_clock

READINGS = "iot.sensor-readings"
SECURITY = "iot.security-events"
DEVICES = "iot.devices"

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000

ROOMS = ("living_room", "kitchen", "bedroom", "bathroom", "hallway")
#: room -> (temperature offset in C, humidity offset in %)
_ROOM_CLIMATE = {
    "living_room": (0.5, 0.0),
    "kitchen": (1.0, 5.0),
    "bedroom": (-1.0, 0.0),
    "bathroom": (0.5, 18.0),
    "hallway": (-1.5, -3.0),
}
#: appliance -> room
APPLIANCES = {
    "fridge": "kitchen",
    "oven": "kitchen",
    "heater": "living_room",
    "tv": "living_room",
    "washing_machine": "bathroom",
}
HOGS = {"old_freezer": "kitchen", "space_heater": "bedroom"}


#: security device role -> the room it is installed in
_SECURITY_ROOMS = {
    "front_door": "hallway",
    "back_door": "kitchen",
    "motion_hallway": "hallway",
    "motion_living_room": "living_room",
    "panel": "hallway",
}


def _owner(home_id: str) -> str:
    """The household account a home's devices are registered to."""
    return f"owner-{home_id.removeprefix('home-')}"


class _Home:
    __slots__ = ("id", "tz", "base_temp", "phase", "hog", "home", "armed", "next_event_id")

    def __init__(self, hid: str, rng: random.Random, cycle_ms: int, hog: str | None) -> None:
        self.id = hid
        self.tz = rng.choice((-5, -5, 0, 1, 1, 1, 2, 9))  # local time offset (hours)
        self.base_temp = rng.gauss(20.5, 1.0)
        self.phase = rng.randrange(cycle_ms)
        self.hog = hog
        self.home = True
        self.armed = False


class _Device:
    __slots__ = ("id", "home", "room", "kind", "appliance", "seed")

    def __init__(self, did: str, home: _Home, room: str, kind: str, appliance: str | None,
                 seed: float) -> None:  # fmt: skip
        self.id = did
        self.home = home
        self.room = room
        self.kind = kind
        self.appliance = appliance
        self.seed = seed  # per-device phase in [0, 1)


_UNITS = {"TEMPERATURE": "C", "HUMIDITY": "%", "POWER": "W", "LIGHT": "lx", "SWITCH": "state"}


class IotGenerator:
    """Iterable stream of sensor readings and security events. Deterministic for a seed."""

    def __init__(
        self,
        seed: int = 0,
        time: TimeConfig | None = None,
        intrusions: bool = True,
        intrusion_probability: float = 0.05,
        energy_hogs: bool = True,
        energy_hog_fraction: float = 0.02,
        report_interval_s: float = 10.0,
        occupancy_cycle_s: float = 600.0,
        move_every_s: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        # moves draw from their own rng: the readings and events of a seed stay as they were
        self._move_rng = random.Random(seed ^ 0xD1CE)
        self.move_ms = int(move_every_s * 1000)
        self.tc = time or TimeConfig()
        self.clock = new_clock(self.tc, self.rng)
        self.intrusions = intrusions
        self.intrusion_probability = intrusion_probability
        self.cycle_ms = int(occupancy_cycle_s * 1000)
        rng = self.rng
        per_home = len(ROOMS) * 2 + 2 + len(APPLIANCES) + 1  # climate, light+switch, power
        n_homes = max(1, round(self.tc.events_per_second * report_interval_s / per_home))
        self.homes: list[_Home] = []
        self.devices: list[_Device] = []
        self.security: dict[str, dict[str, str]] = {}  # home -> role -> device id
        for h in range(n_homes):
            hog = None
            if energy_hogs and rng.random() < energy_hog_fraction:
                hog = rng.choice(list(HOGS))
            home = _Home(f"home-{h:05d}", rng, self.cycle_ms, hog)
            self.homes.append(home)
            devs: list[tuple[str, str, str | None]] = []
            for room in ROOMS:
                devs.append((room, "TEMPERATURE", None))
                devs.append((room, "HUMIDITY", None))
            devs.append(("living_room", "LIGHT", None))
            devs.append(("living_room", "SWITCH", "lamp"))
            for app, room in APPLIANCES.items():
                devs.append((room, "POWER", app))
            if hog:
                devs.append((HOGS[hog], "POWER", hog))
            for k, (room, kind, appliance) in enumerate(devs):
                did = f"{home.id}-d{k:02d}"
                self.devices.append(_Device(did, home, room, kind, appliance, rng.random()))
            self.security[home.id] = {
                "front_door": f"{home.id}-door-front",
                "back_door": f"{home.id}-door-back",
                "motion_hallway": f"{home.id}-motion-hallway",
                "motion_living_room": f"{home.id}-motion-living",
                "panel": f"{home.id}-panel",
            }
        rng.shuffle(self.devices)
        self._start = int(self.clock.now)
        self._next_move = self._start + self.move_ms if self.move_ms > 0 else None
        self._ids = id_prefix(rng)
        self._n = 0
        self._seq = 0
        #: scheduled security events: (event time, seq, home, kind, role)
        self._heap: list[tuple[int, int, _Home, str, str]] = []
        start = int(self.clock.now)
        for home in self.homes:
            # first departure at a home-specific point of the cycle
            self._schedule_leave(home, start + home.phase % self.cycle_ms)
        # homes start at home; some move around first
        for home in self.homes:
            leave = home.phase % self.cycle_ms
            if leave > 2_000:  # only before they leave: no motion while armed
                t0 = start + rng.randrange(min(60_000, leave - 1_000))
                self._push(t0, home, "MOTION", "motion_living_room")

    # -- reference table ---------------------------------------------------------------------
    def reference(self) -> list[tuple[str, dict[str, Any], str, int]]:
        """Every device's assignment at the start of the stream, as (key, record, topic, Kafka
        timestamp): sensor devices, then each home's security devices."""
        t = self._start
        out = [self._assignment(d.id, d.home.id, d.room, t) for d in self.devices]
        for home in self.homes:
            for role, did in self.security[home.id].items():
                out.append(self._assignment(did, home.id, _SECURITY_ROOMS[role], t))
        return out

    @staticmethod
    def _assignment(did: str, home: str, room: str, t: int) -> tuple[str, dict[str, Any], str, int]:
        rec = {"device_id": did, "home_id": home, "room": room, "owner": _owner(home),
               "updated_at": t}  # fmt: skip
        return did, rec, DEVICES, t

    def _move(self, t: int) -> tuple[str, dict[str, Any], str]:
        """A climate sensor moves to another room of its home at `t`: its new assignment."""
        rng = self._move_rng
        climate = [d for d in self.devices if d.kind in ("TEMPERATURE", "HUMIDITY")]
        d = climate[rng.randrange(len(climate))]
        d.room = rng.choice([r for r in ROOMS if r != d.room])
        key, rec, topic, _ts = self._assignment(d.id, d.home.id, d.room, t)
        return key, rec, topic

    # -- security schedule --------------------------------------------------------------------
    def _push(self, t: int, home: _Home, kind: str, role: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, home, kind, role))

    def _schedule_leave(self, home: _Home, t: int) -> None:
        rng = self.rng
        self._push(t, home, "MOTION", "motion_hallway")
        self._push(t + 4_000, home, "DOOR_OPEN", "front_door")
        self._push(t + 9_000 + rng.randrange(3_000), home, "DOOR_CLOSE", "front_door")
        self._push(t + 30_000 + rng.randrange(10_000), home, "ARM_AWAY", "panel")

    def _on_armed(self, home: _Home, t: int) -> None:
        """Plan the away period: the return, and (rarely) an intrusion in between."""
        rng = self.rng
        away = int(self.cycle_ms * (0.35 + 0.2 * rng.random()))
        back = t + away
        if self.intrusions and rng.random() < self.intrusion_probability:
            ti = t + 20_000 + rng.randrange(max(1, away // 2))
            self._push(ti, home, "DOOR_OPEN", "back_door")
            self._push(ti + 8_000 + rng.randrange(5_000), home, "MOTION", "motion_hallway")
            self._push(ti + 20_000 + rng.randrange(10_000), home, "MOTION", "motion_living_room")
            self._push(ti + 60_000 + rng.randrange(30_000), home, "DOOR_CLOSE", "back_door")
            back = max(back, ti + 100_000)
        # coming back: disarm from the app first, then the door, then motion
        self._push(back, home, "DISARM", "panel")
        self._push(back + 5_000 + rng.randrange(10_000), home, "DOOR_OPEN", "front_door")
        self._push(back + 20_000 + rng.randrange(5_000), home, "DOOR_CLOSE", "front_door")
        self._push(back + 30_000, home, "MOTION", "motion_hallway")

    def _on_disarmed(self, home: _Home, t: int) -> None:
        """At home: move around, then leave again near the next point of the cycle."""
        rng = self.rng
        stay = int(self.cycle_ms * (0.4 + 0.2 * rng.random()))
        for k in range(1, 1 + stay // 45_000):
            role = "motion_living_room" if rng.random() < 0.6 else "motion_hallway"
            self._push(t + k * 45_000 + rng.randrange(20_000), home, "MOTION", role)
        if rng.random() < 0.3:  # taking the bins out
            tb = t + stay // 2
            self._push(tb, home, "DOOR_OPEN", "back_door")
            self._push(tb + 30_000 + rng.randrange(30_000), home, "DOOR_CLOSE", "back_door")
        self._schedule_leave(home, t + stay + 60_000)

    def _security_event(
        self, t: int, home: _Home, kind: str, role: str
    ) -> tuple[str, dict[str, Any], str]:
        if kind == "ARM_AWAY":
            home.armed, home.home = True, False
            self._on_armed(home, t)
        elif kind == "DISARM":
            home.armed, home.home = False, True
            self._on_disarmed(home, t)
        self._n += 1
        room = _SECURITY_ROOMS[role]
        rec = {
            "event_id": f"{self._ids}{self._n:012x}",
            "home_id": home.id,
            "device_id": self.security[home.id][role],
            "room": room,
            "kind": kind,
            "event_time": self.clock.stamp(t),
        }
        return home.id, rec, SECURITY

    # -- sensor values ------------------------------------------------------------------------
    def _value(self, d: _Device, t: int) -> float:
        home = d.home
        rng = self.rng
        hour = ((t / _HOUR_MS) + home.tz) % 24.0
        kind = d.kind
        if kind == "TEMPERATURE":
            off = _ROOM_CLIMATE[d.room][0]
            daily = 2.5 * math.cos((hour - 16.0) / 24.0 * 2 * math.pi)
            return round(home.base_temp + off + daily + rng.gauss(0, 0.15), 2)
        if kind == "HUMIDITY":
            off = _ROOM_CLIMATE[d.room][1]
            daily = -6.0 * math.cos((hour - 16.0) / 24.0 * 2 * math.pi)
            return round(min(99.0, max(15.0, 45.0 + off + daily + rng.gauss(0, 1.0))), 1)
        if kind == "LIGHT":
            sun = max(0.0, math.sin((hour - 6.0) / 14.0 * math.pi)) if 6 <= hour <= 20 else 0.0
            lamps = 250.0 if home.home and (hour >= 18 or hour < 0.5) else 0.0
            return round(800.0 * sun + lamps + abs(rng.gauss(0, 5)), 1)
        if kind == "SWITCH":
            return 1.0 if home.home and (hour >= 18 or hour < 0.5) else 0.0
        return self._power(d, t, hour)

    def _power(self, d: _Device, t: int, hour: float) -> float:
        rng = self.rng
        app = d.appliance
        minute = (t / 60_000.0 + d.seed * 40.0) % 40.0
        if app == "fridge":
            if minute < 0.5:
                return round(300.0 + rng.gauss(0, 20), 1)  # compressor start spike
            if minute < 15.0:
                return round(120.0 + rng.gauss(0, 6), 1)
            return round(3.0 + rng.random(), 1)
        if app == "oven":
            meal = 11.5 <= hour < 13.0 or 18.0 <= hour < 19.5
            if meal and d.home.home and minute % 10.0 < 7.0:
                return round(2200.0 + rng.gauss(0, 60), 1)
            return 0.0
        if app == "heater":
            cold = 6.0 <= hour < 9.0 or 17.0 <= hour < 23.0
            if cold and minute % 20.0 < 12.0:
                return round(1800.0 + rng.gauss(0, 40), 1)
            return round(1.5 + 0.5 * rng.random(), 1)
        if app == "tv":
            if d.home.home and 19.0 <= hour < 23.5:
                return round(95.0 + rng.gauss(0, 8), 1)
            return 0.8
        if app == "washing_machine":
            # one 90-minute cycle a day per machine, each at its own hour: heat (2 kW for
            # 15 min), wash (~500 W), spin (~800 W for the last 10 min); standby otherwise
            into = (hour - 24.0 * d.seed) % 24.0 * 60.0
            if into >= 90.0:
                return 0.5
            watts = 2000.0 if into < 15.0 else 800.0 if into >= 80.0 else 500.0
            return round(watts + rng.gauss(0, 30), 1)
        # energy hogs: always on, ~3 kW
        return round(3000.0 + rng.gauss(0, 150), 1)

    def __iter__(self) -> EventStream:
        devices = self.devices
        n_dev = len(devices)
        heap = self._heap
        clock = self.clock
        i = 0
        while True:
            t = clock.tick()
            if self._next_move is not None and self._next_move <= t:
                self._next_move += self.move_ms
                yield self._move(t)  # besides this tick's event: the clock runs as without
            if heap and heap[0][0] <= t:
                ts, _, home, kind, role = heapq.heappop(heap)
                yield self._security_event(ts, home, kind, role)
                continue
            d = devices[i]
            i += 1
            if i == n_dev:
                i = 0
            yield (
                d.id,
                {
                    "device_id": d.id,
                    "home_id": d.home.id,
                    "room": d.room,
                    "sensor_type": d.kind,
                    "value": self._value(d, t),
                    "unit": _UNITS[d.kind],
                    "appliance": d.appliance,
                    "event_time": clock.stamp(t),
                },
                READINGS,
            )


def generate(seed: int = 0, time: TimeConfig | None = None, **options: Any) -> EventStream:
    """Endless, seeded stream of (key, record, topic) for both IoT topics; see IotGenerator."""
    return iter(IotGenerator(seed=seed, time=time, **options))
