"""`flinkpulse demo` (`make demo`): the whole pipeline on the embedded stack, end to end.

Steps: stack up -> register schemas -> migrate ClickHouse -> import dashboards -> submit the
four jobs -> produce every domain for a while on the live clock (with one scripted incident per
alert rule spliced in, each event when the wall clock reaches its event time) -> wait until every table has rows -> print a summary from ClickHouse and
where to look. Re-running reuses what is there (running stack, running jobs, tables); a job
it has to start afresh on topics that hold earlier input reads from this run on, not the backlog.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.paths import cli_command

TABLES = [
    "player_stats",
    "team_stats",
    "leaderboard",
    "device_stats",
    "energy_usage",
    "web_traffic",
    "path_latency",
    "client_activity",
    "alerts",
    "security_events",
]
RULES = [
    "door_open_while_armed",
    "motion_while_away",
    "brute_force_login",
    "impossible_kill_rate",
    "energy_over_threshold",
]


def _step(n: int, total: int, what: str) -> float:
    print(f"[{n}/{total}] {what}", flush=True)
    return time.monotonic()


def _cli(cfg: Config, *argv: str) -> None:
    """Run a flinkpulse subcommand in-process with the demo's config (its --config, --set and
    --topic-prefix included); stop the demo on failure (message already shown)."""
    from flinkpulse.cli import main

    rc = main(list(argv), cfg=cfg)
    if rc != 0:
        raise FlinkpulseError(f"`flinkpulse {' '.join(argv)}` failed (exit {rc}); see above")


#: how long the scripted incidents last, from the first event to the last (the intrusion's DISARM)
INCIDENTS_SPAN_S = 90.0


def incidents_start(start_ms: int, seconds: float) -> int:
    """Event time (ms) of the first scripted incident in a run of `seconds` starting at
    `start_ms`: a quarter in, or earlier so that the last one is out 5 s before the end."""
    lead = min(0.25 * seconds, max(5.0, seconds - INCIDENTS_SPAN_S - 5.0))
    return start_ms + int(lead * 1000)


def splice(events: Iterator[Any], scripted: list[Any]) -> Iterator[Any]:
    """The live stream with the `scripted` events merged in at their own time: each goes out
    right after the first live event whose event time reaches its event time. Live event times
    never run ahead of the wall clock (producers.base.LiveClock), so neither does a scripted
    event, and it is never ahead of the stream it joins."""
    pending = sorted(scripted, key=lambda e: int(e[1]["event_time"]), reverse=True)
    due = int(pending[-1][1]["event_time"]) if pending else None
    clock = 0
    for ev in events:
        yield ev
        if due is None:
            continue
        t = ev[1]["event_time"]
        if t > clock:
            clock = t  # the stream's clock: jitter only moves single events back
        while due is not None and due <= clock:
            yield pending.pop()
            due = int(pending[-1][1]["event_time"]) if pending else None


def produce(cfg: Config, seconds: float, rate: float, seed: int) -> Any:
    """Every domain at `rate` events/s for `seconds` on the live clock (event time = the wall
    clock), with every scripted incident spliced in at its own real time."""
    from producers import streams
    from producers.base import TimeConfig
    from producers.kafka import AvroKafkaProducer
    from producers.scenarios import all_incidents

    topics = streams.topics("all")
    producer = AvroKafkaProducer(cfg, topics, seed=seed)
    tc = TimeConfig(events_per_second=rate)
    producer.send_reference(streams.reference("all", seed, tc))  # the devices, before any event
    live = streams.stream("all", seed, tc, timed=False)
    t0 = incidents_start(int(time.time() * 1000), seconds)
    events = splice(live, all_incidents(t0))
    return producer.run(events, rate=rate, duration=seconds, progress=sys.stderr, label="  ")


def _client(cfg: Config) -> Any:
    """The configured database as the read-only user (one-line error if ClickHouse is down)."""
    from flinkpulse.clickhouse.migrate import client

    return client(cfg, "reader", database=cfg.clickhouse.database)


def counts(cfg: Config, ch: Any = None) -> dict[str, int]:
    ch = ch or _client(cfg)
    return {t: int(ch.command(f"SELECT count() FROM {t}")) for t in TABLES}  # type: ignore[arg-type]


def wait_for_rows(cfg: Config, timeout: float, producing: threading.Thread) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    seen: dict[str, int] = {}
    ch = _client(cfg)
    while time.monotonic() < deadline:
        seen = counts(cfg, ch)
        rules = {r for (r,) in ch.query("SELECT DISTINCT rule FROM alerts").result_rows}
        if all(seen.values()) and rules >= set(RULES) and not producing.is_alive():
            return seen
        time.sleep(3)
    missing = [t for t, n in seen.items() if not n]
    if missing:
        raise FlinkpulseError(
            f"no rows yet in {', '.join(missing)} after {timeout:.0f}s — see "
            "`flinkpulse stack status` and `flinkpulse stack logs loader`"
        )
    return seen


def summary(cfg: Config) -> str:
    ch = _client(cfg)
    out: list[str] = []

    def table(title: str, sql: str, fmt: str) -> None:
        rows = ch.query(sql).result_rows
        out.append(title)
        out.extend("  " + fmt.format(*r) for r in rows)
        if not rows:
            out.append("  (none)")

    table(
        "Top players by K/D (latest full window; flagged cheaters left out, see Alerts):",
        "SELECT player_id, team, kills, deaths, kd_ratio FROM player_stats_fair "
        "WHERE window_end = (SELECT max(window_end) FROM player_stats) "
        "ORDER BY kd_ratio DESC, kills DESC LIMIT 5",
        "{:<16} {:<6} kills {:>3}  deaths {:>3}  K/D {:.2f}",
    )
    table(
        "Energy hogs (kWh, all windows without overlap):",
        "SELECT appliance, round(sum(kwh), 3) FROM energy_usage FINAL "
        "WHERE toUnixTimestamp(window_start) % 60 = 0 GROUP BY appliance ORDER BY 2 DESC LIMIT 5",
        "{:<16} {:>10} kWh",
    )
    table(
        "Alerts by rule:",
        "SELECT rule, count() FROM alerts FINAL GROUP BY rule ORDER BY rule",
        "{:<24} {:>5}",
    )
    table(
        "Web: requests, 5xx error rate, p95 latency (latest window):",
        "SELECT sum(requests), round(sum(errors) / sum(requests) * 100, 2), "
        "round(max(latency_p95), 1) FROM path_latency FINAL "
        "WHERE window_end = (SELECT max(window_end) FROM path_latency)",
        "{} requests, {}% errors, the slowest path's p95 {} ms",
    )
    return "\n".join(out)


def run(cfg: Config, seconds: float = 120, rate: float = 1500, timeout: float = 240) -> int:
    from flink_jobs import JOBS
    from flinkpulse import stack
    from flinkpulse.flinkrun import start_missing
    from flinkpulse.topics import SOURCE_TOPICS, ensure_topics, records_held

    total = 7
    t_all = time.monotonic()
    # what this run's jobs read if they start afresh: its own input, which the producers write
    # from step 6 on, at most 3 s out of order (a margin of 10 s before the run's start)
    run_start_ms = int(time.time() * 1000) - 10_000
    _step(
        1,
        total,
        "starting the local stack (Kafka, registry, MQTT broker and bridge, HTTP ingest, "
        "ClickHouse, Flink, loader, Superset)",
    )
    stack.up(cfg)
    _step(2, total, "registering Avro schemas")
    _cli(cfg, "schemas", "register")
    _step(3, total, "creating ClickHouse tables")
    _cli(cfg, "clickhouse", "migrate")
    _step(4, total, "importing Superset dashboards")
    _cli(cfg, "dashboards", "import")
    _step(5, total, "submitting the Flink jobs")
    ensure_topics(cfg)
    # a job started afresh reads its topics from the earliest offset. Earlier runs' input there
    # (the jobs were cancelled) would be a backlog that the catch-up limit of docs/event-time.md
    # sends partly to late.*: it starts at this run instead (docs/jobs.md)
    earlier = records_held(cfg, SOURCE_TOPICS)
    started = start_missing(cfg, list(JOBS), run_start_ms if earlier else None)
    for job, job_id, already in started:
        print(f"  {job:<16} {'already running' if already else 'running'} as {job_id}", flush=True)
    if earlier and not all(already for _, _, already in started):
        print(
            f"  the source topics hold {earlier:,} earlier records: the jobs started now read "
            "from this run on",
            flush=True,
        )
    _step(
        6,
        total,
        f"producing all domains at {rate:,.0f} events/s for {seconds:.0f}s "
        "(one scripted incident per alert rule, each at its own time)",
    )
    seed = random.SystemRandom().randrange(2**31)
    result: dict[str, Any] = {}
    producer = threading.Thread(
        target=lambda: result.setdefault("stats", produce(cfg, seconds, rate, seed)), daemon=True
    )
    producer.start()
    _step(7, total, "waiting for results in ClickHouse")
    seen = wait_for_rows(cfg, seconds + timeout, producer)
    producer.join()
    stats = result.get("stats")
    print("  rows: " + ", ".join(f"{t} {n:,}" for t, n in seen.items()))
    if stats is not None:
        print(f"  produced: {stats.summary()}")
    print()
    print(summary(cfg))
    print()
    s = cfg.stack
    print(f"Done in {time.monotonic() - t_all:.0f}s. Where to look:")
    print(f"  Flink UI     http://{s.host}:{s.flink_rest_port}")
    print(
        f"  Superset     http://{s.host}:{s.superset_port}  (user admin, password in "
        f"{s.state_path() / 'secrets' / 'superset-admin.password'})"
    )
    print(f"  ClickHouse   {cfg.clickhouse.url}  (database {cfg.clickhouse.database})")
    fp = cli_command()
    print(f"  Alerts       {fp} alerts tail")
    print(f"  SQL client   {fp} sql")
    print(f"  Stop         {fp} stack down  (the stack keeps running until then)")
    return 0
