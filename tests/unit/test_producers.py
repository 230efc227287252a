"""The generators: valid against the schemas, seeded, realistic, anomalies only when enabled."""

from __future__ import annotations

import collections
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate

from producers import gaming, iot, streams, web
from producers.base import TimeConfig, take
from producers.schemas import TOPIC_KEYS, TOPIC_RECORDS, latest_schema

pytestmark = pytest.mark.unit

START = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def _tc(rate: float = 200.0, **kw: Any) -> TimeConfig:
    return TimeConfig(start_ms=START, events_per_second=rate, **kw)


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    return {t: fastavro.parse_schema(latest_schema(r)) for t, r in TOPIC_RECORDS.items()}


@pytest.mark.parametrize("domain", ["gaming", "iot", "web"])
def test_every_record_valid_and_keyed_per_design(domain: str, parsed: dict[str, Any]) -> None:
    events = take(streams.stream(domain, 3, _tc()), 20_000)
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
    events = take(streams.stream(domain, 5, _tc(50_000, late_fraction=0.01)), 20_000)
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
