"""The topology: every topic flinkpulse uses, and creating them up front (Flink's Kafka source
needs them).

This module is the one source of truth for topics. ``TOPOLOGY`` lists each topic with its key,
its partitions policy, its topic config and the ClickHouse table its records land in; everything
else that lists topics is derived from it or tested against it (tests/unit/test_deploy_config.py):
the jobs' sources and sinks, the loader, the compose ``kafka-init`` TOPICS list, the Strimzi
KafkaTopics (deploy/k8s/base/kafka/topics.yaml), the SQL-client catalog and the Superset datasets.
It imports nothing above the core (flinkpulse.config, flinkpulse.errors).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError, ServiceUnreachable

SOURCE_TOPICS = [
    "gaming.player-events",
    "iot.sensor-readings",
    "iot.security-events",
    "web.access-logs",
]
#: result view (defined in the jobs' SQL) -> (result topic, Kafka key column): the one map the
#: jobs (sinks), topic creation and the loader (topic -> table of the same name) derive from
RESULTS: dict[str, tuple[str, str]] = {
    "player_stats": ("results.player-stats", "player_id"),
    "team_stats": ("results.team-stats", "team"),
    "leaderboard": ("results.leaderboard", "player_id"),
    "device_stats": ("results.device-stats", "device_id"),
    "energy_usage": ("results.energy-usage", "home_id"),
    "web_traffic": ("results.web-traffic", "path"),
    "path_latency": ("results.path-latency", "path"),
    "client_activity": ("results.client-activity", "client_ip"),
    "web_sessions": ("results.web-sessions", "client_ip"),
    "security_events": ("results.security-events", "home_id"),
    "alerts": ("alerts", "entity_id"),
}
RESULT_TOPICS = [topic for topic, _key in RESULTS.values()]

#: Source topics keep the producer's timestamp (CreateTime): the ingest tier (our producers, the
#: MQTT/HTTP bridges) stamps each record with its own clock when it sends it, and a scripted or
#: backfill producer can stamp its simulated clock. The jobs judge every event time against it
#: (flink_jobs/common.py). The broker refuses a timestamp more than an hour ahead of its own
#: clock: a producer host whose clock is that wrong is an outage, not a record to keep.
SOURCE_TOPIC_CONFIG = {
    "message.timestamp.type": "CreateTime",
    "message.timestamp.after.max.ms": "3600000",
}


#: logical source topic -> full name of the Avro record written to it (subject ``<topic>-value``)
SOURCE_RECORDS: dict[str, str] = {
    "gaming.player-events": "flinkpulse.gaming.PlayerEvent",
    "iot.sensor-readings": "flinkpulse.iot.SensorReading",
    "iot.security-events": "flinkpulse.iot.SecurityEvent",
    "web.access-logs": "flinkpulse.web.AccessLog",
}
#: logical source topic -> record field whose value is the Kafka key
SOURCE_KEYS: dict[str, str] = {
    "gaming.player-events": "player_id",
    "iot.sensor-readings": "device_id",
    "iot.security-events": "home_id",
    "web.access-logs": "client_ip",
}
#: logical source topic -> the record fields that identify one event: copies of a record (a
#: retried send, an at-least-once bridge) share them and are dropped by the jobs before any
#: window (flink_jobs/common.py `deduplicate`). Sensor readings carry no event id: a device
#: takes one reading of a kind per millisecond.
DEDUP_KEYS: dict[str, tuple[str, ...]] = {
    "gaming.player-events": ("event_id",),
    "iot.sensor-readings": ("device_id", "sensor_type", "event_time"),
    "iot.security-events": ("event_id",),
    "web.access-logs": ("event_id",),
}
#: live alert-rule parameters (flinkpulse.rules): compacted, keyed '<rule>/<scope>'; the newest
#: record of a key is the setting in force; the jobs read it as a versioned table
RULES_TOPIC = "config.rules"
RULES_RECORD = "flinkpulse.rules.RuleChange"
#: reference data (the producers write it at start and on change): compacted, keyed by the
#: entity; the newest record of a key is its current assignment; the jobs join their events with
#: its versioned table at the events' time (docs/techniques.md#enrichment-from-reference-tables)
DEVICES_TOPIC = "iot.devices"
DEVICES_RECORD = "flinkpulse.iot.Device"
PLAYERS_TOPIC = "gaming.players"
PLAYERS_RECORD = "flinkpulse.gaming.Player"


@dataclass(frozen=True)
class Versioned:
    """A compacted topic the jobs read whole as a versioned table: its kind (config: the live
    rules; reference: reference data), its record, the Kafka key, the record field that is its
    version time (the record's Kafka timestamp, stamped by its one writer) and the `.sql` file
    (sql/flink/) that makes the versioned table of its changes, if the jobs share one (the rules'
    table is the security_alerts SQL's own)."""

    kind: str
    record: str
    key: str
    version_time: str
    sql: str | None = None
    #: the ClickHouse table the loader keeps every version of its records in, if any (queries
    #: join with it as of their rows' time: sql/clickhouse/013_security_events_enriched.sql)
    table: str | None = None


#: compacted topic -> how the jobs read it as a versioned table (flink_jobs/common.py
#: `versioned_source`): the live rule parameters and the reference tables. The key of
#: config.rules is '<rule>/<scope>' (flinkpulse.rules.rule_key), not one record field.
VERSIONED: dict[str, Versioned] = {
    RULES_TOPIC: Versioned("config", RULES_RECORD, "rule/scope", "changed_at"),
    DEVICES_TOPIC: Versioned(
        "reference", DEVICES_RECORD, "device_id", "updated_at", "devices.sql", "device_assignments"
    ),
    PLAYERS_TOPIC: Versioned("reference", PLAYERS_RECORD, "player_id", "updated_at", "players.sql"),
}
#: the schema registry's own store (Confluent SR ``kafkastore.topic``) in deployments that run one
SCHEMAS_TOPIC = "_schemas"

DAY_MS = 86_400_000
#: retention in sized deployments (compose, Kubernetes): sources and results a week, alerts and
#: the dead-letter / late topics a month; -1 (forever) for the registry store, which is compacted
WEEK_MS, MONTH_MS = 7 * DAY_MS, 30 * DAY_MS
#: partitions of sources and results in compose and Kubernetes (their kafka.partitions)
DEPLOYED_PARTITIONS = 6


@dataclass(frozen=True)
class Topic:
    """One topic of the pipeline (logical name: without the deployment's ``topic_prefix``)."""

    name: str
    #: source | result | alerts | config | reference | dlq | late | dup | registry
    kind: str
    #: the value that is the Kafka key: a record field / result column; None: dlq./late. keep
    #: the original record's key, the registry store has its own
    key: str | None
    #: partitions policy: None = the deployment's ``kafka.partitions`` (compose and Kubernetes:
    #: 6); a number = that many in sized deployments (low-volume side topics). The local stack
    #: creates every topic with ``kafka.partitions`` (ensure_topics) so tests run any count.
    partitions: int | None
    #: retention in sized deployments (compose, Kubernetes); the local stack keeps the broker's
    retention_ms: int
    #: topic-level config every deployment sets, the local stack included
    config: Mapping[str, str] = field(default_factory=dict)
    #: ClickHouse table its records land in (the loader's topic -> table), if any
    table: str | None = None
    #: full Avro record name of its values (Confluent wire format), if fixed
    record: str | None = None
    #: who creates it where auto-creation is off: "jobs" (ensure_topics() with no list: the CLI,
    #: the demo, job submission), "loader" (its own dead-letter topics) or "registry" (its store)
    created_by: str = "jobs"

    def deployed_config(self) -> dict[str, str]:
        """The topic config of a sized deployment: retention and cleanup policy, then ``config``."""
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete", **self.config}


def dlq_topic(topic: str) -> str:
    """Where records of `topic` that cannot be decoded or validated go (original key and bytes)."""
    return f"dlq.{topic}"


def late_topic(topic: str) -> str:
    """Where records of a source topic that arrive behind the watermark go."""
    return f"late.{topic}"


def dup_topic(topic: str) -> str:
    """Where the jobs put the later copies of a source record already seen (deduplicated)."""
    return f"dup.{topic}"


def job_group(job: str) -> str:
    """The Kafka consumer group under which Flink job `job` commits its source offsets (at
    checkpoints): what its lag is measured against. Not prefixed: the topics are."""
    return f"flinkpulse-{job}"


def _topology() -> tuple[Topic, ...]:
    out = [
        Topic(
            t, "source", SOURCE_KEYS[t], None, WEEK_MS, SOURCE_TOPIC_CONFIG, None, SOURCE_RECORDS[t]
        )
        for t in SOURCE_TOPICS
    ]
    for view, (topic, key) in RESULTS.items():
        if topic == "alerts":
            out.append(
                Topic(topic, "alerts", key, 3, MONTH_MS, {}, view, "flinkpulse.alerts.Alert")
            )
        else:
            out.append(Topic(topic, "result", key, None, WEEK_MS, {}, view))
    out.extend(Topic(dlq_topic(t), "dlq", None, 1, MONTH_MS) for t in SOURCE_TOPICS)
    out.extend(Topic(late_topic(t), "late", None, 1, MONTH_MS) for t in SOURCE_TOPICS)
    out.extend(Topic(dup_topic(t), "dup", None, 1, MONTH_MS) for t in SOURCE_TOPICS)
    # rule parameters and reference tables: one partition, compacted and kept forever (a setting
    # or an assignment holds until it is changed)
    compact = {"cleanup.policy": "compact"}
    for name, v in VERSIONED.items():
        out.append(Topic(name, v.kind, v.key, 1, -1, compact, v.table, v.record))
        out.append(Topic(dlq_topic(name), "dlq", None, 1, MONTH_MS))
    # the loader dead-letters result records it cannot decode to dlq.<result topic>
    out.extend(
        Topic(dlq_topic(t), "dlq", None, 1, MONTH_MS, created_by="loader") for t in RESULT_TOPICS
    )
    out.append(Topic(SCHEMAS_TOPIC, "registry", None, 1, -1, compact, created_by="registry"))
    return tuple(out)


#: every topic of a deployment, in the order deployments list them
TOPOLOGY: tuple[Topic, ...] = _topology()
TOPICS: dict[str, Topic] = {t.name: t for t in TOPOLOGY}


def all_topics() -> list[str]:
    """Logical names created up front: sources, results, alerts, and dlq./late./dup. of each source
    (the loader creates its own dead-letter topics; the embedded registry keeps its own store)."""
    return [t.name for t in TOPOLOGY if t.created_by == "jobs"]


class TopicsNotServed(FlinkpulseError):
    """Kafka has created topics that its broker does not serve yet (transient: try again)."""


#: how long ensure_topics() waits for the broker to serve the topics it had to create
SERVED_TIMEOUT_S = 30.0


def ensure_topics(cfg: Config, logical: list[str] | None = None) -> list[str]:
    """Create missing topics (prefixed) and return once the broker serves them; returns the
    ones this call created. TopicsNotServed if it does not within SERVED_TIMEOUT_S."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    names = [cfg.kafka.topic(t) for t in (logical or all_topics())]
    admin = AdminClient({**cfg.kafka.client_conf(), "log_level": 0, "socket.timeout.ms": 5000})
    missing = missing_topics(admin, names, cfg.kafka.bootstrap_servers)
    if not missing:
        return []
    logical_of = {cfg.kafka.topic(t): t for t in (logical or all_topics())}
    futures = admin.create_topics(
        [
            NewTopic(
                n,
                num_partitions=cfg.kafka.partitions,
                replication_factor=1,
                config=dict(TOPICS[logical_of[n]].config) if logical_of[n] in TOPICS else {},
            )
            for n in missing
        ]
    )
    created = []
    for name, f in futures.items():
        try:
            f.result(timeout=30)
            created.append(name)
        except KafkaException as e:  # a concurrent creator won, or one just created: fine
            if not already_exists(e):
                raise
    await_served(admin, missing, cfg.kafka.bootstrap_servers)
    return [n for n in missing if n in created]


def await_served(
    admin: Any, names: list[str], servers: str, timeout: float = SERVED_TIMEOUT_S
) -> None:
    """Return once the broker serves each of `names`: its metadata has a leader for every
    partition. TopicsNotServed after `timeout` seconds.

    The controller answers CreateTopics before the broker serves the topics: seconds later when
    it is busy deleting many partitions, as a test session's teardowns do. A consumer that asks
    for a topic's partitions in that window hears "unknown topic", and one that assigns them
    from that answer reads nothing, for good (a CI run's MQTT test, reproduced under topic
    churn); a producer's records wait."""
    deadline = time.monotonic() + timeout
    pending = list(dict.fromkeys(names))
    while pending:
        left = max(1.0, min(10.0, deadline - time.monotonic()))
        pending = [
            name
            for name, desc in _describe(admin, pending, left).items()
            # an error (unknown to the broker yet), or a partition without its leader
            if isinstance(desc, Exception)
            or not desc.partitions
            or any(p.leader is None for p in desc.partitions)
        ]
        if pending and time.monotonic() >= deadline:
            raise TopicsNotServed(
                f"Kafka at {servers} created {', '.join(pending)} but does not serve "
                f"{'it' if len(pending) == 1 else 'them'} {timeout:.0f}s later"
            )
        if pending:
            time.sleep(0.1)


def _describe(admin: Any, names: list[str], timeout: float) -> dict[str, Any]:
    """name -> its TopicDescription, or the KafkaException describing it raised (unknown topic,
    broker unreachable...), in one DescribeTopics request: each caller reads errors its way."""
    from confluent_kafka import KafkaException, TopicCollection

    futures = admin.describe_topics(TopicCollection(names), request_timeout=timeout)
    out: dict[str, Any] = {}
    for name, f in futures.items():
        try:
            out[name] = f.result()
        except KafkaException as e:
            out[name] = e
    return out


def _unreachable(e: Exception) -> bool:
    """Whether a Kafka client error is librdkafka's own for a broker it cannot talk to."""
    from confluent_kafka import KafkaError

    err = e.args[0] if e.args else None
    codes = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN}
    return isinstance(err, KafkaError) and err.code() in codes


def existing_topics(
    consumer: Any, names: list[str], timeout: float = 10, servers: str | None = None
) -> dict[str, Any]:
    """name -> its metadata (confluent_kafka TopicMetadata) for each of `names` that exists,
    asking a consumer (which never auto-creates) about one topic at a time rather than listing
    the cluster's every topic. With `servers`, a broker that does not answer is
    ServiceUnreachable (the one-line error), else the client's exception."""
    from confluent_kafka import KafkaException

    out = {}
    for name in dict.fromkeys(names):
        try:
            meta = consumer.list_topics(name, timeout=timeout).topics.get(name)
        except KafkaException as e:
            if servers is not None and _unreachable(e):
                raise ServiceUnreachable("Kafka", servers) from None
            raise
        if meta is not None and meta.error is None:
            out[name] = meta
    return out


def missing_topics(admin: Any, names: list[str], servers: str) -> list[str]:
    """Which of `names` the cluster lacks, asking about those topics only: listing every
    topic costs with the cluster's size (0.8 s at 4,000 topics, each loader start)."""
    unique = list(dict.fromkeys(names))
    if not unique:
        return []
    missing = set()
    for name, desc in _describe(admin, unique, 10).items():
        if isinstance(desc, Exception):
            if _unreachable(desc):
                raise ServiceUnreachable("Kafka", servers) from None
            # unknown, or anything else: creating it settles it (exists: fine; else its error)
            missing.add(name)
    return [n for n in unique if n in missing]


def already_exists(e: Exception) -> bool:
    """Whether a topic-creation error says the topic exists (by Kafka's error code)."""
    from confluent_kafka import KafkaError

    err = e.args[0] if e.args else None
    return isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS


def delete_prefixed(cfg: Config, timeout: float = 30) -> list[str]:
    """Delete every topic named with `cfg`'s topic prefix (a bench run's or a test's own, all
    of it); returns their names. Best effort: a Kafka that cannot be reached deletes nothing.
    Refuses the empty prefix, which would name every topic of the cluster."""
    prefix = cfg.kafka.topic_prefix
    if not prefix:
        raise ValueError("delete_prefixed needs a topic prefix: '' names every topic")
    return delete_topics(cfg, lambda name: name.startswith(prefix), timeout)


def cluster_topics(cfg: Config, admin: Any = None) -> set[str]:
    """Every topic name of the cluster (a full listing: it costs with the cluster's size, so
    for clean-up, not for a hot path). Raises when Kafka does not answer."""
    if admin is None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({**cfg.kafka.client_conf(), "log_level": 0})
    return set(admin.list_topics(timeout=10).topics)


def delete_topics(cfg: Config, which: Callable[[str], bool], timeout: float = 30) -> list[str]:
    """Delete the cluster's topics whose full name `which` accepts; returns their names, sorted.
    Best effort: a Kafka that cannot be reached deletes nothing."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**cfg.kafka.client_conf(), "log_level": 0})
    try:
        names = sorted(t for t in cluster_topics(cfg, admin) if which(t))
        for f in admin.delete_topics(names).values() if names else []:
            f.result(timeout)
    except Exception:  # noqa: BLE001 - clean-up: what it could not delete stays, nothing else
        return []
    return names


def end_offsets(
    cfg: Config, partitions: list[tuple[str, int]], timeout: float = 10
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> its high watermark, in one ListOffsets request per broker (those
    Kafka cannot tell are left out; {} when it cannot be reached). A consumer's
    `get_watermark_offsets` asks one partition at a time on its fetch connection, where each
    request waits behind a long-poll fetch: ~0.4 s a partition for an assigned consumer of
    empty partitions, 17 s for the loader's 44 at start."""
    from confluent_kafka import IsolationLevel, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    if not partitions:
        return {}
    admin = AdminClient({**cfg.kafka.client_conf(), "log_level": 0})
    try:
        futures = admin.list_offsets(
            {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions},
            isolation_level=IsolationLevel.READ_UNCOMMITTED,
            request_timeout=timeout,
        )
    except Exception:  # noqa: BLE001 - cannot ask: nothing known
        return {}
    out = {}
    for tp, f in futures.items():
        try:
            out[(tp.topic, tp.partition)] = int(f.result(timeout).offset)
        except Exception:  # noqa: BLE001 - this partition unknown (deleted, no leader...)
            continue
    return out


def records_held(cfg: Config, logical: list[str], timeout: float = 10) -> int:
    """How many records the (prefixed) topics `logical` were written in all: the sum of their
    partitions' end offsets (0 for a topic that does not exist or cannot be asked about). What
    a job started from the earliest offset would have to catch up, if retention kept it."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**cfg.kafka.client_conf(), "log_level": 0})
    try:
        described = _describe(admin, [cfg.kafka.topic(t) for t in logical], timeout)
    except Exception:  # noqa: BLE001 - cannot ask: nothing known
        return 0
    partitions = [
        (name, p.id)
        for name, desc in described.items()
        if not isinstance(desc, Exception)
        for p in desc.partitions
    ]
    return sum(end_offsets(cfg, partitions, timeout).values())


def topic_ids(cfg: Config, names: list[str], timeout: float = 10) -> dict[str, str]:
    """Topic name -> Kafka's topic ID, in one DescribeTopics request (topics Kafka does not
    know are left out; {} when it cannot be reached). A topic deleted and created again, or a
    Kafka whose data was reset, has the same name and a new ID: the loader compares them."""
    from confluent_kafka.admin import AdminClient

    if not names:
        return {}
    admin = AdminClient({**cfg.kafka.client_conf(), "log_level": 0})
    try:
        described = _describe(admin, names, timeout)
    except Exception:  # noqa: BLE001 - cannot ask: nothing known
        return {}
    # a topic Kafka does not know (deleted, not yet created...) is left out
    return {n: str(d.topic_id) for n, d in described.items() if not isinstance(d, Exception)}
