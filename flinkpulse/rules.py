"""Live alert-rule parameters: the compacted topic ``config.rules``, read and written here.

A setting is one record keyed ``<rule>/<scope>`` (scope ``global`` or ``<kind>:<id>``, e.g.
``home:home-00042``); the newest record of a key is in force from its ``changed_at`` (also its
Kafka timestamp) on. ``security_alerts`` reads the topic as a versioned table and joins each
match at its event time: an entity's own setting, else the global one, else the job's configured
default (docs/rules.md). Every record also says who changed what from which value (the audit
trail; compaction keeps the newest per key, so the history of older changes lives in whoever
consumed them).
"""

from __future__ import annotations

import getpass
import io
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from flinkpulse.config import Config
from flinkpulse.errors import ServiceUnreachable, UsageError
from flinkpulse.schemas import latest_schema
from flinkpulse.topics import RULES_RECORD, RULES_TOPIC, ensure_topics


@dataclass(frozen=True)
class RuleParam:
    """The live parameter of one rule: its name, the entity kind of its per-entity scopes and
    the ``security_alerts`` job parameter that is its default."""

    rule: str
    param: str
    scope_kind: str
    job_param: str


#: rule -> its live parameter (the SQL of security_alerts joins these; docs/rules.md)
PARAMS: dict[str, RuleParam] = {
    "energy_over_threshold": RuleParam("energy_over_threshold", "watts", "home", "energy_threshold_w"),
    "brute_force_login": RuleParam("brute_force_login", "count", "ip", "brute_force_failures"),
}  # fmt: skip
GLOBAL = "global"


def rule_key(rule: str, scope: str) -> str:
    """The Kafka key of a setting: one per (rule, scope), so compaction keeps the newest."""
    return f"{rule}/{scope}"


def check(rule: str, scope: str, param: str | None = None, value: float | None = None) -> None:
    """Refuse (UsageError, exit 2) a rule, scope, parameter or value the jobs would not use."""
    spec = PARAMS.get(rule)
    if spec is None:
        raise UsageError(f"rule {rule!r} has no live parameters (rules: {', '.join(PARAMS)})")
    if scope != GLOBAL and not (scope.startswith(f"{spec.scope_kind}:") and scope.split(":", 1)[1]):
        raise UsageError(
            f"{rule} is set per {spec.scope_kind} or globally, not for scope {scope!r}"
        )
    if param is not None and param != spec.param:
        raise UsageError(f"{rule} takes --{spec.param}, not --{param}")
    if value is not None and not value > 0:
        raise UsageError(f"--{spec.param} must be a positive number, got {value:g}")


def _schema() -> dict[str, Any]:
    return latest_schema(RULES_RECORD)


def current(cfg: Config, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
    """Every setting in force: key -> its newest record (removed settings left out), read from
    the start of the topic to its end."""
    return {k: r for k, r in history(cfg, timeout).items() if r["value"] is not None}


def history(cfg: Config, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
    """key -> its newest record, removals (value null) included."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from flinkpulse.avro import DecodeError, Registry

    ensure_topics(cfg, [RULES_TOPIC])
    topic = cfg.kafka.topic(RULES_TOPIC)
    c = Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": f"flinkpulse-rules-{time.time_ns()}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    registry = Registry(cfg.registry.url)
    out: dict[str, dict[str, Any]] = {}
    try:
        try:
            meta = c.list_topics(topic, timeout=timeout)
        except Exception:
            raise ServiceUnreachable("Kafka", cfg.kafka.bootstrap_servers) from None
        parts = sorted(meta.topics[topic].partitions)
        ends = {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout) for p in parts
        }
        todo = {p for p, (lo, hi) in ends.items() if hi > lo}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            if (m.offset() or 0) + 1 >= ends[m.partition() or 0][1]:
                todo.discard(m.partition())
            if m.value() is None:
                continue
            try:
                rec = registry.decode(m.value())
            except DecodeError:
                continue  # not a setting (the jobs dead-letter it)
            out[rule_key(rec["rule"], rec["scope"])] = rec
    finally:
        c.close()
    return out


def change(
    cfg: Config,
    rule: str,
    scope: str,
    value: float | None,
    by: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Set (or with value None remove) a rule's parameter for a scope; the record written."""
    from fastavro import parse_schema, schemaless_writer

    from flinkpulse.avro import Registry
    from flinkpulse.producer import Producer

    check(rule, scope, value=value)
    before = history(cfg).get(rule_key(rule, scope))
    now = int(time.time() * 1000)
    rec = {
        "rule": rule,
        "scope": scope,
        "param": PARAMS[rule].param,
        "value": None if value is None else float(value),
        "previous": before["value"] if before else None,
        "changed_by": by or f"{getpass.getuser()}@{socket.gethostname()}",
        "reason": reason,
        "changed_at": now,
    }
    topic = cfg.kafka.topic(RULES_TOPIC)
    schema = _schema()
    schema_id = Registry(cfg.registry.url).register(f"{topic}-value", json.dumps(schema))
    buf = io.BytesIO()
    buf.write(b"\x00" + schema_id.to_bytes(4, "big"))
    schemaless_writer(buf, parse_schema(schema), rec)
    p = Producer({**cfg.kafka.client_conf(), "enable.idempotence": True, "log_level": 0})
    # the Kafka timestamp is the change's time: the jobs version the setting by it
    p.produce(topic, key=rule_key(rule, scope).encode(), value=buf.getvalue(), timestamp=now)
    if p.flush(10) != 0:
        raise ServiceUnreachable("Kafka", cfg.kafka.bootstrap_servers)
    return rec
