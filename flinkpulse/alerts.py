"""Alerts for people: a live one-line-per-alert tail, and a webhook notifier.

Alerts are incidents: each record is the newest state of one incident (``alert_id``), version 1
when it opens and a higher version with every update (more matches, later events, escalated
severity). The tail marks each line ``new`` or ``update #N``; both can skip updates.

Both read the ``alerts`` topic (read_committed: only alerts of committed Flink checkpoints)
and decode Avro through the registry like the loader. The notifier POSTs each alert as JSON
and retries with exponential backoff; it commits its consumer offset only after the webhook
accepted the alert (or the retries ran out), so a restart resends at most the alert in flight
(at-least-once; ``alert_id`` and ``version`` let the receiver deduplicate).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from flinkpulse.config import Config

log = logging.getLogger("flinkpulse.alerts")

TIME_FIELDS = ("first_event_time", "last_event_time", "detected_at")
_COLORS = {"CRITICAL": "\033[31m", "WARNING": "\033[33m", "INFO": "\033[36m"}


#: the rules of sql/flink/security_alerts.sql (tests/unit/test_alert_rules.py keeps them equal)
RULES = (
    "brute_force_login",
    "door_open_while_armed",
    "energy_over_threshold",
    "impossible_kill_rate",
    "motion_while_away",
)


def _iso(ms: Any) -> Any:
    if isinstance(ms, int):
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    if isinstance(ms, datetime):
        return ms.astimezone(UTC).isoformat(timespec="milliseconds")
    return ms


def to_json(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert as a JSON-ready dict: times as ISO-8601 UTC strings."""
    out = dict(alert)
    for f in TIME_FIELDS:
        if f in out:
            out[f] = _iso(out[f])
    out["attributes"] = dict(out.get("attributes") or {})
    return out


def version(alert: dict[str, Any]) -> int | None:
    """The incident update number (1 = opened); None for records written before incidents."""
    v = alert.get("version")
    return v if isinstance(v, int) else None


def is_update(alert: dict[str, Any]) -> bool:
    """True if the record updates an incident already reported (not its first record)."""
    v = version(alert)
    return v is not None and v > 1


def wanted(alert: dict[str, Any], rules: list[str] | None, new_only: bool = False) -> bool:
    """The tail's and notifier's filter: only `rules` (all if empty), no updates if `new_only`."""
    if rules and alert.get("rule") not in rules:
        return False
    return not (new_only and is_update(alert))


def format_line(alert: dict[str, Any], color: bool = False) -> str:
    """One readable line: time (UTC), severity, rule, entity, new/update #N, summary."""
    t = _iso(alert.get("detected_at") or alert.get("last_event_time"))
    when = str(t).replace("T", " ").replace("+00:00", "Z") if t else "-"
    sev = str(alert.get("severity") or "-")
    sev_txt = f"{sev:<8}"
    if color and sev in _COLORS:
        sev_txt = f"{_COLORS[sev]}{sev_txt}\033[0m"
    entity = f"{alert.get('entity_type') or '-'}={alert.get('entity_id') or '-'}"
    v = version(alert)
    state = "" if v is None else ("new        " if v <= 1 else f"update #{v:<3}")
    return (
        f"{when}  {sev_txt} {alert.get('rule') or '-':<22} {entity:<28} "
        f"{state}{alert.get('summary') or ''}"
    )


class Webhook:
    """POST alerts as JSON to one URL, retrying failures (connection errors, 5xx, 429)."""

    def __init__(
        self,
        url: str,
        retries: int = 5,
        timeout: float = 5.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import requests

        self.url = url
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.sleep = sleep
        self.session = requests.Session()

    def post(self, alert: dict[str, Any]) -> bool:
        """True once the webhook answered 2xx; False after `retries` retries (logged)."""
        import requests

        body = to_json(alert)
        last = ""
        for attempt in range(self.retries + 1):
            try:
                r = self.session.post(
                    self.url,
                    json=body,
                    timeout=self.timeout,
                    headers={"X-Flinkpulse-Alert-Id": str(body.get("alert_id", ""))},
                )
                if 200 <= r.status_code < 300:
                    return True
                last = f"HTTP {r.status_code}"
                if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                    break  # the receiver rejects this alert: retrying will not help
            except requests.RequestException as e:
                last = type(e).__name__
            if attempt < self.retries:
                self.sleep(min(30.0, self.backoff * 2**attempt))
        log.error("webhook %s: alert %s not delivered (%s)", self.url, body.get("alert_id"), last)
        return False


def stream(
    cfg: Config,
    from_beginning: bool = False,
    group: str | None = None,
    idle_timeout: float | None = None,
    stop: Callable[[], bool] = lambda: False,
    since_ms: int | None = None,
) -> Iterator[tuple[dict[str, Any], Any]]:
    """(alert, message) as they arrive on the alerts topic; ends after `idle_timeout` s quiet.

    Without `group`, a throwaway consumer group (nothing committed); with one, its committed
    offsets (the caller commits). `since_ms`: start at the first alert with a Kafka timestamp
    at or after it, in every partition (instead of the end, or the oldest with `from_beginning`).
    """
    from confluent_kafka import Consumer

    from flinkpulse.loader.avro import DecodeError, Decoder
    from flinkpulse.topics import ensure_topics

    ensure_topics(cfg, ["alerts"])
    topic = cfg.kafka.topic("alerts")
    consumer = Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": group or f"flinkpulse-alerts-tail-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "log_level": 3,
        }
    )
    decoder = Decoder(cfg.registry.url)
    if since_ms is None:
        consumer.subscribe([topic])
    else:

        def seek(c: Any, parts: list[Any]) -> None:
            """Each assigned partition from its first offset at or after `since_ms` (none: the
            end, where new alerts will come)."""
            for p in parts:
                p.offset = since_ms
            c.assign(c.offsets_for_times(parts, timeout=10))

        consumer.subscribe([topic], on_assign=seek)
    last = time.monotonic()
    try:
        while not stop():
            m = consumer.poll(0.2)
            if m is None:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                continue
            if m.error() is not None:
                continue
            last = time.monotonic()
            try:
                alert = decoder.decode(m.value())
            except DecodeError as e:
                log.warning(
                    "undecodable alert at %s[%d]@%d: %s", topic, m.partition(), m.offset(), e
                )
                continue
            yield alert, (consumer, m)
    finally:
        consumer.close()


def tail(
    cfg: Config,
    rules: list[str] | None = None,
    from_beginning: bool = False,
    max_alerts: int | None = None,
    idle_timeout: float | None = None,
    webhook: Webhook | None = None,
    out: TextIO | None = None,
    color: bool = False,
    new_only: bool = False,
    since_ms: int | None = None,
) -> int:
    """Print alerts (optionally only `rules`, only new incidents, from `since_ms` on) as they
    arrive; returns how many were printed."""
    import sys

    out = out or sys.stdout
    n = 0
    for alert, _ in stream(cfg, from_beginning, idle_timeout=idle_timeout, since_ms=since_ms):
        if not wanted(alert, rules, new_only):
            continue
        print(format_line(alert, color), file=out, flush=True)
        if webhook is not None:
            webhook.post(alert)
        n += 1
        if max_alerts is not None and n >= max_alerts:
            break
    return n


def notify(
    cfg: Config,
    webhook: Webhook,
    rules: list[str] | None = None,
    idle_timeout: float | None = None,
    stop: Callable[[], bool] = lambda: False,
    new_only: bool = False,
) -> tuple[int, int]:
    """Post every new alert (and incident update, unless `new_only`) to the webhook (consumer
    group: resumes after a restart). Returns (delivered, failed).
    """
    ok = failed = 0
    group = f"flinkpulse-notifier-{cfg.kafka.topic_prefix}{webhook.url}"
    for alert, (consumer, msg) in stream(
        cfg, from_beginning=True, group=group, idle_timeout=idle_timeout, stop=stop
    ):
        if wanted(alert, rules, new_only):
            if webhook.post(alert):
                ok += 1
            else:
                failed += 1
        consumer.commit(message=msg, asynchronous=False)
    return ok, failed


def alert_json_line(alert: dict[str, Any]) -> str:
    return json.dumps(to_json(alert), sort_keys=True)
