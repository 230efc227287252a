"""Issue 14: event time that holds at any scale and against skewed clocks.

* Parity: the same scripted bounded input (seeded generators of the three domains, their own
  anomalies off, plus every scripted incident: one per rule, so every count is known, and a
  live rule change between the two windows of the energy spike) runs through all four jobs at
  (partitions, parallelism) = (1, 1) and (6, 2); every window result and every alert must
  match exactly, the rule join included.
* The findings report of that input: the 1 x 1 run's results are loaded into ClickHouse and its
  jobs' metrics sampled while they run (tests/report_pipeline.py); `flinkpulse report` for the
  input's period shows the figures derived from the input itself.
* Skewed clock: one device writes with its clock 10 minutes fast while the others are right.
  Its records are dead-lettered as "future" with the reason and counted; the others lose
  nothing to late.*: every reading of theirs is in the windows (exact per-device counts).

The scripted input runs on a simulated clock: each record's Kafka timestamp is the producer's
clock at send time (the running maximum of event time), as it is for live data.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flink_jobs import JOBS
from flinkpulse import quality, rules, topics
from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.flinkrest import FlinkRest, job_name
from producers import scenarios, streams
from producers.base import TimeConfig
from tests.pipeline_helpers import Reader, Writer, deployment, settle_all
from tests.report_pipeline import ReportRun, expected

pytestmark = pytest.mark.integration

MINUTE = 60_000
TIMEOUT = 240
SENSOR = "iot.sensor-readings"


def scripted_input(t0: int) -> list[tuple[str, dict[str, Any], str, int]]:
    """(key, record, topic, Kafka timestamp): 2 minutes of all three domains with every scripted
    incident, then the `closers` 6 minutes later."""
    gen = streams.stream(
        "all",
        20261130,
        TimeConfig(start_ms=t0, events_per_second=60.0),
        anomalies=False,
        timed=False,
    )
    evs = [next(gen) for _ in range(7200)] + scenarios.all_incidents(t0 + 20_000)
    evs.sort(key=lambda e: int(e[1]["event_time"]))
    out: list[tuple[str, dict[str, Any], str, int]] = []
    clock = 0
    for key, rec, topic in evs:
        clock = max(clock, int(rec["event_time"]))
        out.append((key, rec, topic, clock))
    return out + closers(t0)


def closers(t0: int) -> list[tuple[str, dict[str, Any], str, int]]:
    """One record per source topic at t0 + 8 min: its watermark closes every window of the
    input. None of them completes an incident, and the windows they open never close."""
    closer = t0 + 8 * MINUTE
    out = []
    for key, rec, topic in scenarios.brute_force(closer)[:1] + scenarios.cheater(closer)[:1]:
        out.append((key, {**rec, "event_id": f"closer-{topic}"}, topic, closer))
    for key, rec, topic in scenarios.intrusion(closer)[:1] + scenarios.energy_spike(closer)[:1]:
        out.append((key, rec, topic, closer))
    return out


#: when the scripted rule change takes effect, after t0: between the energy spike's two windows
RULE_CHANGE_MS = 70_000


def scripted_rules(t0: int) -> list[tuple[str, dict[str, Any], str, int]]:
    """(key, record, topic, Kafka timestamp) of the live rule changes of the input, as
    `flinkpulse rules set` writes them: the spike's home (8.5 kW from t0 + 20 s to t0 + 90 s)
    gets a threshold of 8 kW at t0 + 70 s. Its first window (ending t0 + 60 s) is judged by the
    default 7 kW, its second by 8 kW: both alert, with different thresholds, at any scale."""
    at = t0 + RULE_CHANGE_MS
    scope = f"home:{scenarios.DEMO_HOME}"
    rec = {
        "rule": "energy_over_threshold", "scope": scope, "param": "watts", "value": 8000.0,
        "previous": None, "changed_by": "test_event_time", "reason": "parity", "changed_at": at,
    }  # fmt: skip
    return [(rules.rule_key(rec["rule"], scope), rec, topics.RULES_TOPIC, at)]


def _norm(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return tuple(sorted((k, _norm(x)) for k, x in v.items()))
    return v


def restarts(cfg: Config) -> int:
    """How often the four jobs of `cfg` have restarted (their numRestarts metrics)."""
    rest = FlinkRest(cfg)
    names = {job_name(cfg, job) for job in JOBS}
    n = 0
    for j in rest.live():  # one job list for all four
        if j["name"] in names:
            got = rest.call("GET", f"/jobs/{j['jid']}/metrics?get=numRestarts") or []
            n += sum(int(float(m["value"])) for m in got if m.get("id") == "numRestarts")
    return n


def _results(
    cfg: Config,
    views: list[str],
    done: Callable[[dict[str, list[Any]]], bool],
    closing: Callable[[], None],
) -> Any:
    """Every result record of `views` once `done` holds and the topics are quiet.

    A job restored from a checkpoint after it had read the whole input never closes the
    windows still open (docs/event-time.md, "A restart on a quiet stream"), and a loaded
    machine once timed a TaskManager out mid-test. So after each restart `closing` writes the
    closing records again; as duplicates they change no result."""
    readers = {v: Reader(cfg, topics.RESULTS[v][0], avro=True) for v in views}
    deadline = time.monotonic() + TIMEOUT
    seen = now = 0
    look = 0.0
    while True:
        for r in readers.values():
            r.poll(1.0)
        got = {v: r.values for v, r in readers.items()}
        if done(got):
            break
        if time.monotonic() > look:
            look = time.monotonic() + 10
            with contextlib.suppress(FlinkpulseError):  # a busy JobManager: ask next time
                now = restarts(cfg)
            if now > seen:
                seen = now
                closing()
                deadline = max(deadline, time.monotonic() + TIMEOUT / 2)
        assert time.monotonic() < deadline, (
            {v: len(x) for v, x in got.items()},
            sorted({a["rule"] for a in got["alerts"]}),
        )
    # then quiet on every topic at once for longer than two checkpoints (the sinks publish at
    # checkpoints). `done` waits for each alert it knows of, the energy incident's second
    # window (the rule change's) included: a joint 5 s settle once ended before that one came
    settle_all(list(readers.values()), 2 * cfg.flink.checkpoint_interval_s + 2)
    out = {}
    for v, r in readers.items():
        # detected_at is when Flink saw it (wall clock): the one field allowed to differ
        out[v] = Counter(
            tuple(sorted((k, _norm(x)) for k, x in rec.items() if k != "detected_at"))
            for rec in r.values
        )
        r.close()
    return out


def _run(
    base: Config, partitions: int, parallelism: int, t0: int, report: ReportRun | None = None
) -> Any:
    # visits end 30 s after a client's last request: all closed once the last HOP windows are
    cfg = base.derive(
        kafka={"partitions": partitions},
        # the input (rule change included) is in Kafka before the jobs start: a replay, so the
        # rules topic gets time to be read before it counts as idle (docs/rules.md, Limits)
        flink={"parallelism": parallelism, "rules_idle_timeout_s": 30.0},
        jobs={"web_traffic": {"session_gap_s": 30}},
    )
    prefix = f"par{partitions}x{parallelism}{uuid.uuid4().hex[:5]}"
    views = list(topics.RESULTS)
    # the input spans [t0, t0 + 2 min): the HOP windows holding its last minute end at
    # t0 + 2:10 .. t0 + 2:50; once one ending at t0 + 2:30 is out, the watermark passed the rest
    last_window = t0 + 150_000

    def done(got: dict[str, list[Any]]) -> bool:
        windowed = [v for v in views if v not in ("alerts", "security_events", "web_sessions")]
        return (
            bool(got["web_sessions"])
            and all(
                any(int(r["window_end"].timestamp() * 1000) >= last_window for r in got[v])
                for v in windowed
            )
            and {a["rule"] for a in got["alerts"]}
            >= {
                "brute_force_login",
                "door_open_while_armed",
                "motion_while_away",
                "impossible_kill_rate",
            }
            # both windows of the energy spike: 7 kW, then the rule change's 8 kW
            and sum(a["rule"] == "energy_over_threshold" for a in got["alerts"]) >= 2
        )

    # the input is in Kafka before the jobs start: every partition has data from the first
    # poll on, so none wakes from idleness behind another one's watermark
    _write(cfg, prefix, scripted_input(t0) + scripted_rules(t0))
    with deployment(cfg, prefix, list(JOBS)) as dep, _observed(report, dep):
        res = _results(dep, views, done, lambda: _write(cfg, prefix, closers(t0)))
        sides = [Reader(dep, f"{s}.{src}") for s in ("dlq", "late") for src in topics.SOURCE_TOPICS]
        settle_all(sides, 2.0)
        for r in sides:
            assert not r.msgs, f"{len(r.msgs)} records in {r.topic}"
            r.close()
    return res


def _write(base: Config, prefix: str, events: list[tuple[str, dict[str, Any], str, int]]) -> None:
    """Create the prefixed topics (if new) and write `events` (key, record, topic, Kafka
    timestamp)."""
    from producers.kafka import AvroKafkaProducer

    cfg = base.with_prefix(f"{prefix}.")
    topics.ensure_topics(cfg)
    p = AvroKafkaProducer(cfg, [*topics.SOURCE_TOPICS, topics.RULES_TOPIC])
    for key, rec, topic, ts in events:
        assert p.send(key, rec, topic, timestamp=ts)
    assert p.flush() == 0


def _observed(report: ReportRun | None, dep: Config) -> Any:
    return report.observe(dep) if report else contextlib.nullcontext()


@dataclass
class Runs:
    t0: int
    small: Any
    report: ReportRun


@pytest.fixture(scope="module")
def runs(ensure_stack: Callable[..., Config], base_cfg: Config) -> Iterator[Runs]:
    """The scripted input through the four jobs at 1 x 1, its results also loaded into
    ClickHouse for the report test."""
    ensure_stack("kafka", "registry", "flink", "clickhouse")
    t0 = (int(time.time() * 1000) // MINUTE - 12) * MINUTE
    report = ReportRun()
    small = _run(base_cfg, 1, 1, t0, report)
    yield Runs(t0, small, report)
    report.drop()


def test_results_identical_at_1x1_and_6x2(runs: Runs, base_cfg: Config, reliability: Any) -> None:
    small, large = runs.small, _run(base_cfg, 6, 2, runs.t0)
    for view in topics.RESULTS:
        assert small[view], f"no {view} results"
        assert small[view] == large[view], (
            view,
            sum(small[view].values()),
            sum(large[view].values()),
            list((small[view] - large[view]).items())[:3],
            list((large[view] - small[view]).items())[:3],
        )
    # the rule join took part: the spike's windows were judged by the default, then the change
    energy = sorted(
        dict(dict(a)["attributes"])["threshold_w"]
        for a in small["alerts"]
        if dict(a)["rule"] == "energy_over_threshold"
    )
    assert energy == ["7000.0", "8000.0"], energy
    rows = sum(sum(c.values()) for c in small.values())
    reliability(
        "event time",
        "the same scripted input at 1 partition x parallelism 1 and at 6 x 2",
        "every window result and every alert identical; nothing late or dead-lettered",
        {"result records (each run)": rows, "result topics": len(small), "late": 0, "dlq": 0},
        lost=0,
        duplicated=0,
    )


#: each scripted incident (producers.scenarios) is one incident of its rule, with its events:
#: 6 failed logins + the success, ARM_AWAY + the door, ARM_AWAY + door + motion, 10 of the 12
#: kills, and the 8 + 6 readings of both appliances in the two energy windows of the spike
INCIDENT_EVENTS = {
    "brute_force_login": 7,
    "door_open_while_armed": 2,
    "motion_while_away": 3,
    "impossible_kill_rate": 10,
    "energy_over_threshold": 28,
}
#: a row of the report's "throughput and consumer lag per job over the period" table
JOB_ROW = r"{job} (\d+) ([\d,]+) ([\d,—]+)(?: [\d.,—]+){{3}} [\d,—]+ [\d,—]+ ([\d,—]+)"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_report_of_the_scripted_input_shows_the_figures_derived_from_it(
    runs: Runs, tmp_path: Path
) -> None:
    """Issue 20: `flinkpulse report` for the period of the scripted input, after the 1 x 1
    run's results went through the loader, shows the incidents per rule, the top appliance
    with its kWh, the error rate and each job's records read, all derived from the input."""
    from tests.integration.test_report import pdf_text

    rep = runs.report
    if rep.error is not None:
        raise rep.error
    assert rep.cfg is not None and rep.samples >= 1
    # to the minute after now: the jobs' metric samples (wall-clock times) are in it too
    start, end = runs.t0, (int(time.time() * 1000) // MINUTE + 2) * MINUTE
    delay_ms = int(rep.cfg.flink.watermark_delay_s * 1000)
    want = expected(scripted_input(runs.t0), start, end, delay_ms)
    out = tmp_path / "report.pdf"
    res = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "--set",
         f"kafka.topic_prefix={rep.cfg.kafka.topic_prefix}", "report", "--from", _iso(start),
         "--to", _iso(end), "--out", str(out), "--database", rep.cfg.clickhouse.database],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    text = pdf_text(out)
    assert f"incidents: {len(INCIDENT_EVENTS)}" in res.stdout, res.stdout
    for rule, events in INCIDENT_EVENTS.items():
        assert re.search(rf"\b{rule} 1 {events} 1 [A-Z]+\b", text), (rule, text[:3000])
    top = f"top appliance {want['top_appliance']} ({want['top_kwh']:.3f} kWh)"
    assert top in text, (want["kwh"], text[:2000])
    requests, errors = want["requests"], want["errors"]
    assert errors > 0 and requests > 1000, want
    rate = f"{100 * errors / requests:.2f} %"
    assert f"web error rate {rate}" in text
    assert f"{requests:,} requests, {errors:,} errors (5xx): error rate {rate}" in text
    # every job read exactly the input of its source topics, and ended with nothing behind
    for job, records in want["records_read"].items():
        row = re.search(JOB_ROW.format(job=job), text)
        assert row, (job, text[-4000:])
        samples, read, _, lag_last = row.groups()
        # security_alerts also read the input's rule change (config.rules)
        records += len(scripted_rules(runs.t0)) if job == "security_alerts" else 0
        assert int(samples) >= 1 and int(read.replace(",", "")) == records, (job, row[0])
        assert lag_last in ("0", "—"), row[0]


def _reading(dev: str, t: int, value: float) -> dict[str, Any]:
    return {
        "device_id": dev, "home_id": "home-skew", "room": "lab", "sensor_type": "TEMPERATURE",
        "value": value, "unit": "C", "appliance": None, "event_time": t,
    }  # fmt: skip


def test_a_fast_clock_never_moves_the_watermark(
    ensure_stack: Callable[..., Config], base_cfg: Config, reliability: Any
) -> None:
    """Device `fast` runs 10 minutes ahead; five honest devices report every second for two
    minutes. Every honest reading is in its windows; every fast one is in the DLQ as future."""
    ensure_stack("kafka", "registry", "flink")
    t0 = (int(time.time() * 1000) // MINUTE - 6) * MINUTE
    honest = [f"dev-{i}" for i in range(5)]
    prefix = f"skew{uuid.uuid4().hex[:6]}"
    pcfg = base_cfg.with_prefix(f"{prefix}.")
    topics.ensure_topics(pcfg)
    # written before the job starts (see _run): every honest partition has data from the start
    w = Writer(pcfg)
    for s in range(120):
        t = t0 + s * 1000
        for d in honest:
            w.avro(SENSOR, "honest", _reading(d, t, float(s)))
        w.avro(SENSOR, "10 min fast", _reading("fast", t + 10 * MINUTE, 1.0), ts=t)
    w.avro(SENSOR, "closer", _reading("closer", t0 + 5 * MINUTE, 0.0))
    w.flush()
    with deployment(base_cfg, prefix, ["device_stats"]) as cfg:
        stats = Reader(cfg, "results.device-stats", avro=True)
        # the window [t0+60s, t0+120s) holds the last minute of every honest device: 60 each
        stats.until(
            lambda r: (
                {
                    v["device_id"]
                    for v in r.values
                    if int(v["window_start"].timestamp() * 1000) == t0 + MINUTE
                }
                >= set(honest)
            ),
            TIMEOUT,
            "the last full window of every honest device",
        )
        stats.settle(5)
        dlq = Reader(cfg, f"dlq.{SENSOR}").until(lambda r: len(r.msgs) >= 120, 60, "120 dlq")
        dlq.settle(3)
        late = Reader(cfg, f"late.{SENSOR}")
        late.poll(3.0)

        by_window: dict[tuple[str, int], int] = {
            (v["device_id"], int(v["window_start"].timestamp() * 1000)): v["samples"]
            for v in stats.values
        }
        for d in honest:
            # HOP 60 s / 10 s over 120 one-second readings: windows starting t0-50s .. t0+110s
            for k in range(-5, 12):
                start = t0 + k * 10_000
                want = len([s for s in range(120) if start <= t0 + s * 1000 < start + MINUTE])
                assert by_window.get((d, start)) == want, (d, k, by_window.get((d, start)), want)
        assert not any(v["device_id"] == "fast" for v in stats.values)
        assert len(dlq.msgs) == 120 and all(
            dlq.headers(m)["error"].startswith("future: ") for m in dlq.msgs
        )
        assert "is more than 5 s ahead of the Kafka timestamp" in dlq.headers(dlq.msgs[0])["error"]
        assert late.msgs == []
        produced = w.produced[SENSOR]
        assert produced == {"honest": 600, "10 min fast": 120, "closer": 1}
        # what `flinkpulse stack status` shows for the topic
        (row,) = [q for q in quality.source_quality(cfg) if q.topic == SENSOR]
        assert (row.records, row.late, row.dead_lettered, row.future) == (721, 0, 0, 120)
        assert row.share(row.future) == "120 (16.64 %)"
        reliability(
            "event time",
            f"{SENSOR}: one device's clock 10 min fast, five right",
            'the fast device\'s records dead-lettered as "future" (reason in the header); the '
            "others all in their windows",
            {"produced": 721, "honest in windows": 600, "dlq (future)": 120, "late": 0},
            lost=0,
            duplicated=0,
        )
        for c in (stats, dlq, late):
            c.close()
