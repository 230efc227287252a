"""One typed configuration object, passed down to every command, job and component.

Precedence: built-in defaults < config file (TOML) < environment < command-line flags.

* File: ``--config PATH``, else ``$FLINKPULSE_CONFIG``, else ``./flinkpulse.toml`` if present.
  The processes flinkpulse starts (jobs, the stack's loader and bridges) get the effective config
  as a file of their own (`write_config_file`), so they read what their starter read.
  Sections mirror the dataclasses below (``[kafka]``, ``[stack]``, ``[jobs.player_stats]``...).
* Environment: ``FLINKPULSE_<SECTION>__<KEY>`` (e.g. ``FLINKPULSE_STACK__KAFKA_PORT=19092``), plus
  the conventional ``KAFKA_BOOTSTRAP_SERVERS``, ``SCHEMA_REGISTRY_URL``, ``CLICKHOUSE_URL``,
  ``FLINK_JOBMANAGER`` (host:port of the REST endpoint).
* Flags: ``--set section.key=value`` (repeatable), the global ``--topic-prefix`` /
  ``--jobmanager``, and the commands' own flags.

The Config and its sections are frozen: `load_config` builds them once, and a caller that needs
other settings derives a changed copy (`Config.derive`, `Config.with_prefix`), so a config passed
down never changes under anyone's feet.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flinkpulse.errors import UsageError
from flinkpulse.paths import ROOT


@dataclass(frozen=True)
class StackConfig:
    """The embedded local stack: where state lives, ports, memory."""

    state_dir: str = ".flinkpulse"
    #: Maven-resolved jars (kafka/, flink/); default <state_dir>/jars
    jars_dir: str = ""
    host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "512m"
    flink_rest_port: int = 8081
    flink_rpc_port: int = 6123
    #: the JobManager's whole process. Its heap is what is left after the 512 MB metaspace,
    #: 128 MB off-heap and 192 MB overhead: at 1024m that was 192 MB, and eight jobs at once (two
    #: event-time runs of the four jobs) ran it out of heap, then out of the cluster. 704 MB here
    flink_jm_memory: str = "1536m"
    flink_tm_memory: str = "4096m"
    #: share of a TaskManager's Flink memory that is managed (off-heap): only batch operators
    #: (a backfill) and RocksDB use it here, the Python workers do not; the rest is heap
    flink_managed_fraction: float = 0.25
    #: the TaskManagers' garbage collector: "serial" (one thread, stop-the-world; the smallest
    #: footprint), "parallel" (stop-the-world on every core) or "g1". The other JVMs of the stack
    #: keep SerialGC (bench/README.md, "What fills the heap": parallel did not help)
    flink_tm_gc: str = "serial"
    flink_slots: int = 12
    #: keep a warm PyFlink client next to the cluster (process flink-submitter): a new
    #: streaming job is built and submitted in 3-5 s instead of a `flink run`'s 20-30 s
    flink_submitter: bool = True
    #: start Python UDF workers (process mode) by forking a warm interpreter that has imported
    #: Beam and PyFlink (a fork server per TaskManager, in its session: flinkpulse/stack/udf_fork.py)
    #: instead of a new one: `jobs submit all` 52-56 -> 34-38 s on 2 cores. Off: each worker is a
    #: fresh interpreter
    flink_udf_fork: bool = True
    #: TaskManager JVMs `stack up` starts (tests use 2, so failover is a real cluster's)
    taskmanagers: int = 1
    registry_port: int = 8085
    clickhouse_port: int = 8123
    superset_port: int = 8088
    #: Superset's own venv (its pins conflict with apache-flink's): `make setup-superset`
    superset_venv: str = ".venv-superset"
    superset_workers: int = 1
    #: MQTT broker (Eclipse Mosquitto, Debian package); the bridge `flinkpulse ingest mqtt`
    mqtt_port: int = 1883
    #: HTTP ingest endpoint `flinkpulse ingest http` (POST /v1/topics/<topic>/records)
    ingest_port: int = 8087
    #: JupyterLab over notebooks/ (`flinkpulse notebook`, stack component `jupyter`)
    jupyter_port: int = 8888
    #: components `stack up` starts, in order
    components: tuple[str, ...] = (
        "kafka",
        "registry",
        "mqtt",
        "ingest",
        "clickhouse",
        "flink",
        "loader",
        "superset",
    )

    def jars_path(self) -> Path:
        if not self.jars_dir:
            return self.state_path() / "jars"
        p = Path(self.jars_dir)
        return p if p.is_absolute() else (ROOT / p)

    def state_path(self) -> Path:
        p = Path(self.state_dir)
        return p if p.is_absolute() else (ROOT / p)


@dataclass(frozen=True)
class KafkaConfig:
    """How clients reach Kafka. Security settings are for production clusters (SASL/SCRAM, TLS)."""

    bootstrap_servers: str = ""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_ca_location: str = ""
    topic_prefix: str = ""
    #: partitions of every topic flinkpulse creates; jobs give the same results at any count
    partitions: int = 4

    def client_conf(self) -> dict[str, str]:
        """librdkafka (confluent-kafka) client settings."""
        conf = {"bootstrap.servers": self.bootstrap_servers}
        if self.security_protocol != "PLAINTEXT":
            conf["security.protocol"] = self.security_protocol
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf

    def java_properties(self) -> dict[str, str]:
        """Java Kafka client settings (Flink connector `properties.*`)."""
        props: dict[str, str] = {}
        if self.security_protocol != "PLAINTEXT":
            props["security.protocol"] = self.security_protocol
        if self.sasl_mechanism:
            props["sasl.mechanism"] = self.sasl_mechanism
            module = (
                "org.apache.kafka.common.security.scram.ScramLoginModule"
                if self.sasl_mechanism.startswith("SCRAM")
                else "org.apache.kafka.common.security.plain.PlainLoginModule"
            )
            props["sasl.jaas.config"] = (
                f'{module} required username="{self.sasl_username}" password="{self.sasl_password}";'
            )
        if self.ssl_ca_location:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = self.ssl_ca_location
        return props

    def topic(self, name: str) -> str:
        """The physical topic for a logical topic name (tests prefix every topic)."""
        return f"{self.topic_prefix}{name}"


@dataclass(frozen=True)
class RegistryConfig:
    """The schema registry clients use, and where the embedded one keeps its state."""

    url: str = ""
    #: compacted Kafka topic holding the embedded registry's state (not prefixed per test)
    topic: str = "_schemas"


@dataclass(frozen=True)
class ClickHouseConfig:
    url: str = ""
    database: str = "flinkpulse"
    user: str = ""
    password: str = ""


@dataclass(frozen=True)
class LoaderConfig:
    """The exactly-once loader (result topics -> ClickHouse, `flinkpulse load`)."""

    #: flush a batch at this many buffered rows ... (50,000: fewer, larger inserts won over
    #: 10,000 in interleaved runs, bench/README.md issue 17; ~25 MB more peak memory)
    batch_rows: int = 50000
    #: ... or when its oldest row has waited this long
    flush_interval_s: float = 1.0
    #: apply missing ClickHouse migrations at start
    migrate: bool = True
    #: seconds between metrics lines in the log
    stats_interval_s: float = 10.0
    #: seconds between samples into ClickHouse by the loader component's `quality` process:
    #: data quality per source topic (source_quality) and each job's throughput and lag
    #: (job_metrics, what `flinkpulse report` shows over its period); 0: no sampling
    quality_interval_s: float = 30.0

    #: more Kafka consumer properties of the loader, "key=value" (e.g. fetch.max.bytes=...);
    #: the exactly-once ones (isolation.level, no commits) cannot be changed
    consumer_properties: tuple[str, ...] = ()

    def consumer_pairs(self) -> dict[str, str]:
        """`consumer_properties` as a dict."""
        return option_pairs(self.consumer_properties, "loader")


#: Flink's claim modes for a restore (`flink run --claimMode`), as flinkpulse spells them
CLAIM_MODES = ("claim", "no_claim")


def option_pairs(items: tuple[str, ...], section: str) -> dict[str, str]:
    """Items of the form key=value (Flink options, Kafka properties) as a dict; a UsageError in
    one line for an item without `=` or whose key is no option name."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        # a Flink or Kafka option name: letters, digits, dots, dashes, underscores (a
        # `["a=b"]` from a shell reached Flink as the option `["a` before)
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.\-]+", key.strip()):
            raise UsageError(
                f"{section}: expected key=value with an option name as key, got {item!r} "
                "(lists are comma-separated: a=1,b=2)"
            )
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class AlertsConfig:
    """Alert delivery: `flinkpulse alerts tail`, and the webhook notifier (off when url is "")."""

    webhook_url: str = ""
    webhook_timeout_s: float = 5.0
    webhook_retries: int = 5


@dataclass(frozen=True)
class IngestConfig:
    """Device ingestion: the MQTT bridge and the HTTP endpoint (docs/ingest.md)."""

    #: host:port of the MQTT broker the bridge subscribes to; default: the local stack's
    mqtt_broker: str = ""
    #: MQTT client id of the bridge: its persistent session (QoS 1 messages queue while it is down)
    mqtt_client_id: str = "flinkpulse-bridge"
    #: broker credentials of the bridge and of `produce --via mqtt`; empty: the local stack's
    #: generated user (<state>/secrets/mqtt-ingest.password)
    mqtt_username: str = ""
    mqtt_password: str = ""
    #: messages handed to Kafka but not yet acknowledged by it (the MQTT receive window)
    mqtt_inflight: int = 1000
    #: bearer token of the HTTP endpoint; empty: the local stack's generated one
    #: (<state>/secrets/ingest.token)
    http_token: str = ""
    #: largest request body accepted (bytes); larger -> 413
    http_max_body: int = 1_048_576
    #: requests per second per client address (token bucket, burst = 2x); more -> 429
    http_rate: float = 50.0
    #: bearer-token authentication; off is refused on any address but loopback
    http_auth: bool = True


@dataclass(frozen=True)
class FlinkConfig:
    """Where jobs go and how they run."""

    jobmanager: str = ""  # host:port of the REST endpoint
    parallelism: int = 1
    checkpoint_interval_s: float = 5.0
    #: how long keyed state without a window to end it is kept (Flink's table.exec.state.ttl,
    #: processing time since the last write): the deduplication's event ids, the per-entity
    #: settings of the rules and devices joins. 10 min, not 1 h: the dedup state grows with the
    #: event rate × this, and the default TaskManager ran out of heap after ~1.4M events of the
    #: four jobs (12 min at 2,000 events/s, bench/README.md "A soak of the whole pipeline")
    state_ttl_s: int = 600
    #: how long after its event time a record may reach Kafka and still be on time; the
    #: watermark is the Kafka timestamp minus this, per partition (flink_jobs/common.py)
    watermark_delay_s: float = 5.0
    #: how far an event time may be ahead of its Kafka timestamp; further ahead is dead-lettered
    #: as "future" and never moves a watermark
    future_tolerance_s: float = 5.0
    #: a source partition without records for this long (processing time) stops holding the
    #: watermark back. Longer is safer when a job catches up a backlog on a busy machine (the
    #: source thread, blocked in its chained Python decoder, polls nothing for a while and its
    #: partitions count as idle: docs/event-time.md), shorter closes windows sooner on quiet ones
    idle_timeout_s: float = 10.0
    #: drop later copies of a source record (same event id, topics.DEDUP_KEYS) before any
    #: window; a copy is recognised while the first is in state: ``state_ttl_s``
    dedup: bool = True
    #: how long an event's identity is remembered to recognise its copies: "ttl" for
    #: ``state_ttl_s`` of processing time (exact copies and copies re-stamped with a later event
    #: time; the state grows with the event rate × the TTL), "watermark" until the watermark
    #: passes its event time (exact copies only; the state holds only the events not yet behind
    #: the watermark, but every row waits for it), "auto" watermark for the sources whose rows
    #: wait for it anyway in windows and patterns, ttl for those that reach an output as they
    #: arrive (security_alerts' raw security events, the archive). "auto" is the default since
    #: 2026-12-05: it keeps the heap flat where ttl filled the default TaskManager's at 4,000
    #: events/s within 9 minutes, and held twice ttl's rate (bench/README.md). A job keeps the
    #: value it was submitted with when it resumes (`PLAN_SETTINGS`).
    #: docs/techniques.md#deduplication
    dedup_state: str = "auto"
    #: a partition of the rules topic (config.rules) or of a reference topic (iot.devices)
    #: without records for this long stops holding back the watermark of the events it is
    #: joined with (docs/event-time.md)
    rules_idle_timeout_s: float = 1.0
    python_execution_mode: str = "process"
    #: decode the Avro sources in batches (a pandas UDF over Arrow columns) instead of one
    #: Python call per record: 1.1-1.24x the job's rate (bench/README.md); process mode only
    #: (thread mode decodes per record). Off by default: when a task fails over, Flink's Arrow
    #: operator can throw from close() (ClosedChannelException), which Flink treats as fatal
    #: and which shuts the whole TaskManager down (test_faults, 2026-12-01): a cancellation
    #: interrupt closes the Arrow stream's channel, and close() still writes its end marker
    #: (bench/README.md, "Why vectorized decoding can take a TaskManager down")
    vectorized_decode: bool = False
    #: chained operators pass records on without copying them (``pipeline.object-reuse``): the
    #: copies were a fifth of a job's TaskManager time; 1.3-2x the UDF jobs' rate, 1.1x the
    #: twins' (bench/README.md). Safe here: the jobs run only Flink's SQL operators and its
    #: Python operators, which copy what they keep
    object_reuse: bool = True
    #: one Python worker process per Python operator (``python.fn-execution.memory.managed =
    #: false``) instead of Flink's one per slot: a job with several decoders (security_alerts
    #: reads four sources) no longer queues them on one process, 1.3x its rate; no change for
    #: the single-source jobs (bench/README.md). The workers then live outside Flink's managed
    #: memory, which only they would use here (the state backend is on the heap)
    python_worker_per_operator: bool = True
    #: decode only the fields a job reads of a source, and let only the records it can use
    #: reach its deduplication and SQL (the job's `Needs`, flink_jobs/common.py): security_alerts
    #: reads three other jobs' topics for a few rules; off = every field of every record
    source_needs: bool = True
    bundle_size: int = 10000
    bundle_time_ms: int = 200
    arrow_batch_size: int = 10000
    #: more Flink options for every job, "key=value" (e.g. "pipeline.auto-watermark-interval=100 ms")
    extra_options: tuple[str, ...] = ()
    #: more Kafka consumer properties for every Kafka source, "key=value" (fetch.min.bytes=...)
    source_properties: tuple[str, ...] = ()
    #: more Kafka producer properties for every Kafka sink, "key=value" (linger.ms=...)
    sink_properties: tuple[str, ...] = ()

    def python_options(self) -> dict[str, str]:
        """The Python workers' Flink options, for the jobs and the session cluster's config.yaml alike."""
        return {
            "python.fn-execution.bundle.size": str(self.bundle_size),
            "python.fn-execution.bundle.time": str(self.bundle_time_ms),
            "python.fn-execution.arrow.batch.size": str(self.arrow_batch_size),
            # Python operators of a slot share one worker process while it draws managed memory
            "python.fn-execution.memory.managed": "false"
            if self.python_worker_per_operator
            else "true",
        }

    def pairs(self, items: tuple[str, ...]) -> dict[str, str]:
        """`extra_options` / `source_properties` / `sink_properties` as a dict (the text before the first `=`)."""
        return option_pairs(items, "flink")

    def claim_mode(self) -> str:
        """How a job takes over the checkpoint or savepoint it restores (`flink run
        --claimMode`). Flink's default, no_claim, never touches that snapshot but forces a full
        first checkpoint, which the changelog state backend cannot take: its job restored, then
        failed every checkpoint and restarted from the same snapshot forever (FLINK-40476). So
        claim with the changelog backend on: the job owns the snapshot and deletes it once
        newer checkpoints subsume it."""
        on = self.pairs(self.extra_options).get("state.changelog.enabled", "false")
        claim, no_claim = CLAIM_MODES
        return claim if on.strip().lower() == "true" else no_claim


@dataclass(frozen=True)
class ArchiveConfig:
    """The raw archive (`flinkpulse jobs submit archive`, docs/archive.md): files with
    Hive-style dt=/hour= partitions under `warehouse`, one directory per table."""

    #: a directory (default <state_dir>/warehouse) or URI (s3://..., needs Flink's S3 plugin)
    warehouse: str = ""
    #: parquet (columnar, compressed with `parquet_compression`), json (JSON lines, gzipped
    #: by `archive compress`) or avro (block-compressed with `codec`; ClickHouse cannot read
    #: Flink's Avro files: their root is a union). The archive_* views read parquet and json.
    format: str = "parquet"
    #: Parquet page compression (format parquet): zstd, snappy, gzip or uncompressed
    parquet_compression: str = "zstd"
    #: Avro block codec (format avro): zstandard, deflate, snappy, xz, bzip2 or null
    codec: str = "zstandard"
    #: roll a part file at this size or age (Firehose's buffer: 5 MB / 30 s); on every
    #: checkpoint too, when its files are committed
    roll_size: str = "5MB"
    roll_interval_s: int = 30
    #: compact the files of each checkpoint into files of up to this size
    compaction_size: str = "128MB"
    #: `flinkpulse archive expire` deletes partitions older than this many days (0: keep all)
    retention_days: int = 30
    #: `flinkpulse archive compress` gzips an hour partition this long after the hour ended
    #: (past the watermark delay and the roll interval: the job is done writing it)
    compress_after_s: int = 3600

    def warehouse_uri(self, state: Path) -> str:
        """The warehouse as a URI Flink can write to (file:// for a local directory)."""
        w = self.warehouse or str(state / "warehouse")
        if "://" in w:
            return w.rstrip("/")
        path = Path(w)
        return (path if path.is_absolute() else ROOT / path).resolve().as_uri()


@dataclass(frozen=True)
class Config:
    stack: StackConfig = field(default_factory=StackConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    clickhouse: ClickHouseConfig = field(default_factory=ClickHouseConfig)
    flink: FlinkConfig = field(default_factory=FlinkConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    #: per-job parameters (window sizes, thresholds...), job name -> key -> value (read-only:
    #: `derive(jobs=...)` makes a copy with other parameters)
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def finalize(self) -> Config:
        """A copy with the service addresses that were not given filled from the local stack's ports."""
        s = self.stack
        return self.derive(
            kafka={"bootstrap_servers": self.kafka.bootstrap_servers or f"{s.host}:{s.kafka_port}"},
            registry={"url": self.registry.url or f"http://{s.host}:{s.registry_port}"},
            clickhouse={"url": self.clickhouse.url or f"http://{s.host}:{s.clickhouse_port}"},
            ingest={"mqtt_broker": self.ingest.mqtt_broker or f"{s.host}:{s.mqtt_port}"},
            flink={"jobmanager": self.flink.jobmanager or f"{s.host}:{s.flink_rest_port}"},
        )

    def derive(self, **changes: Mapping[str, Any]) -> Config:
        """A copy with some settings changed, by section: ``cfg.derive(kafka={"partitions": 1})``.

        ``jobs={"web_traffic": {"session_gap_s": 30}}`` merges into that job's parameters. An
        unknown section or setting is a TypeError (nested `dataclasses.replace`); values are
        taken as given (typed callers), not coerced like `--set` strings.
        """
        sections: dict[str, Any] = {}
        for section, values in changes.items():
            if section == "jobs":
                jobs = {job: dict(params) for job, params in self.jobs.items()}
                for job, params in values.items():
                    jobs[job] = {**jobs.get(job, {}), **params}
                sections["jobs"] = jobs
                continue
            current = getattr(self, section, None)
            if not dataclasses.is_dataclass(current):
                raise TypeError(f"Config has no section {section!r}")
            sections[section] = dataclasses.replace(current, **values)  # type: ignore[type-var]
        return dataclasses.replace(self, **sections)

    def with_prefix(self, prefix: str) -> Config:
        """A copy whose topics carry this prefix (tests and benchmarks isolate their topics so)."""
        return self.derive(kafka={"topic_prefix": prefix})

    def job(self, name: str) -> dict[str, Any]:
        """A copy of one job's configured parameters (empty when none are set)."""
        return dict(self.jobs.get(name, {}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: the settings that choose a job's operators, not just how they run: Flink maps a snapshot's
#: state to operators by ids derived from the plan, so a job resumes with the values it was
#: submitted with (`jobstate.submitted_plan`), whatever the config says now. Each maps to what
#: the jobs did before the setting existed, for a submission whose config file lacks it (an
#: older flinkpulse): today's default would be the wrong plan. A new setting that swaps
#: operators, or changes the rows they keep, goes here with the behaviour it replaces;
#: tests/unit/test_plan_settings.py checks that no other ``flink.*`` choice changes a job's graph.
PLAN_SETTINGS: dict[tuple[str, str], Any] = {
    ("flink", "dedup"): False,  # 2026-11-30: no deduplication before
    ("flink", "dedup_state"): "ttl",  # 2026-12-01: the OVER count was the only one
    ("flink", "source_needs"): False,  # 2026-12-03: every field of every record
    ("flink", "vectorized_decode"): False,  # 2026-12-01: one Python call per record
}


#: section name -> its dataclass (every Config field but ``jobs``)
_SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Config)[f.name]
    for f in dataclasses.fields(Config)
    if f.name != "jobs"
}

_ENV_ALIASES = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers"),
    "SCHEMA_REGISTRY_URL": ("registry", "url"),
    "CLICKHOUSE_URL": ("clickhouse", "url"),
    "CLICKHOUSE_USER": ("clickhouse", "user"),
    "CLICKHOUSE_PASSWORD": ("clickhouse", "password"),
    "FLINK_JOBMANAGER": ("flink", "jobmanager"),
}


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Convert a string (from env/flags) or TOML value to the dataclass field's type."""
    origin = typing.get_origin(typ)
    if typ is bool or typ == "bool":
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"{where}: expected true/false, got {value!r}")
    if typ is int or typ == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise UsageError(f"{where}: expected an integer, got {value!r}") from None
    if typ is float or typ == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{where}: expected a number, got {value!r}") from None
    if origin in (list, tuple) or typ in ("list[str]", "tuple[str, ...]"):
        if isinstance(value, (list, tuple)):
            return tuple(str(v) for v in value)
        return tuple(v.strip() for v in str(value).split(",") if v.strip())
    return str(value) if not isinstance(value, (dict, list)) else value


#: settings gathered while loading, section -> key -> value (jobs: job -> param -> value);
#: `load_config` builds the frozen Config from them once
_Pending = dict[str, dict[str, Any]]


def _set(pending: _Pending, section: str, key: str, value: Any, where: str) -> None:
    """Check one ``section.key`` setting and record its value, coerced to the field's type."""
    if section == "jobs":
        job, _, param = key.partition(".")
        if not param:
            raise UsageError(f"{where}: job settings are jobs.<job>.<param>, got jobs.{key}")
        pending.setdefault("jobs", {}).setdefault(job, {})[param] = _auto(value)
        return
    cls = _SECTIONS.get(section)
    if cls is None:
        sections = ", ".join(f.name for f in dataclasses.fields(Config))
        raise UsageError(f"{where}: unknown section {section!r} (sections: {sections})")
    hints = typing.get_type_hints(cls)
    if key not in hints:
        keys = ", ".join(hints)
        raise UsageError(f"{where}: unknown setting {section}.{key} (known: {keys})")
    pending.setdefault(section, {})[key] = _coerce(value, hints[key], where)


def _auto(value: Any) -> Any:
    """Job parameters are free-form: turn '60' into 60 and '0.5' into 0.5, keep the rest."""
    if not isinstance(value, str):
        return value
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    return value


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Config:
    """Build the Config from defaults, file, environment and ``section.key=value`` overrides."""
    env = dict(os.environ) if env is None else env
    cfg: _Pending = {}
    file = path or env.get(CONFIG_ENV)
    if file is None and Path("flinkpulse.toml").exists():
        file = "flinkpulse.toml"
    if file:
        p = Path(file)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise UsageError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"config file {p} is not valid TOML: {e}") from None
        for section, values in data.items():
            if not isinstance(values, dict):
                raise UsageError(f"{p}: top-level key {section!r} must be a [section]")
            for key, value in values.items():
                if section == "jobs" and isinstance(value, dict):
                    for param, v in value.items():
                        _set(cfg, "jobs", f"{key}.{param}", v, str(p))
                else:
                    _set(cfg, section, key, value, str(p))
    for name, (section, key) in _ENV_ALIASES.items():
        if env.get(name):
            _set(cfg, section, key, env[name], f"${name}")
    for name, value in sorted(env.items()):
        if _is_override(name):
            section, _, key = name[len("FLINKPULSE_") :].lower().partition("__")
            _set(cfg, section, key.replace("__", "."), value, f"${name}")
    for item in overrides or []:
        k, sep, v = item.partition("=")
        section, _, key = k.strip().partition(".")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected section.key=value")
        _set(cfg, section, key, v, f"--set {k}")
    return Config().derive(**cfg).finalize()


#: the environment variable naming the config file (below ``--config``, above ./flinkpulse.toml)
CONFIG_ENV = "FLINKPULSE_CONFIG"


def sets_config(name: str) -> bool:
    """Whether the environment variable `name` changes the config `load_config` builds: an
    alias (``KAFKA_BOOTSTRAP_SERVERS``...), ``FLINKPULSE_<SECTION>__<KEY>`` or the file's
    name (CONFIG_ENV)."""
    return name in _ENV_ALIASES or name == CONFIG_ENV or _is_override(name)


def _is_override(name: str) -> bool:
    """``FLINKPULSE_<SECTION>__<KEY>``: one setting."""
    return name.startswith("FLINKPULSE_") and "__" in name


def to_toml(data: Mapping[str, Any]) -> str:
    """`Config.to_dict()` as TOML that `load_config` reads back to the same Config."""

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):  # tuple: the frozen config's list settings
            return "[" + ", ".join(val(x) for x in v) + "]"
        return json.dumps(str(v))

    out: list[str] = []
    for section, values in data.items():
        if section == "jobs":
            for job, params in values.items():
                out.append(f"[jobs.{job}]")
                out += [f"{k} = {val(v)}" for k, v in params.items()]
            continue
        out.append(f"[{section}]")
        out += [f"{k} = {val(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n"


def write_config_file(cfg: Config, path: Path) -> Path:
    """Write the effective config to `path` (owner-only: it may carry credentials given by the
    environment), for a process flinkpulse starts to read with ``--config`` or `CONFIG_ENV`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(to_toml(cfg.to_dict()))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


#: the config flags every entry point takes besides --config/--set: flag -> (setting, help)
SHORTCUT_FLAGS: dict[str, tuple[str, str]] = {
    "--topic-prefix": ("kafka.topic_prefix", "prefix every topic (tests, tenants)"),
    "--jobmanager": ("flink.jobmanager", "host:port of the JobManager REST endpoint"),
}


def add_config_args(parser: argparse.ArgumentParser, *, shortcuts_only: bool = False) -> None:
    """Declare the config flags: ``--config``, ``--set`` and the `SHORTCUT_FLAGS`.

    ``shortcuts_only``: a subcommand's parser, so the shortcuts work after the subcommand too;
    there they default to "not given" and never hide a value given before the subcommand.
    """
    if not shortcuts_only:
        parser.add_argument("--config", help="TOML config file (default: ./flinkpulse.toml)")
        parser.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="override one setting (repeatable), e.g. --set stack.kafka_port=19092",
        )
    for flag, (_setting, help_) in SHORTCUT_FLAGS.items():
        default = argparse.SUPPRESS if shortcuts_only else None
        parser.add_argument(flag, dest=_dest(flag), default=default, metavar="VALUE", help=help_)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def config_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> Config:
    """The Config the flags of `add_config_args` ask for (shortcuts are `--set`s given last)."""
    overrides = list(getattr(args, "overrides", None) or [])
    for flag, (setting, _) in SHORTCUT_FLAGS.items():
        value = getattr(args, _dest(flag), None)
        if value is not None:
            overrides.append(f"{setting}={value}")
    return load_config(getattr(args, "config", None), overrides, env)
