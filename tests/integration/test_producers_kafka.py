"""Producers against the real broker and registry: what lands in Kafka decodes with
confluent-kafka's AvroDeserializer, matches the seeded generator, keeps the rate, evolves."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from flinkpulse import cli
from flinkpulse.config import Config
from flinkpulse.schemas import TOPIC_KEYS, TOPIC_RECORDS, schema, schema_str
from producers import streams
from producers.base import TimeConfig, take
from producers.kafka import AvroKafkaProducer

pytestmark = pytest.mark.integration

#: a simulated clock an hour back, on the hour: its records' Kafka timestamps too
START = (int(time.time()) // 3600 - 1) * 3_600_000


@pytest.fixture
def stack_cfg(ensure_stack: Any, cfg: Config) -> Config:
    """Kafka and the registry; one partition, so the order of a run is the order in the topic."""
    ensure_stack("kafka", "registry")
    return cfg.derive(kafka={"partitions": 1})


def consume(cfg: Config, topic: str, n: int, timeout: float = 60.0) -> list[Any]:
    """The first `n` messages of a (single-partition) topic, from the beginning."""
    c = Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": f"test-{topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None or msg.error():
                continue
            out.append(msg)
    finally:
        c.close()
    return out


def consume_all(cfg: Config, topic: str) -> list[Any]:
    """Every message currently in a (single-partition) topic."""
    c = Consumer({**cfg.kafka.client_conf(), "group.id": "test-watermarks"})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()
    msgs = consume(cfg, topic, high)
    assert len(msgs) == high
    return msgs


def decode_all(cfg: Config, topic: str, msgs: list[Any], reader: str | None = None) -> list[dict]:
    client = SchemaRegistryClient({"url": cfg.registry.url})
    de = AvroDeserializer(client, reader) if reader else AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    return [de(m.value(), ctx) for m in msgs]


def _ms(v: Any) -> Any:
    """AvroDeserializer turns timestamp-millis into datetimes; compare as epoch ms."""
    return int(v.timestamp() * 1000) if hasattr(v, "timestamp") else v


@pytest.mark.parametrize("domain", ["gaming", "iot", "web"])
def test_domain_roundtrip_is_valid_keyed_and_seeded(stack_cfg: Config, domain: str) -> None:
    cfg = stack_cfg
    n = 3000
    tc = TimeConfig(start_ms=START, events_per_second=500)
    expected = take(streams.stream(domain, 11, tc), n)
    prod = AvroKafkaProducer(cfg, streams.topics(domain))
    stats = prod.run(streams.stream(domain, 11, tc), count=n)
    assert (stats.sent, stats.delivered, stats.failed, stats.invalid) == (n, n, 0, 0)
    for logical in streams.event_topics(domain):
        topic = cfg.kafka.topic(logical)
        want = [(k, r) for k, r, t, _ in expected if t == logical]
        msgs = consume(cfg, topic, len(want))
        assert len(msgs) == len(want)
        # simulated clock: each record's Kafka timestamp (CreateTime) is its clock time
        stamps = [ts for _, _, t, ts in expected if t == logical]
        assert [m.timestamp() for m in msgs] == [(TIMESTAMP_CREATE_TIME, ts) for ts in stamps]
        got = decode_all(cfg, topic, msgs)
        assert [m.key().decode() for m in msgs] == [k for k, _ in want]
        for (key, rec), dec in zip(want, got, strict=True):
            assert key == rec[TOPIC_KEYS[logical]]
            assert {f: _ms(v) for f, v in dec.items()} == {f: rec.get(f) for f in dec}
        # the wire format names the schema registered for <topic>-value
        sid = int.from_bytes(msgs[0].value()[1:5], "big")
        client = SchemaRegistryClient({"url": cfg.registry.url})
        latest = client.get_latest_version(f"{topic}-value")
        assert msgs[0].value()[0] == 0 and sid == latest.schema_id
        assert json.loads(latest.schema.schema_str)["name"] == TOPIC_RECORDS[logical].split(".")[-1]


def test_seeded_run_in_kafka_is_identical_twice(stack_cfg: Config) -> None:
    cfg = stack_cfg
    tc = TimeConfig(start_ms=START, events_per_second=1000)
    topic = cfg.kafka.topic("web.access-logs")
    for _ in range(2):
        AvroKafkaProducer(cfg, ["web.access-logs"]).run(streams.stream("web", 5, tc), count=2000)
    msgs = consume(cfg, topic, 4000)
    assert len(msgs) == 4000
    first = [(m.key(), m.value()) for m in msgs[:2000]]
    second = [(m.key(), m.value()) for m in msgs[2000:]]
    assert first == second  # byte for byte


def test_month_old_simulated_data_is_kept_by_size_not_time(stack_cfg: Config) -> None:
    """The local broker retains by size: a backfill stamped a month back stays in its topic
    (with a 24 h time limit, Kafka deleted it at its next retention check, minutes later)."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    cfg = stack_cfg
    month_ago = (int(time.time()) // 3600 - 30 * 24) * 3_600_000
    tc = TimeConfig(start_ms=month_ago, events_per_second=100)
    stats = AvroKafkaProducer(cfg, ["web.access-logs"]).run(streams.stream("web", 3, tc), count=300)
    assert (stats.delivered, stats.failed) == (300, 0)
    topic = cfg.kafka.topic("web.access-logs")
    admin = AdminClient(cfg.kafka.client_conf())
    [fut] = admin.describe_configs([ConfigResource("topic", topic)]).values()
    conf = {k: v.value for k, v in fut.result(timeout=30).items()}
    assert (conf["retention.ms"], conf["retention.bytes"]) == ("-1", str(1 << 30))
    msgs = consume_all(cfg, topic)
    assert len(msgs) == 300
    stamps = [m.timestamp()[1] for m in msgs]  # 100/s from the start: 3 s of a month ago
    assert month_ago < min(stamps) and max(stamps) <= month_ago + 3_000


def test_rate_is_kept_within_5_percent(stack_cfg: Config) -> None:
    cfg = stack_cfg
    rate = 2000.0
    prod = AvroKafkaProducer(cfg, streams.topics("gaming"))
    stats = prod.run(
        streams.stream("gaming", 1, TimeConfig(events_per_second=rate)), rate=rate, duration=10
    )
    assert stats.failed == 0 and stats.delivered == stats.sent
    assert abs(stats.sent / 10.0 - rate) / rate < 0.05
    assert abs(stats.rate - rate) / rate < 0.05


def test_attacks_and_intrusions_in_kafka_only_when_enabled(stack_cfg: Config) -> None:
    from tests.unit.test_producers import _brute_force_ips, _security_patterns

    cfg = stack_cfg
    tc = TimeConfig(start_ms=START, events_per_second=300, out_of_order_fraction=0.0)
    opts = {
        "web": {"attack_interval_s": 10},
        "iot": {"occupancy_cycle_s": 300, "intrusion_probability": 0.3},
    }
    results = {}
    for on in (True, False):
        c = cfg.with_prefix(f"{cfg.kafka.topic_prefix}{'on' if on else 'off'}.")
        stream = streams.stream("all", 3, tc, anomalies=on, options=opts)
        AvroKafkaProducer(c, streams.topics("all")).run(stream, count=150_000)
        web_topic = c.kafka.topic("web.access-logs")
        sec_topic = c.kafka.topic("iot.security-events")
        web = decode_all(c, web_topic, consume_all(c, web_topic))
        sec = decode_all(c, sec_topic, consume_all(c, sec_topic))
        assert len(web) == 50_000 and sec
        for r in web + sec:
            r["event_time"] = _ms(r["event_time"])
        results[on] = (_brute_force_ips(web), _security_patterns(sec))
    assert len(results[True][0]) >= 1 and min(results[True][1]) >= 1
    assert results[False] == (set(), (0, 0))


def test_invalid_record_is_named_counted_and_the_run_goes_on(stack_cfg: Config) -> None:
    cfg = stack_cfg
    tc = TimeConfig(start_ms=START)
    events = take(streams.stream("gaming", 2, tc), 100)
    events[10][1]["damage"] = "lots"
    del events[20][1]["team"]
    prod = AvroKafkaProducer(cfg, ["gaming.player-events"])
    stats = prod.run(iter(events))
    assert (stats.invalid, stats.sent, stats.delivered, stats.failed) == (2, 98, 98, 0)
    assert "field 'damage'" in stats.errors[0] and "'lots'" in stats.errors[0]
    assert "field 'team'" in stats.errors[1]
    assert len(consume(cfg, cfg.kafka.topic("gaming.player-events"), 98)) == 98


def test_bad_fraction_sends_malformed_values_on_purpose(stack_cfg: Config) -> None:
    cfg = stack_cfg
    prod = AvroKafkaProducer(cfg, ["web.access-logs"], bad_fraction=0.1, seed=1)
    stats = prod.run(streams.stream("web", 1, TimeConfig(start_ms=START)), count=2000)
    assert stats.bad > 100 and stats.sent + stats.bad == 2000 == stats.delivered
    topic = cfg.kafka.topic("web.access-logs")
    msgs = consume(cfg, topic, 2000)
    client = SchemaRegistryClient({"url": cfg.registry.url})
    de = AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    failures = 0
    for m in msgs:
        try:
            de(m.value(), ctx)
        except Exception:
            failures += 1
    assert failures == stats.bad


def test_schema_evolution_v1_v2_and_a_breaking_v3(
    stack_cfg: Config, tmp_path: Path, capsys: Any
) -> None:
    cfg = stack_cfg
    logical = "gaming.player-events"
    topic = cfg.kafka.topic(logical)
    subject = f"{topic}-value"
    v1, v2 = schema("PlayerEvent", 1), schema("PlayerEvent", 2)
    tc = TimeConfig(start_ms=START)
    events = take(streams.stream("gaming", 7, tc), 200)
    # 1. produce with v1
    AvroKafkaProducer(cfg, [logical], schemas={logical: v1}).run(iter(events[:100]))
    client = SchemaRegistryClient({"url": cfg.registry.url})
    assert client.get_versions(subject) == [1]
    # 2. register v2 (BACKWARD compatible: platform is optional with a default), produce with it
    AvroKafkaProducer(cfg, [logical], schemas={logical: v2}).run(iter(events[100:]))
    assert client.get_versions(subject) == [1, 2]
    # 3. a consumer with the v2 reader schema reads both; the default fills v1 records
    got = decode_all(cfg, topic, consume(cfg, topic, 200), reader=schema_str(v2))
    assert [r["platform"] for r in got[:100]] == [None] * 100
    assert [r["platform"] for r in got[100:]] == [e[1]["platform"] for e in events[100:]]
    assert all(r["platform"] in ("PC", "PS5", "XBOX", "SWITCH") for r in got[100:])
    assert [r["event_id"] for r in got] == [e[1]["event_id"] for e in events]
    # 4. v3 adds a required field without a default: the registry refuses it, naming the field
    v3 = json.loads(json.dumps(v2))
    v3["fields"].append({"name": "score", "type": "int", "doc": "points"})
    with pytest.raises(SchemaRegistryError) as exc:
        client.register_schema(subject, Schema(schema_str(v3), "AVRO"))
    assert exc.value.http_status_code == 409 and "'score'" in exc.value.error_message
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in exc.value.error_message
    # ... and so does `flinkpulse schemas check` on a working tree that holds it
    src = Path(__file__).resolve().parents[2] / "avro_schemas"
    tree = tmp_path / "avro_schemas"
    shutil.copytree(src, tree)
    (tree / "flinkpulse.gaming.PlayerEvent" / "v3.avsc").write_text(json.dumps(v3, indent=2))
    capsys.readouterr()
    argv = [
        "--set",
        f"kafka.topic_prefix={cfg.kafka.topic_prefix}",
        "--set",
        f"registry.url={cfg.registry.url}",
    ]
    rc = cli.main([*argv, "schemas", "check", "--schema-dir", str(tree)])
    out = capsys.readouterr().out
    assert rc == 1
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert any(subject in f and "field 'score'" in f and "BACKWARD" in f for f in fails), out
    # the unchanged tree is fine
    rc = cli.main([*argv, "schemas", "check"])
    assert rc == 0, capsys.readouterr().out


# -- event time against the Kafka timestamp: the reference the jobs judge it by -----------------


def _cli_produce(cfg: Config, *args: str) -> int:
    """`flinkpulse produce ...` in-process against this test's prefixed topics."""
    return cli.main(
        [
            "--set",
            f"kafka.topic_prefix={cfg.kafka.topic_prefix}",
            "--set",
            f"kafka.partitions={cfg.kafka.partitions}",
            "produce",
            *args,
            "--quiet",
        ]
    )


def _times(cfg: Config, logical: str) -> list[tuple[int, int, int]]:
    """(Kafka timestamp type, Kafka timestamp, event_time) of every record in every partition
    of a topic, the value decoded with fastavro against the schema the producer wrote."""
    import fastavro

    from flinkpulse.schemas import latest_schema

    topic = cfg.kafka.topic(logical)
    c = Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": f"test-times-{topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        total = sum(ends.values())
        msgs: list[Any] = []
        deadline = time.monotonic() + 120
        while len(msgs) < total and time.monotonic() < deadline:
            msgs.extend(m for m in c.consume(10_000, 1.0) if not m.error())
    finally:
        c.close()
    assert len(msgs) == total
    schema = fastavro.parse_schema(latest_schema(TOPIC_RECORDS[logical]))
    out = []
    for m in msgs:
        rec: Any = fastavro.schemaless_reader(io.BytesIO(m.value()[5:]), schema, None)
        et = rec["event_time"]
        out.append((*m.timestamp(), int(et.timestamp() * 1000) if hasattr(et, "timestamp") else et))
    return out


def test_full_speed_never_writes_the_future(stack_cfg: Config) -> None:
    """`produce all --rate 0`: every record's event time is at most its Kafka timestamp (the
    wall clock when it was produced) and none is late (at most the jitter behind)."""
    cfg = stack_cfg.derive(kafka={"partitions": 4})
    before = int(time.time() * 1000)
    assert _cli_produce(cfg, "all", "--rate", "0", "--count", "150000", "--seed", "5") == 0
    after = int(time.time() * 1000)
    total = 0
    for logical in streams.event_topics("all"):
        times = _times(cfg, logical)
        total += len(times)
        assert {kind for kind, _, _ in times} == {TIMESTAMP_CREATE_TIME}
        assert all(before <= ts <= after for _, ts, _ in times)
        ahead = [(ts, et) for _, ts, et in times if et > ts]
        assert ahead == [], f"{len(ahead)} of {len(times)} in {logical} ahead, e.g. {ahead[:3]}"
        behind = max(ts - et for _, ts, et in times)
        assert behind < 4000, logical  # out of order by < 3 s, + a reading's age; never late
    assert total == 150_000


def test_simulated_clock_sets_the_kafka_timestamps(stack_cfg: Config) -> None:
    """`produce web --start-time T --rate 0`: Kafka timestamps are T + 1 ms per event (the
    simulated clock at 1000 events/s), event times at most that and within the jitter."""
    cfg = stack_cfg.derive(kafka={"partitions": 4})
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START / 1000))
    args = ("web", "--rate", "0", "--count", "5000", "--start-time", iso, "--seed", "2")
    assert _cli_produce(cfg, *args) == 0
    times = _times(cfg, "web.access-logs")
    assert sorted(ts for _, ts, _ in times) == [START + n for n in range(1, 5001)]
    assert all(0 <= ts - et < 3000 for _, ts, et in times)
    assert sum(1 for _, ts, et in times if ts == et) > 0.9 * 5000  # 5 % out of order by default


def test_ensure_topics_creates_only_the_missing_ones_with_their_configuration(
    stack_cfg: Config,
) -> None:
    """It asks the broker about the named topics only (not the whole cluster, whose listing
    took 0.8 s at 4,000 topics on every loader start); a second call finds them all."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    from flinkpulse.topics import TOPICS, ensure_topics, missing_topics

    cfg = stack_cfg
    first = ensure_topics(cfg, ["gaming.player-events", "dlq.gaming.player-events"])
    assert first == [
        cfg.kafka.topic("gaming.player-events"),
        cfg.kafka.topic("dlq.gaming.player-events"),
    ]
    assert ensure_topics(cfg, ["gaming.player-events", "web.access-logs"]) == [
        cfg.kafka.topic("web.access-logs")
    ]
    assert ensure_topics(cfg, ["gaming.player-events", "web.access-logs"]) == []
    admin = AdminClient(cfg.kafka.client_conf())
    servers = cfg.kafka.bootstrap_servers
    names = [cfg.kafka.topic("web.access-logs"), cfg.kafka.topic("no.such-topic")]
    # ensure_topics() returned once the broker served them: no waiting here
    assert missing_topics(admin, names, servers) == [cfg.kafka.topic("no.such-topic")]
    res = ConfigResource("topic", cfg.kafka.topic("gaming.player-events"))
    conf = admin.describe_configs([res])[res].result()
    want = dict(TOPICS["gaming.player-events"].config)
    assert want and {k: conf[k].value for k in want} == want


def test_ensure_topics_returns_once_the_broker_serves_them_while_it_deletes_many(
    stack_cfg: Config,
) -> None:
    """The controller answers CreateTopics before the broker serves the topics: seconds later
    while the broker deletes many partitions, as the session's teardowns do. A consumer that
    asked in that window was told "unknown topic" and assigned itself no partition (a CI run's
    MQTT test read nothing for 60 s). Right after ensure_topics() returns, a new consumer sees
    every partition with its leader, while 480 partitions are being deleted."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from flinkpulse.topics import ensure_topics

    cfg = stack_cfg
    admin = AdminClient(cfg.kafka.client_conf())
    junk = [cfg.kafka.topic(f"junk.t{i}") for i in range(80)]
    for f in admin.create_topics([NewTopic(n, 6, 1) for n in junk]).values():
        f.result(timeout=60)
    logical = ["iot.security-events", "iot.sensor-readings", "dlq.iot.security-events"]
    fresh = cfg.with_prefix(f"{cfg.kafka.topic_prefix}fresh.").derive(kafka={"partitions": 4})
    admin.delete_topics(junk)
    made = ensure_topics(fresh, logical)
    c = Consumer({**cfg.kafka.client_conf(), "group.id": "x"})
    try:
        seen = {n: c.list_topics(n, timeout=10).topics[n] for n in made}
    finally:
        c.close()
    assert {n: str(md.error) for n, md in seen.items() if md.error is not None} == {}
    assert {n: sorted(md.partitions) for n, md in seen.items()} == {
        fresh.kafka.topic(t): [0, 1, 2, 3] for t in logical
    }
    assert all(p.leader >= 0 for md in seen.values() for p in md.partitions.values())


def test_delete_prefixed_removes_this_prefix_s_topics_and_no_other(stack_cfg: Config) -> None:
    """How a bench run (and the lever harnesses) take their topics with them; a prefix that
    starts another's (`ab1.` vs `ab12.`) is not touched, nor is the empty prefix allowed."""
    from flinkpulse.topics import delete_prefixed, ensure_topics

    mine = stack_cfg.with_prefix(f"{stack_cfg.kafka.topic_prefix}ab1.")
    other = stack_cfg.with_prefix(f"{stack_cfg.kafka.topic_prefix}ab12.")
    made = ensure_topics(mine, ["gaming.player-events", "dlq.gaming.player-events"])
    kept = ensure_topics(other, ["gaming.player-events"])
    assert len(made) == 2 and len(kept) == 1
    assert delete_prefixed(mine) == sorted(made)
    c = Consumer({**stack_cfg.kafka.client_conf(), "group.id": "x"})
    try:
        deadline = time.monotonic() + 30
        while set(made) & set(c.list_topics(timeout=10).topics) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = set(c.list_topics(timeout=10).topics)
    finally:
        c.close()
    assert not set(made) & left and set(kept) <= left
    with pytest.raises(ValueError, match="needs a topic prefix"):
        delete_prefixed(stack_cfg.with_prefix(""))
