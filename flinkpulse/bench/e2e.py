"""End to end: alert latency under load, and the highest sustained rate with lag not growing.

security_alerts runs on the session cluster (own topic prefix) with an in-process loader into
a fresh ClickHouse database. A background producer sends all three domains at `rate`
events/s (anomalies off); scripted incidents (producers/scenarios.py) are paced in real time,
each event sent when the wall clock reaches its event time. Latency of an alert = its
`_loaded_at` in ClickHouse − the wall time its last triggering event was produced.
Sustained rate: steps of `step_s` seconds; a step holds when the producer kept the rate and
the job's consumer lag (end offsets − offsets Flink committed at checkpoints) did not grow.
The whole pipeline (`pipeline`): the same steps with the four jobs and a loader of every table.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from flinkpulse.config import Config


def _percentiles(xs: list[float]) -> dict[str, float | None]:
    if not xs:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    s = sorted(xs)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(round(p * (len(s) - 1))))], 3)

    return {"p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "max": round(s[-1], 3)}


def consumer_lag(cfg: Config, group: str, logical_topics: list[str] | None = None) -> int:
    """Records in `logical_topics` (all source topics by default) not yet committed by `group`
    (Flink commits at checkpoints)."""
    from confluent_kafka import Consumer, TopicPartition

    from flink_jobs.common import SOURCE_TOPICS

    c = Consumer({**cfg.kafka.client_conf(), "group.id": group, "enable.auto.commit": False})
    try:
        tps = []
        for logical in logical_topics or list(SOURCE_TOPICS):
            topic = cfg.kafka.topic(logical)
            md = c.list_topics(topic, timeout=10).topics[topic]
            tps += [TopicPartition(topic, p) for p in md.partitions]
        lag = 0
        for tp in c.committed(tps, timeout=10):
            _lo, hi = c.get_watermark_offsets(tp, timeout=10)
            lag += hi - (tp.offset if tp.offset >= 0 else 0)
        return lag
    finally:
        c.close()


#: the seed of the latency run's background events; step i of the sustained-rate steps uses
#: LATENCY_SEED + 1 + i. The seed makes the event ids (producers.base.id_prefix): a producer
#: that reused one would re-send the ids of an earlier run on the same topics, which the jobs
#: drop as copies (topics.DEDUP_KEYS) instead of processing them
LATENCY_SEED = 11


def step_seed(i: int) -> int:
    """The seed of step `i`'s background producer: never one an earlier step or the latency
    run of the same deployment used."""
    return LATENCY_SEED + 1 + i


def _background(
    cfg: Config, rate: float, seconds: float, stop: threading.Event, seed: int
) -> dict[str, Any]:
    from producers import streams
    from producers.base import TimeConfig
    from producers.kafka import AvroKafkaProducer

    prod = AvroKafkaProducer(cfg, streams.topics("all"), producer_conf={"log_level": 0})
    stream = streams.stream("all", seed, TimeConfig(events_per_second=rate), anomalies=False)
    t0 = time.monotonic()
    st = prod.run(_until(stream, stop), rate=rate, duration=seconds)
    return {"sent": st.sent, "elapsed_s": round(time.monotonic() - t0, 2), "rate": st.rate}


def _until(it: Any, stop: threading.Event) -> Any:
    for i, x in enumerate(it):
        if i % 1000 == 0 and stop.is_set():
            return
        yield x


def _relabel(evs: list[Any], k: int) -> list[Any]:
    """Incident group k of the scripted incidents with its own attacker IP, home and cheater,
    so that groups overlapping in time stay separate matches."""
    from producers import scenarios

    subs = {
        scenarios.ATTACKER_IP: f"198.51.100.{k % 250 + 1}",
        scenarios.DEMO_HOME: f"home-bench-{k}",
        scenarios.CHEATER: f"p-cheater-bench-{k}",
    }

    def sub(x: Any) -> Any:
        if isinstance(x, str):
            for a, b in subs.items():
                x = x.replace(a, b)
        return x

    return [(sub(key), {f: sub(v) for f, v in rec.items()}, topic) for key, rec, topic in evs]


def _latency(
    cfg: Config, ch: Any, rate: float, latency_s: float, stop: threading.Event
) -> dict[str, Any]:
    """Background load at `rate` plus a new incident group every 3 s for `latency_s` seconds,
    each event produced when the wall clock reaches its event time; alert latency per rule."""
    from producers import scenarios
    from producers.kafka import AvroKafkaProducer

    bg: dict[str, Any] = {}
    th = threading.Thread(
        target=lambda: bg.update(_background(cfg, rate, latency_s + 45, stop, LATENCY_SEED)),
        daemon=True,
    )
    th.start()
    inc = AvroKafkaProducer(cfg, ["web.access-logs", "iot.security-events",
                                  "gaming.player-events", "iot.sensor-readings"],
                            producer_conf={"log_level": 0, "linger.ms": 0})  # fmt: skip
    start = int(time.time() * 1000) + 1000
    evs: list[Any] = []
    for k in range(max(1, int(latency_s // 3))):
        t0 = start + k * 3001
        group = scenarios.brute_force(t0) + scenarios.intrusion(t0) + scenarios.cheater(t0)
        # the alerts fire by +24 s; the DISARM 90 s later would only stretch the run
        evs += _relabel([e for e in group if int(e[1]["event_time"]) <= t0 + 30_000], k)
    produced: dict[int, float] = {}
    for key, rec, topic in sorted(evs, key=lambda e: int(e[1]["event_time"])):
        et = int(rec["event_time"])
        wait = et / 1000 - time.time()
        if wait > 0:
            time.sleep(wait)
        inc.send(key, rec, topic)
        inc.producer.flush(5)
        produced[et] = time.time()
    time.sleep(max(10.0, 3 * cfg.flink.checkpoint_interval_s + cfg.flink.watermark_delay_s))
    stop.set()
    th.join(60)
    rows = ch.query(
        f"SELECT alert_id, rule, toUnixTimestamp64Milli(last_event_time), "
        f"toUnixTimestamp64Milli(min(_loaded_at)) FROM `{cfg.clickhouse.database}`.alerts "
        "GROUP BY alert_id, rule, last_event_time"
    ).result_rows
    lat: dict[str, list[float]] = {}
    for _aid, rule, last_ms, loaded_ms in rows:
        if last_ms in produced:
            lat.setdefault(rule, []).append(loaded_ms / 1000 - produced[last_ms])
    every = [x for xs in lat.values() for x in xs]
    return {
        "background": bg,
        "incident_groups": max(1, int(latency_s // 3)),
        "first_row": min((r[3] for r in rows), default=0) / 1000 or None,
        "alerts": len(rows),
        "alerts_matched": len(every),
        "latency_s": _percentiles(every),
        "latency_by_rule": {r: _percentiles(xs) for r, xs in lat.items()},
        "latency_samples": [round(x, 3) for x in every],
    }


def run(
    cfg: Config,
    rate: float,
    latency_s: float,
    steps: list[float],
    step_s: float,
    tuned: dict[str, Any] | None = None,
    pipeline_steps: list[float] | None = None,
) -> dict[str, Any]:
    """Latency (as configured, then with `tuned` flink settings), the sustained-rate steps of
    security_alerts + loader, and those of the whole pipeline (`pipeline_steps`, if any)."""
    out: dict[str, Any] = {
        "rate": rate,
        "checkpoint_interval_s": cfg.flink.checkpoint_interval_s,
        "watermark_delay_s": cfg.flink.watermark_delay_s,
        "latency_variants": [],
    }
    variants: list[tuple[str, dict[str, Any]]] = [("as configured", {})]
    if tuned:
        variants.append(("tuned", dict(tuned)))
    for i, (label, settings) in enumerate(variants):
        vcfg = cfg.derive(flink=settings)
        with _deployment(vcfg, f"e2e{i}") as (dcfg, ch, t_submit, running_s):
            v = _latency(dcfg, ch, rate, latency_s, threading.Event())
            first = v.pop("first_row", None)
            v.update(label=label, settings={
                "checkpoint_interval_s": dcfg.flink.checkpoint_interval_s,
                "watermark_delay_s": dcfg.flink.watermark_delay_s,
            })  # fmt: skip
            out["latency_variants"].append(v)
            if i == 0:
                out["submit_to_running_s"] = running_s
                out["submit_to_first_row_s"] = round(first - t_submit, 1) if first else None
                out.update({k: v[k] for k in ("background", "alerts", "alerts_matched",
                                              "latency_s", "latency_by_rule", "latency_samples")})  # fmt: skip
                out.update(_sustained(dcfg, steps, step_s))
    if pipeline_steps:
        out["pipeline"] = pipeline(cfg, pipeline_steps, step_s)
    return out


def pipeline(
    cfg: Config,
    steps: list[float],
    step_s: float,
    twins: tuple[str, ...] = (),
    on_step: Callable[[dict[str, Any]], None] | None = None,
    heap: bool = False,
) -> dict[str, Any]:
    """The whole pipeline as configured: the four jobs and a loader of every table, on topics
    and a database of their own, under the background producer's rising steps. A step holds
    when the producer kept the rate and the summed lag of the jobs (consumer offsets) and of
    the loader (its status file) did not grow. Jobs in `twins` run as their built-in twin (a
    diagnostic: what decoding them in the JVM would leave; their results are not loaded).
    Each step also records every job's latest checkpoint (size, duration: the state grows with
    the uptime), with `heap` each TaskManager's live objects by class (flinkpulse/bench/heap.py;
    a full collection, so a diagnostic), and goes to `on_step` when done."""
    import json
    import tempfile
    from pathlib import Path

    from flink_jobs import JOBS
    from flink_jobs.builtin_twin import TWIN_SUFFIX
    from flink_jobs.common import variant_name
    from flinkpulse.bench.jobs import JOB_TOPICS
    from flinkpulse.flinkrest import FlinkRest, job_name
    from flinkpulse.topics import job_group

    with tempfile.TemporaryDirectory() as tmp:
        status = Path(tmp) / "loader.json"
        # the name each job runs under (a twin's is its variant's): its group and Flink job name
        runs_as = {j: variant_name(j, TWIN_SUFFIX) if j in twins else j for j in JOBS}
        with _deployment(cfg, "pipe", list(JOBS), status, twins) as (dcfg, _ch, _t, running_s):

            def lags() -> dict[str, int]:
                out = {j: consumer_lag(dcfg, job_group(runs_as[j]), JOB_TOPICS[j]) for j in JOBS}
                loader = json.loads(status.read_text()) if status.exists() else {}
                out["loader"] = int(loader.get("lag_total", 0))
                return out

            rest = FlinkRest(dcfg)
            names = {j: job_name(dcfg, runs_as[j]) for j in JOBS}

            def probe() -> dict[str, Any]:
                row = {
                    "checkpoints": latest_checkpoints(rest, names),
                    "taskmanagers": taskmanager_memory(rest),
                }
                if heap:
                    from flinkpulse.bench import heap as live
                    from flinkpulse.stack.flink import Flink

                    tms = Flink(dcfg).taskmanager_pids().values()
                    row["heap"] = [live.histogram(pid) for pid in tms]
                return row

            res = _steps(dcfg, steps, step_s, lags, probe, on_step)
    return {"jobs": list(JOBS), "twins": list(twins), "submit_to_running_s": running_s, **res}


def latest_checkpoints(rest: Any, names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per job (`names`: job -> Flink job name) its latest completed checkpoint: full size in
    MB, end-to-end seconds, and the checkpoints completed and failed so far."""
    out: dict[str, dict[str, Any]] = {}
    for job, name in names.items():
        for j in rest.running(name)[:1]:
            cp = rest.call("GET", f"/jobs/{j['jid']}/checkpoints") or {}
            last = (cp.get("latest") or {}).get("completed") or {}
            counts = cp.get("counts") or {}
            out[job] = {
                "mb": round(last.get("state_size", 0) / 1e6, 1),
                "s": round(last.get("end_to_end_duration", 0) / 1000, 1),
                "completed": int(counts.get("completed", 0)),
                "failed": int(counts.get("failed", 0)),
            }
    return out


#: the TaskManager metrics of `taskmanager_memory` (SerialGC: Copy is the young generation,
#: MarkSweepCompact the full collections that stop the TaskManager; All is every collector's
#: time, whichever `stack.flink_tm_gc` chose)
_TM_METRICS = {
    "Status.JVM.Memory.Heap.Used": "heap_used_mb",
    "Status.JVM.Memory.Heap.Max": "heap_max_mb",
    "Status.JVM.GarbageCollector.All.Time": "gc_s",
    "Status.JVM.GarbageCollector.MarkSweepCompact.Time": "full_gc_s",
    "Status.JVM.GarbageCollector.Copy.Time": "young_gc_s",
}


def taskmanager_memory(rest: Any) -> list[dict[str, float]]:
    """Per TaskManager: heap used and max (MB) and the time spent in garbage collection so far
    (s): a state that outgrows the heap shows as full collections before it fails."""
    out = []
    for tm in rest.call("GET", "/taskmanagers")["taskmanagers"]:
        got = rest.call("GET", f"/taskmanagers/{tm['id']}/metrics?get={','.join(_TM_METRICS)}")
        row = {}
        for m in got or []:
            v = float(m["value"])
            row[_TM_METRICS[m["id"]]] = round(v / 1e6 if "Heap" in m["id"] else v / 1000, 1)
        out.append(row)
    return out


@contextlib.contextmanager
def _deployment(
    cfg: Config,
    tag: str,
    jobs: list[str] | None = None,
    status: Any = None,
    twins: tuple[str, ...] = (),
) -> Iterator[tuple[Config, Any, float, float]]:
    """`jobs` (security_alerts by default) + an in-process loader of their tables (alerts
    only, by default; writing `status`, a loader status file, if given), on topics and a
    database of their own; yields (config, ClickHouse client, submit time, seconds from the
    first submission to the last job running)."""
    from flink_jobs.builtin_twin import TWIN_PREFIX, TWIN_SUFFIX
    from flink_jobs.common import variant_name
    from flinkpulse import jobstate
    from flinkpulse.clickhouse.migrate import client, migrate
    from flinkpulse.errors import FlinkpulseError
    from flinkpulse.flinkrest import FlinkRest, job_name
    from flinkpulse.flinkrun import submit
    from flinkpulse.loader.core import Loader
    from flinkpulse.topics import ensure_topics

    run_id = cfg.kafka.topic_prefix.strip(".").replace(".", "_").replace("-", "_")
    cfg = cfg.derive(
        kafka={"topic_prefix": f"{cfg.kafka.topic_prefix}{tag}."},
        clickhouse={"database": f"{run_id}_{tag}"},
        loader={"flush_interval_s": min(cfg.loader.flush_interval_s, 0.5)},
    )
    ensure_topics(cfg)
    migrate(cfg, log=None)
    ch = client(cfg)
    loader = Loader(cfg, topics=None if jobs else ["alerts"], status_file=status)
    lt = threading.Thread(target=loader.run, daemon=True)
    lt.start()
    t_submit = time.time()
    jids = []
    try:
        if twins:  # the twins write their results to `<prefix>twin.` topics
            ensure_topics(cfg.with_prefix(f"{cfg.kafka.topic_prefix}{TWIN_PREFIX}"))
        for job in jobs or ["security_alerts"]:
            if job in twins:
                name = job_name(cfg, variant_name(job, TWIN_SUFFIX))
                jids.append(submit(cfg, "builtin_twin", extra_args=["--job", job], name=name))
            else:
                jids.append(submit(cfg, job))
        running_s = round(time.time() - t_submit, 1)
        yield cfg, ch, t_submit, running_s
    finally:
        rest = FlinkRest(cfg)
        for jid in jids:
            rest.cancel(jid)
        loader.stop()
        lt.join(30)
        for jid in jids:  # throwaway jobs: their retained checkpoints only fill the disk
            with contextlib.suppress(FlinkpulseError):
                rest.wait_state(jid, ("CANCELED", "FAILED", "FINISHED"), 60)
                jobstate.discard(cfg, jid)
        try:
            ch.command(f"DROP DATABASE IF EXISTS `{cfg.clickhouse.database}`")
        finally:
            ch.close()


def _sustained(cfg: Config, steps: list[float], step_s: float) -> dict[str, Any]:
    """Steps of `step_s` seconds at rising rates until the producer or the job falls behind."""
    from flinkpulse.topics import job_group

    return _steps(
        cfg,
        steps,
        step_s,
        lambda: {"security_alerts": consumer_lag(cfg, job_group("security_alerts"))},
    )


def lag_slope(samples: list[tuple[float, int]], since_s: float) -> float:
    """The trend of the summed lag in records/s: the least-squares slope of the samples
    (seconds into the step, lag) taken from `since_s` on; 0 with fewer than 3. The lag is
    bursty (a HOP slide ends, the loader gets its results at once), so the first and last
    sample alone could land on a trough and a peak of a flat sawtooth and say "growing"."""
    import statistics

    pts = [(t, lg) for t, lg in samples if t >= since_s]
    if len(pts) < 3 or len({t for t, _ in pts}) < 2:
        return 0.0
    return statistics.linear_regression([t for t, _ in pts], [lg for _, lg in pts]).slope


def _steps(
    cfg: Config,
    steps: list[float],
    step_s: float,
    lags: Callable[[], dict[str, int]],
    probe: Callable[[], dict[str, Any]] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Steps of `step_s` seconds at rising rates until the producer falls behind or the summed
    `lags` (per consumer) grow; each step keeps the lag samples and the last ones per consumer,
    plus what `probe` says at its end and the CPU each role of the host used over its second
    half (flinkpulse/bench/cpu.py), and is passed to `on_step` as soon as it is done."""
    from flinkpulse.bench import cpu

    out: dict[str, Any] = {}
    step_rows = []
    for i, r in enumerate(steps):
        stop2 = threading.Event()
        res: dict[str, Any] = {}
        th = threading.Thread(
            target=lambda r=r, res=res, s2=stop2, i=i: res.update(
                _background(cfg, r, step_s, s2, step_seed(i))
            ),
            daemon=True,
        )
        t_step = time.time()
        th.start()
        samples: list[tuple[float, int]] = []
        last: dict[str, int] = {}
        half: cpu.Snapshot | None = None
        while th.is_alive():
            last = lags()
            samples.append((round(time.time() - t_step, 1), sum(last.values())))
            if half is None and samples[-1][0] >= step_s / 2:
                half = cpu.snapshot()
            time.sleep(max(2.0, cfg.flink.checkpoint_interval_s))
        slope = lag_slope(samples, step_s / 2)
        growing = slope * step_s / 2 > max(r * 2 * cfg.flink.checkpoint_interval_s, 1000)
        kept = res.get("rate", 0) >= 0.95 * r
        row = {"target": r, "achieved": round(res.get("rate", 0)), "lag": samples,
               "lag_last": last, "lag_slope_per_s": round(slope, 1), "lag_growing": growing,
               "producer_kept_rate": kept, "sustained": kept and not growing,
               "cpu": cpu.cores(half, cpu.snapshot()) if half else None}  # fmt: skip
        if probe is not None:
            row.update(probe())
        step_rows.append(row)
        if on_step is not None:
            on_step(row)
        if not (kept and not growing):
            break
    out["steps"] = step_rows
    held = [s["target"] for s in step_rows if s["sustained"]]
    out["max_sustained_rate"] = max(held) if held else None
    out["step_s"] = step_s
    return out
