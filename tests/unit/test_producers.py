"""The generators: valid against the schemas, seeded, realistic, anomalies only when enabled."""

from __future__ import annotations

import collections
import sys
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate

from flinkpulse.schemas import TOPIC_KEYS, TOPIC_RECORDS, latest_schema
from producers import gaming, iot, streams, web
from producers.base import TimeConfig, take

pytestmark = pytest.mark.unit

START = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def _tc(rate: float = 200.0, **kw: Any) -> TimeConfig:
    return TimeConfig(start_ms=START, events_per_second=rate, **kw)


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    return {t: fastavro.parse_schema(latest_schema(r)) for t, r in TOPIC_RECORDS.items()}


@pytest.mark.parametrize("domain", ["gaming", "iot", "web"])
def test_every_record_valid_and_keyed_per_design(domain: str, parsed: dict[str, Any]) -> None:
    events = take(streams.stream(domain, 3, _tc(), timed=False), 20_000)
    assert len(events) == 20_000
    for key, rec, topic in events:
        assert topic in streams.DOMAIN_TOPICS[domain]
        assert validate(rec, parsed[topic], raise_errors=True)
        assert key == rec[TOPIC_KEYS[topic]]


@pytest.mark.parametrize("domain", ["gaming", "iot", "web", "all"])
def test_seeded_run_is_identical_twice_and_seeds_differ(domain: str) -> None:
    a = take(streams.stream(domain, 42, _tc()), 5_000)
    b = take(streams.stream(domain, 42, _tc()), 5_000)
    c = take(streams.stream(domain, 43, _tc()), 5_000)
    assert a == b
    assert a != c


def test_kill_death_pairs_are_consistent() -> None:
    events = [r for _, r, _ in take(gaming.generate(seed=1, time=_tc()), 30_000)]
    kills = [i for i, r in enumerate(events) if r["event_type"] == "KILL"]
    assert len(kills) > 3000
    for i in kills:
        if i + 1 >= len(events):
            continue
        k, d = events[i], events[i + 1]
        assert d["event_type"] == "DEATH"
        assert (d["player_id"], d["target_player_id"]) == (k["target_player_id"], k["player_id"])
        assert (d["match_id"], d["weapon"], d["headshot"]) == (
            k["match_id"],
            k["weapon"],
            k["headshot"],
        )
        assert d["team"] != k["team"]
    deaths = collections.Counter(r["event_type"] for r in events)["DEATH"]
    assert abs(deaths - len(kills)) <= 1


def _kd_by_skill(gen: gaming.GamingGenerator, events: list[dict[str, Any]]) -> tuple[float, float]:
    k = collections.Counter(r["player_id"] for r in events if r["event_type"] == "KILL")
    d = collections.Counter(r["player_id"] for r in events if r["event_type"] == "DEATH")
    honest = [p for p in gen.players if not p.cheater and d[p.id] + k[p.id] >= 5]
    honest.sort(key=lambda p: p.skill)
    q = len(honest) // 4

    def kd(ps: list[Any]) -> float:
        return sum(k[p.id] for p in ps) / max(1, sum(d[p.id] for p in ps))

    return kd(honest[:q]), kd(honest[-q:])


def _max_kills_per_minute(events: list[dict[str, Any]]) -> tuple[str, int]:
    per: dict[str, list[int]] = collections.defaultdict(list)
    for r in events:
        if r["event_type"] == "KILL":
            per[r["player_id"]].append(r["event_time"])
    best = ("", 0)
    for p, ts in per.items():
        ts.sort()
        j = 0
        for i, t in enumerate(ts):
            while ts[j] < t - 60_000:
                j += 1
            if i - j + 1 > best[1]:
                best = (p, i - j + 1)
    return best


def test_skill_shapes_kd_and_cheaters_only_when_enabled() -> None:
    gen = gaming.GamingGenerator(seed=5, time=_tc(rate=100), cheater_fraction=0.02)
    events = [r for _, r, _ in take(iter(gen), 60_000)]
    low, high = _kd_by_skill(gen, events)
    assert low < 0.8 < 1.2 < high
    cheaters = {p.id for p in gen.players if p.cheater}
    player, kills = _max_kills_per_minute(events)
    assert player in cheaters and kills >= 30  # one kill every 2 s: impossible for a human
    clean = gaming.GamingGenerator(seed=5, time=_tc(rate=100), cheaters=False)
    clean_events = [r for _, r, _ in take(iter(clean), 60_000)]
    assert not any(p.cheater for p in clean.players)
    assert _max_kills_per_minute(clean_events)[1] < 20  # honest top players: ~10 kills/min


def _brute_force_ips(events: list[dict[str, Any]]) -> set[str]:
    """IPs with >= 5 failed logins (401) within 60 s followed by a successful login (200)."""
    per: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for r in events:
        if r["path"] == "/login" and r["method"] == "POST":
            per[r["client_ip"]].append((r["event_time"], r["status"]))
    found = set()
    for ip, tries in per.items():
        tries.sort()
        fails: list[int] = []
        for t, status in tries:
            if status == 401:
                fails.append(t)
            elif status == 200 and len([f for f in fails if f >= t - 60_000]) >= 5:
                found.add(ip)
    return found


def _scanner_ips(events: list[dict[str, Any]]) -> set[str]:
    c = collections.Counter(r["client_ip"] for r in events if r["status"] == 404)
    return {ip for ip, n in c.items() if n >= 10}


def test_web_attacks_present_only_when_enabled() -> None:
    events = [r for _, r, _ in take(web.generate(seed=9, time=_tc(), attack_interval_s=20), 40_000)]
    assert len(_brute_force_ips(events)) >= 2
    assert len(_scanner_ips(events)) >= 2
    statuses = collections.Counter(r["status"] for r in events)
    assert statuses[200] / len(events) > 0.8
    assert statuses[404] and statuses[301] and statuses[500]
    lat = sorted(r["latency_ms"] for r in events)
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    assert 20 < p50 < 120 and p99 > 5 * p50  # long tail
    clean = [r for _, r, _ in take(web.generate(seed=9, time=_tc(), attacks=False), 40_000)]
    assert _brute_force_ips(clean) == set()
    assert _scanner_ips(clean) == set()


def test_web_client_ips_geolocate_to_their_country() -> None:
    from udfs.geo import ip_country

    gen = web.WebGenerator(seed=2, time=_tc(), ip_pool=2_000)
    countries = collections.Counter(ip_country(ip) for ip in gen.ips)
    assert countries["US"] / len(gen.ips) > 0.2
    assert countries["ZZ"] == 0
    assert set(countries) <= set(web.VISITOR_COUNTRIES)


def _security_patterns(events: list[dict[str, Any]]) -> tuple[int, int]:
    """(doors opened while armed, motion while armed) across homes."""
    armed: dict[str, bool] = collections.defaultdict(bool)
    doors = motion = 0
    for r in sorted(events, key=lambda r: r["event_time"]):
        h = r["home_id"]
        if r["kind"] == "ARM_AWAY":
            armed[h] = True
        elif r["kind"] == "DISARM":
            armed[h] = False
        elif r["kind"] == "DOOR_OPEN" and armed[h]:
            doors += 1
        elif r["kind"] == "MOTION" and armed[h]:
            motion += 1
    return doors, motion


def test_iot_intrusions_present_only_when_enabled() -> None:
    tc = _tc(rate=300, out_of_order_fraction=0.0)
    kw = {"occupancy_cycle_s": 300, "intrusion_probability": 0.3}
    events = take(iot.generate(seed=4, time=tc, **kw), 120_000)
    sec = [r for _, r, t in events if t == iot.SECURITY]
    kinds = collections.Counter(r["kind"] for r in sec)
    assert kinds["ARM_AWAY"] and kinds["DISARM"] and kinds["MOTION"] and kinds["DOOR_CLOSE"]
    doors, motion = _security_patterns(sec)
    assert doors >= 2 and motion >= 2
    clean = take(iot.generate(seed=4, time=tc, intrusions=False, **kw), 120_000)
    clean_sec = [r for _, r, t in clean if t == iot.SECURITY]
    assert clean_sec and _security_patterns(clean_sec) == (0, 0)


def test_iot_profiles_are_realistic() -> None:
    events = [
        r for _, r, t in take(iot.generate(seed=8, time=_tc(rate=500)), 50_000) if t == iot.READINGS
    ]
    by = collections.defaultdict(list)
    for r in events:
        by[(r["sensor_type"], r["appliance"])].append(r["value"])
    temps = by[("TEMPERATURE", None)]
    assert min(temps) > 12 and max(temps) < 30
    fridge = by[("POWER", "fridge")]
    assert min(fridge) < 10 and max(fridge) > 100  # compressor cycling
    hog = by[("POWER", "old_freezer")] + by[("POWER", "space_heater")]
    assert hog and min(hog) > 2000  # energy hogs draw ~3 kW all the time
    units = {(r["sensor_type"], r["unit"]) for r in events}
    assert units == {
        ("TEMPERATURE", "C"),
        ("HUMIDITY", "%"),
        ("POWER", "W"),
        ("LIGHT", "lx"),
        ("SWITCH", "state"),
    }


def test_out_of_order_and_late_fractions() -> None:
    tc = _tc(rate=1000, out_of_order_fraction=0.1, late_fraction=0.02)
    events = [r for _, r, _ in take(web.generate(seed=1, time=tc, attacks=False), 50_000)]
    lateness = []
    high = 0
    for r in events:
        high = max(high, r["event_time"])
        lateness.append(high - r["event_time"])
    late = sum(1 for x in lateness if x >= 30_000) / len(events)
    ooo = sum(1 for x in lateness if 0 < x < 30_000) / len(events)
    assert 0.015 < late < 0.025
    assert 0.07 < ooo < 0.13
    none = TimeConfig(start_ms=START, events_per_second=1000, out_of_order_fraction=0.0)
    times = [r["event_time"] for _, r, _ in take(gaming.generate(seed=1, time=none), 5000)]
    assert times == sorted(times)


# -- the compiled Avro encoder (producers.encoder) ----------------------------------------------


def _fastavro_bytes(schema: Any, rec: dict[str, Any]) -> bytes:
    import io

    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, rec)
    return buf.getvalue()


@pytest.mark.parametrize("domain", ["gaming", "iot", "web"])
def test_compiled_encoder_writes_fastavros_bytes(domain: str, parsed: dict[str, Any]) -> None:
    from producers import scenarios
    from producers.encoder import compile_encoder

    header = b"\x00\x00\x00\x00\x2a"
    enc = {
        t: compile_encoder(latest_schema(TOPIC_RECORDS[t]), header) for t in streams.topics("all")
    }
    assert all(e is not None for e in enc.values())
    assert compile_encoder(latest_schema(TOPIC_RECORDS["alerts"])) is None  # a map: fastavro's
    events = take(streams.stream(domain, 5, _tc(50_000, late_fraction=0.01), timed=False), 20_000)
    events += scenarios.all_incidents(START)
    for _, rec, topic in events:
        assert enc[topic](rec) == header + _fastavro_bytes(parsed[topic], rec)  # type: ignore[misc]


def test_compiled_encoder_edge_values_and_refusals(parsed: dict[str, Any]) -> None:
    import datetime as dt

    from producers.encoder import compile_encoder

    topic = "web.access-logs"
    enc = compile_encoder(latest_schema(TOPIC_RECORDS[topic]))
    assert enc is not None
    base = take(web.generate(seed=1, time=_tc()), 1)[0][1]
    edge = [
        {"path": "/ünïcödé/✓" * 3, "user_id": None, "referrer": "x" * 5000},
        {"status": -(2**31), "bytes": 2**63 - 1, "event_time": -1, "latency_ms": 0},
        {"status": 2**31 - 1, "bytes": -(2**63), "event_time": 0, "latency_ms": -1.5e300},
        {"bytes": 127, "event_time": 2**35, "user_id": ""},
        {"bytes": 64, "event_time": 2**41, "latency_ms": float("inf")},
    ]
    for change in edge:
        rec = {**base, **change}
        assert enc(rec) == _fastavro_bytes(parsed[topic], rec), change
    # anything not exactly typed is refused (the producer then asks fastavro)
    refused = [
        {"status": 2**31},
        {"status": True},
        {"bytes": 1.0},
        {"latency_ms": "1.0"},
        {"path": b"/bytes"},
        {"user_id": 5},
        {"event_time": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)},
    ]
    for change in refused:
        with pytest.raises(Exception):  # noqa: B017 - any error means "not mine"
            enc({**base, **change})
    with pytest.raises(KeyError):
        enc({k: v for k, v in base.items() if k != "path"})
    g = latest_schema(TOPIC_RECORDS["gaming.player-events"])
    genc = compile_encoder(g)
    assert genc is not None
    grec = take(gaming.generate(seed=1, time=_tc()), 1)[0][1]
    for bad in ({"event_type": "TELEPORT"}, {"headshot": 1}, {"headshot": None}):
        with pytest.raises(Exception):  # noqa: B017
            genc({**grec, **bad})
    # schemas beyond flat records are left to fastavro
    assert compile_encoder({"type": "array", "items": "string"}) is None
    nested = {
        "type": "record",
        "name": "N",
        "fields": [{"name": "m", "type": {"type": "map", "values": "long"}}],
    }
    assert compile_encoder(nested) is None
    wide = {
        "type": "record",
        "name": "W",
        "fields": [{"name": "u", "type": ["null", "string", "long"]}],
    }
    assert compile_encoder(wide) is None


def test_topic_encoder_falls_back_to_fastavro() -> None:
    """A datetime event_time is fastavro's to encode; a bad value is InvalidRecord naming the field."""
    import datetime as dt
    import io

    from producers.kafka import AvroKafkaProducer, InvalidRecord, _Topic

    topic = "iot.security-events"
    tp = _Topic(topic, topic, latest_schema(TOPIC_RECORDS[topic]), 7)
    assert tp.fast is not None
    prod = AvroKafkaProducer.__new__(AvroKafkaProducer)  # no Kafka: only the encoding half
    prod.topics = {topic: tp}
    prod._buf = io.BytesIO()
    rec = next(r for _, r, t in take(iot.generate(seed=2, time=_tc(50_000)), 5_000) if t == topic)
    ms = rec["event_time"]
    as_dt = {**rec, "event_time": dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)}
    assert prod.encode(topic, as_dt) == prod.encode(topic, rec) == tp.fast(rec)
    assert prod.encode(topic, rec)[:5] == b"\x00\x00\x00\x00\x07"
    with pytest.raises(InvalidRecord, match="kind"):
        prod.encode(topic, {**rec, "kind": "TELEPORT"})


# -- the clocks: live (never ahead of the wall clock) and simulated (Kafka timestamps follow it) --


def test_live_clock_at_full_speed_never_writes_the_future() -> None:
    """`produce all --rate 0` (nominal 1000/s): 300k events, none stamped after its send."""
    import time

    tc = TimeConfig(events_per_second=1000.0)  # what `flinkpulse produce --rate 0` passes
    assert not tc.is_simulated
    ahead = 0
    first = int(time.time() * 1000)
    stream = streams.stream("all", 1, tc)
    newest = 0
    for n, (_key, rec, _topic) in enumerate(stream, 1):
        sent = int(time.time() * 1000)  # the wall clock when the producer would send it
        t = rec["event_time"]
        if t > sent:
            ahead += 1
        newest = max(newest, t)
        if n == 300_000:
            break
    last = int(time.time() * 1000)
    assert ahead == 0
    # and it is the wall clock, not a simulation (300k events at 1000/s would be 300 s ahead)
    assert first <= newest <= last
    assert last - newest < 1000


def test_live_clock_reads_the_wall_clock_once_per_batch() -> None:
    """Between two readings event time stands still; a reading every max(1, rate / 50) events."""
    import random

    from producers.base import LiveClock

    readings: list[float] = []

    def wall() -> float:
        readings.append(1_800_000_000.0 + len(readings))  # +1 s per reading
        return readings[-1]

    clock = LiveClock(TimeConfig(events_per_second=1000.0), random.Random(1), wall=wall)
    ticks = [clock.tick() for _ in range(100)]
    # one reading when built, one at the first tick, then one every 20 ticks
    assert len(readings) == 2 + 99 // 20
    assert ticks[:20] == [1_800_000_001_000] * 20
    assert ticks[20:40] == [1_800_000_002_000] * 20
    assert ticks[99] == 1_800_000_005_000
    slow = LiveClock(TimeConfig(events_per_second=10.0), random.Random(1), wall=wall)
    before = len(readings)
    [slow.tick() for _ in range(7)]
    assert len(readings) - before == 7  # every event at 10/s: never a stale reading


def test_the_first_live_event_carries_the_time_it_is_made_not_the_clock_s_creation() -> None:
    """A generator builds its pools after its clock (web: 20,000 addresses): the first events
    must not carry the time before that, or a slow start sends them to late.* (a CI demo,
    2026-12-02: the first records of every source topic stamped ~5 s before they were sent)."""
    import random

    from producers.base import LiveClock

    now = [1_800_000_000.0]
    clock = LiveClock(TimeConfig(events_per_second=1500.0), random.Random(1), wall=lambda: now[0])
    now[0] += 5.0  # building the pools
    assert clock.tick() == 1_800_000_005_000
    # a time scheduled from the build-time reading (the homes' first security events) is
    # the first tick's, less the usual out-of-order jitter at most
    assert 1_800_000_005_000 - 3000 <= clock.stamp(1_800_000_000_500) <= 1_800_000_005_000


def test_a_step_of_the_wall_clock_is_seen_against_the_monotonic_clock() -> None:
    """A virtual machine resumed after 26 s (2026-12-05: the wall clock moved, the monotonic
    one did not): the producer sees the step and when it came; drift below a second is none,
    and neither is a reading the thread was descheduled in the middle of."""
    from flinkpulse.clock import ClockStep, ClockSteps

    wall0 = 1_796_392_832.0
    # (monotonic, wall, monotonic) per observe()
    readings = iter([
        (100.0, wall0 + 100.0, 100.0),  # the first reading
        (101.0, wall0 + 101.4, 101.0),  # slewed, not stepped
        (102.0, wall0 + 128.4, 102.0),  # stepped
        (103.0, wall0 + 129.4, 103.0),
        (104.0, wall0 + 129.5, 106.0),  # descheduled for 2 s between the readings
        (107.0, wall0 + 127.4, 107.0),  # and back by 6 s
    ])  # fmt: skip
    flat = iter([x for r in readings for x in r])
    steps = ClockSteps(monotonic=lambda: next(flat), wall=lambda: next(flat))
    seen = [steps.observe() for _ in range(6)]
    step = ClockStep(at=wall0 + 102.4, size=26.0)
    assert seen == [None, None, step, None, None, ClockStep(at=wall0 + 133.4, size=-6.0)]
    assert steps.steps == [step, seen[-1]]
    assert str(step) == "+26.0 s at 2026-12-04T14:02:14.400Z"


def test_the_producer_summary_names_the_clock_steps_for_the_demo_test() -> None:
    """The demo's `produced:` line carries the steps; the event-time test reads them back."""
    from flinkpulse.clock import ClockStep
    from producers.kafka import Stats
    from tests.demo_run import produced

    st = Stats(sent=3, delivered=3, elapsed=1.0)
    st.per_topic["web.access-logs"] = 3
    assert "clock" not in st.summary()
    assert produced(st.summary())["clock_steps"] == []
    st.clock_steps = [ClockStep(1_796_440_567.58, 21.7), ClockStep(1_796_440_600.0, -6.2)]
    summary = st.summary()
    assert summary.endswith(
        "; wall clock stepped +21.7 s at 2026-12-05T03:16:07.580Z, -6.2 s at 2026-12-05T03:16:40.000Z"
    )
    back = produced(summary)
    assert back["sent"] == 3 and back["per_topic"] == {"web.access-logs": 3}
    assert [(round(s.at, 3), s.size) for s in back["clock_steps"]] == [
        (1_796_440_567.58, 21.7),
        (1_796_440_600.0, -6.2),
    ]


def test_late_records_a_step_of_the_clock_explains() -> None:
    """The records a 22 s step made late on 2026-12-05 (late.* reasons, read back), and ones it
    does not explain: a record that waited on its own, and any lateness without a step."""
    from flinkpulse.clock import ClockStep
    from tests.demo_run import explained_by_step, utc_epoch

    def late(event: str, kafka: str, steps: list[ClockStep]) -> bool:
        return explained_by_step(
            steps, utc_epoch(f"2026-12-05 {event}"), utc_epoch(f"2026-12-05 {kafka}"), 5.0
        )

    forward = [ClockStep(at=utc_epoch("2026-12-05 03:16:07.600"), size=21.7)]  # to 03:16:29.300
    # stamped just before the step, sent as it ended; scheduled in the skipped span
    assert late("03:16:07.580", "03:16:29.186", forward)
    assert late("03:16:24.629", "03:16:29.992", forward)
    assert late("03:16:25.387", "03:16:30.630", forward)
    # late for other reasons: waited well past the step, or stamped long before it
    assert not late("03:16:28.000", "03:16:40.000", forward)
    assert not late("03:15:50.000", "03:16:29.500", forward)
    assert not late("03:16:07.580", "03:16:29.186", [])
    # back by 6 s at 03:16:40: records stamped in the span gone over twice are behind the
    # watermark of the first pass
    backward = [ClockStep(at=utc_epoch("2026-12-05 03:16:40.000"), size=-6.0)]
    assert late("03:16:34.100", "03:16:34.200", backward)
    assert not late("03:16:20.000", "03:16:31.000", backward)


def test_live_jitter_stays_within_the_watermark_delay_and_late_is_opt_in() -> None:
    import time

    tc = TimeConfig(events_per_second=5000.0, out_of_order_fraction=0.2)
    events = take(web.generate(seed=3, time=tc, attacks=False), 20_000)
    done = int(time.time() * 1000)
    high = 0
    behind = []
    for _, r, _ in events:
        high = max(high, r["event_time"])
        behind.append(high - r["event_time"])
    assert max(behind) < 3000 + 50  # out of order by < 3 s (+ a reading's age), never late
    assert 0.15 < sum(1 for b in behind if b > 0) / len(behind) < 0.25
    assert high <= done
    late = TimeConfig(events_per_second=5000.0, late_fraction=0.01)
    times = [r["event_time"] for _, r, _ in take(web.generate(seed=3, time=late), 20_000)]
    assert 0.005 < sum(1 for t in times if max(times) - t >= 30_000) / len(times) < 0.015


def test_simulated_clock_stamps_kafka_timestamps_with_the_clock() -> None:
    import time

    from producers.base import TimedEvent

    t0 = time.monotonic()
    tc = TimeConfig(start_ms=START, events_per_second=1000.0, out_of_order_fraction=0.1)
    assert tc.is_simulated and TimeConfig(simulated=True).is_simulated
    events: list[TimedEvent] = take(streams.stream("web", 4, tc), 50_000)
    # web: one tick of 1 ms per event, whatever the wall clock did meanwhile
    assert [ts for *_, ts in events] == [START + n for n in range(1, 50_001)]
    assert time.monotonic() - t0 < 50  # 50 s of event time, generated much faster
    jittered = [ts - r["event_time"] for _, r, _, ts in events]
    assert all(0 <= d < 3000 for d in jittered)
    assert 0.07 < sum(1 for d in jittered if d) / len(jittered) < 0.13
    # all domains, no jitter: readings are stamped with their event time; gaming emits a KILL
    # with its DEATH and ASSIST (and a SPAWN first) at once, stamped with the clock after the
    # last of them (<= 3 ticks later); scheduled security events and attack requests go out at
    # the first tick at or after their time. No timestamp is behind its record's event time.
    none = TimeConfig(start_ms=START, events_per_second=900.0, out_of_order_fraction=0.0)
    step = 1000 / 300
    lags: dict[str, list[int]] = collections.defaultdict(list)
    for _, rec, topic, ts in take(streams.stream("all", 4, none), 60_000):
        lags[topic].append(ts - rec["event_time"])
    assert set(lags["iot.sensor-readings"]) == {0}
    assert (
        0 <= min(lags["gaming.player-events"]) <= max(lags["gaming.player-events"]) <= 3 * step + 1
    )
    for topic in ("iot.security-events", "web.access-logs"):
        assert 0 <= min(lags[topic]) <= max(lags[topic]) < 1000, topic
    # asked for explicitly, the same stream without timestamps
    plain = take(streams.stream("web", 4, tc, timed=False), 3)
    assert [len(e) for e in plain] == [3, 3, 3]
    assert [e[:3] for e in events[:3]] == plain


# -- the demo's splice: scripted incidents at their own time, never ahead of the stream ----------


def _live(start: int, n: int, step: int) -> list[tuple[str, dict[str, Any], str]]:
    return [("k", {"event_time": start + i * step, "i": i}, "t") for i in range(n)]


def test_demo_splices_each_scripted_event_after_the_stream_reaches_it() -> None:
    from flinkpulse.demo import splice

    live = _live(START, 1000, 10)  # 10 s of stream
    live[500][1]["event_time"] -= 3000  # out of order: must not hold anything back or forward
    scripted = [
        ("s", {"event_time": START + dt, "s": dt}, "t") for dt in (4005, 0, 2000, 2000, 99_999)
    ]
    out = list(splice(iter(live), scripted))
    assert [e for e in out if "i" in e[1]] == live  # the stream itself is untouched
    clock = 0
    released = []
    for i, (_, rec, _) in enumerate(out):
        if "i" in rec:
            clock = max(clock, rec["event_time"])
            continue
        assert rec["event_time"] <= clock  # never ahead of the stream
        prev_live = next(r for _, r, _ in reversed(out[:i]) if "i" in r)
        released.append((rec["s"], prev_live["i"]))
    # each right after the first live event that reaches it; the one after the end never goes
    assert released == [(0, 0), (2000, 200), (2000, 200), (4005, 401)]


def test_demo_splice_in_real_time_never_produces_before_event_time() -> None:
    import time

    from flinkpulse.demo import splice

    now = int(time.time() * 1000)
    scripted = [("s", {"event_time": now + dt, "s": dt}, "t") for dt in (300, 800, 1500)]
    live = streams.stream("gaming", 1, TimeConfig(events_per_second=2000.0), timed=False)
    early = []
    got = []
    for _, rec, _ in splice(live, scripted):
        if "s" in rec:
            at = time.time() * 1000
            got.append(rec["s"])
            early.append(rec["event_time"] > at)
            if len(got) == 3:
                break
    assert got == [300, 800, 1500]
    assert early == [False, False, False]


def test_demo_incidents_fit_in_the_run() -> None:
    from flinkpulse.demo import INCIDENTS_SPAN_S, incidents_start
    from producers.scenarios import all_incidents

    t0 = incidents_start(START, 120)
    assert t0 == START + 25_000
    times = [e[1]["event_time"] for e in all_incidents(t0)]
    assert min(times) == t0
    assert max(times) - t0 == INCIDENTS_SPAN_S * 1000
    assert max(times) <= START + 115_000  # out 5 s before a 120 s demo ends
    assert incidents_start(START, 600) == START + 150_000
    assert incidents_start(START, 40) == START + 5_000  # short demos start soon and cut the tail


def test_produce_cli_refuses_a_start_time_on_the_live_clock(capsys: Any) -> None:
    from flinkpulse import cli

    rc = cli.main(["produce", "gaming", "--clock", "live", "--start-time", "2026-01-01T00:00:00Z"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == [
        "flinkpulse: error: --start-time sets a simulated clock: drop it or use --clock simulated"
    ]


def test_washing_machines_run_a_daily_cycle() -> None:
    """Each machine runs one 90-minute cycle a day at its own hour (not 0 W all day)."""
    from producers import iot

    watts: list[float] = []
    for hour in range(0, 24, 2):
        start = 1_767_225_600_000 + hour * 3_600_000  # 2026-01-01 + hour, UTC
        gen = iot.generate(seed=3, time=TimeConfig(start_ms=start, events_per_second=2000.0))
        for _ in range(20_000):
            key, rec, topic = next(gen)[:3]
            if topic == "iot.sensor-readings" and rec.get("appliance") == "washing_machine":
                watts.append(rec["value"])
    running = [w for w in watts if w > 100.0]
    assert watts and 0.02 < len(running) / len(watts) < 0.2
    assert max(running) > 1800.0 and min(w for w in watts if w <= 100.0) >= 0.0


def test_iot_reference_names_every_device_and_moves_are_stamped_changes(
    parsed: dict[str, Any],
) -> None:
    """`produce iot` writes every device of the stream to iot.devices before the first event
    (valid, keyed by device_id, stamped at the stream's start); with move_every_s a climate
    sensor changes room at each move, its change stamped at the move and its readings from then
    on in the new room. Moves leave the rest of the stream of a seed as it was."""
    start = 1_767_225_600_000
    tc = TimeConfig(start_ms=start, events_per_second=2000.0)
    ref = streams.reference("iot", 5, tc)
    schema = parsed[iot.DEVICES]
    assert {t for _, _, t, _ in ref} == {iot.DEVICES}
    assert all(validate(r, schema) and k == r["device_id"] for k, r, _, _ in ref)
    assert {ts for *_, ts in ref} == {r["updated_at"] for _, r, _, _ in ref} == {start}
    events = take(streams.stream("iot", 5, tc), 40_000)
    devices = {r["device_id"]: r for _, r, _, _ in ref}
    for _, rec, topic, _ts in events:
        d = devices[rec["device_id"]]
        assert (d["home_id"], d["room"]) == (rec["home_id"], rec["room"]), topic
    moving = streams.stream("iot", 5, tc, options={"iot": {"move_every_s": 2.0}})
    moved = take(moving, 40_000)
    changes = [(r, ts) for _, r, t, ts in moved if t == iot.DEVICES]
    # 40,000 events (moves included) at 2,000/s: a move every 2 s of event time
    assert [ts - start for _, ts in changes] == list(range(2000, 20_000, 2000))
    assert [ts for _, ts in changes] == [r["updated_at"] for r, _ in changes]
    where = {d: r["room"] for d, r in devices.items()}
    for rec, ts in changes[:5]:  # a device reads every 10 s: a reading after each of these
        # a move changes the room, within the home; the device's next reading says the new room
        assert (
            rec["room"] != where[rec["device_id"]]
            and rec["home_id"] == devices[rec["device_id"]]["home_id"]
        )
        where[rec["device_id"]] = rec["room"]
        nxt = next(
            r
            for _, r, t, t2 in moved
            if t == iot.READINGS and r["device_id"] == rec["device_id"] and t2 > ts
        )
        assert nxt["room"] == rec["room"]
    last = {r["device_id"]: r["room"] for r, _ in changes}
    tail = [r for _, r, t, _ in moved[-2000:] if t == iot.READINGS and r["device_id"] in last]
    assert all(r["room"] == last[r["device_id"]] for r in tail)
    same = [(k, t, ts) for k, _, t, ts in moved if t != iot.DEVICES]
    assert same == [(k, t, ts) for k, _, t, ts in events[: len(same)]]


@pytest.mark.parametrize("anomalies", [True, False])
def test_gaming_reference_profiles_every_player_of_the_stream(
    anomalies: bool, parsed: dict[str, Any]
) -> None:
    """`produce gaming` writes a profile of every player the stream uses (valid, keyed by
    player_id, stamped at the start), tiers following skill, with or without cheaters."""
    start = 1_767_225_600_000
    tc = TimeConfig(start_ms=start, events_per_second=500.0)
    ref = streams.reference("gaming", 9, tc, anomalies=anomalies)
    assert {t for _, _, t, _ in ref} == {gaming.PLAYERS}
    assert all(validate(r, parsed[gaming.PLAYERS]) and k == r["player_id"] for k, r, _, _ in ref)
    assert {ts for *_, ts in ref} == {r["updated_at"] for _, r, _, _ in ref} == {start}
    gen = gaming.GamingGenerator(seed=9, time=tc, cheaters=anomalies)
    tiers = {p.id: gaming.tier(p.skill) for p in gen.players}
    assert {r["player_id"]: r["skill_tier"] for _, r, _, _ in ref} == tiers
    seen = {r["player_id"] for _, r, _, _ in take(streams.stream("gaming", 9, tc, anomalies), 5000)}
    assert seen <= set(tiers) and len(seen) > 50
    assert {r["region"] for _, r, _, _ in ref} == set(gaming.REGIONS)
    assert (
        gaming.tier(0.0) == "bronze" and gaming.tier(0.3) == "gold" and gaming.tier(1) == "diamond"
    )


def test_bad_demo_arguments_exit_2_with_one_line_before_any_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flinkpulse import cli

    assert cli.main(["demo", "--seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert "--seconds and --rate must be positive" in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("args", "given"),
    [
        (["demo", "--topic-prefix", "me."], False),
        (["--topic-prefix", "me.", "demo"], False),
        (["demo"], True),  # an in-process caller's config (the demo's own commands) wins
    ],
)
def test_a_demo_into_topics_the_running_loader_does_not_read_is_one_line_and_exit_2(
    args: list[str], given: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stack's loader, once running, keeps the topics it was started with: a demo with
    another prefix used to produce results it never loaded, and fail after its whole timeout
    with 'no rows yet'. (With no loader running, the demo starts one with its own settings.)"""
    from flinkpulse import cli
    from flinkpulse.config import load_config
    from flinkpulse.loader.component import LoaderComponent
    from flinkpulse.stack.base import Proc

    class Sleeper(LoaderComponent):  # the real component's identity and config, a stand-in process
        def procs(self) -> list[Proc]:
            return [Proc("loader", [sys.executable, "-c", "import time; time.sleep(60)"])]

    state = ["--set", f"stack.state_dir={tmp_path}"]
    loader = Sleeper(load_config(overrides=[f"stack.state_dir={tmp_path}"]))
    loader.start()
    try:
        if given:
            assert cli.main(args, cfg=loader.cfg.with_prefix("me.")) == 2
        else:
            assert cli.main([*state, *args]) == 2
    finally:
        loader.stop()
    err = capsys.readouterr().err
    theirs = f"{loader.cfg.kafka.topic_prefix!r} and database {loader.cfg.clickhouse.database!r}"
    assert f"the stack's loader is running for topic prefix {theirs}" in err
    assert "this demo would use 'me.'" in err and err.count("\n") == 1, err


def test_progress_is_a_line_every_10_s_into_a_log_and_every_second_on_a_terminal() -> None:
    """`make demo > demo.log` got 120 progress lines for its two minutes: into a log or a pipe
    a line comes every 10 s; on a terminal, where it is rewritten in place, every second."""
    import io

    from producers.kafka import _report_every

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert _report_every(io.StringIO()) == 10.0
    assert _report_every(Terminal()) == 1.0
