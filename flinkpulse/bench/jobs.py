"""Jobs: throughput with the Python UDFs vs the same SQL on built-ins (the twin), per slot.

The run's source topics are pre-filled at full speed; each variant then runs *bounded*
(`--from/--to` over the fill's produce timestamps) on the session cluster until FINISHED. Rate =
events in the job's source topics / (last vertex end − first source vertex start), from the
JobManager's REST API: it includes the tasks' open() (Python worker start-up), not the client's
submission. Each row also splits the run in two (`split_startup`): start-up (submit → first
record read) and the steady rate after warm-up, from progress samples every second. Variants: `udf` (the job as configured), `twin` (flink_jobs/builtin_twin.py) and
tuning levers (`python.execution-mode: thread`, smaller/larger bundles).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from flinkpulse.config import Config

#: job -> the logical source topics it reads
JOB_TOPICS: dict[str, list[str]] = {
    "player_stats": ["gaming.player-events"],
    "device_stats": ["iot.sensor-readings"],
    "web_traffic": ["web.access-logs"],
    "security_alerts": [
        "iot.security-events",
        "web.access-logs",
        "gaming.player-events",
        "iot.sensor-readings",
    ],
}

#: lever name -> cfg.flink overrides (before/after rows against `udf`)
LEVERS: dict[str, dict[str, Any]] = {
    "udf_thread_mode": {"python_execution_mode": "thread"},
    "udf_bundle_1000": {"bundle_size": 1000, "bundle_time_ms": 1000},
    "udf_bundle_100000": {"bundle_size": 100_000, "bundle_time_ms": 1000},
    # the same job at parallelism 2 (the topics have cfg.kafka.partitions >= 2 partitions)
    "udf_parallelism_2": {"parallelism": 2},
    # JVM-path levers, A/B against their base (`twin+object_reuse`, `udf+fetch_batch`: `ab`)
    "object_reuse": {"extra_options": ("pipeline.object-reuse=true",)},
    # records copied between chained operators, as before object reuse became the default
    # (2026-12-01: `udf+object_reuse` was 1.31x / 1.96x `udf`, web_traffic / device_stats)
    "no_object_reuse": {"object_reuse": False},
    "fetch_batch": {
        "source_properties": (
            "max.poll.records=5000",
            "fetch.min.bytes=262144",
            "fetch.max.wait.ms=100",
            "max.partition.fetch.bytes=4194304",
        )
    },
    "no_chaining": {"extra_options": ("pipeline.operator-chaining.enabled=false",)},
    "checkpoint_30s": {"checkpoint_interval_s": 30.0},
    # diagnostic, not a tuning: both the UDF job and its twin without deduplication
    "no_dedup": {"dedup": False},
    # dedup state held until the watermark passes (exact copies only) instead of the state TTL
    "dedup_watermark": {"dedup_state": "watermark"},
    # the state TTL only where rows pass through, until the watermark elsewhere (the default
    # since 2026-12-05; kept for the commands of bench/README.md)
    "dedup_auto": {"dedup_state": "auto"},
    # the state TTL for every source, the default until 2026-12-05
    "dedup_ttl": {"dedup_state": "ttl"},
    # the sources decoded per Arrow batch (a pandas UDF): 1.10-1.24x `udf` (2026-12-01), not the
    # default since its operator can take a TaskManager down on failover (config.py)
    "vectorized_decode": {"vectorized_decode": True},
    # per record, as shipped (kept for the commands of bench/README.md)
    "row_decode": {"vectorized_decode": False},
    "bundle_100000": {"bundle_size": 100_000, "bundle_time_ms": 1000},
    # the two halves of `bundle_100000`: which one buys the rate (a longer bundle time is also a
    # longer wait for a record's results at a low rate, a larger size is not)
    "bundle_size_100000": {"bundle_size": 100_000},
    "bundle_time_1000": {"bundle_time_ms": 1000},
    "arrow_batch_1000": {"arrow_batch_size": 1000},
    # a Python worker process per Python operator instead of one per slot: with managed memory
    # (Flink's default) the Python operators of a slot share one worker, so security_alerts'
    # decoders queue for one process (BeamPythonFunctionRunner.open). The default since
    # 2026-12-01 (security_alerts 1.3x); `shared_python_worker` measures the old path
    "worker_per_operator": {"python_worker_per_operator": True},
    "shared_python_worker": {"python_worker_per_operator": False},
    # keyed state (the dedup keys above all) in RocksDB, checkpoints upload only new files:
    # the hashmap backend writes a full snapshot of every key at every checkpoint
    "rocksdb": {
        "extra_options": ("state.backend.type=rocksdb", "execution.checkpointing.incremental=true")
    },
    # keyed state on the heap as before, but a checkpoint writes only the state changes since
    # the last one (to the cluster's state.changelog storage, files), and the full state is
    # materialized in the background every 10 minutes: the dedup keys are no longer all
    # written at every checkpoint
    "changelog": {"extra_options": ("state.changelog.enabled=true",)},
    # the exactly-once sinks' producers wait for fuller batches, lz4-compressed
    "sink_batching": {
        "sink_properties": ("linger.ms=20", "batch.size=262144", "compression.type=lz4")
    },
    # every field of every record of every source, as before `flink.source_needs` (2026-12-03:
    # security_alerts decodes three other jobs' topics for a few rules)
    "all_source_fields": {"source_needs": False},
    # diagnostic: the UDF job without its event-time temporal joins (flink_jobs/no_joins.py)
    "no_join": {},
    # the job as configured, with the archive job running alongside over the same topics
    "archive": {},
}

#: lever -> the script that runs `--job JOB` instead of the job's own (flink_jobs/<script>.py)
SCRIPT_LEVERS: dict[str, str] = {"no_join": "no_joins"}
#: lever -> a job submitted before the variant and cancelled after it (reading the same topics)
ALONGSIDE_LEVERS: dict[str, str] = {"archive": "archive"}


def variant_script(job: str, variant: str) -> tuple[str, list[str]]:
    """The script a variant submits and its leading arguments: the job's own, the twin, or a
    diagnostic script of SCRIPT_LEVERS (`udf+no_join`; not combined with the twin)."""
    base, *levers = variant.split("+")
    scripts = [SCRIPT_LEVERS[lv] for lv in levers if lv in SCRIPT_LEVERS]
    if base == "twin" and scripts or len(scripts) > 1:
        raise ValueError(f"{variant}: one diagnostic script at most, and not with the twin")
    if base == "twin":
        return "builtin_twin", ["--job", job]
    if scripts:
        return scripts[0], ["--job", job]
    return job, []


def lever_cfg(cfg: Config, variant: str) -> Config:
    """`cfg` with the levers of `variant` applied: `udf_bundle_1000`, or `<base>+<lever>+...`."""
    changes: dict[str, Any] = dict(LEVERS.get(variant, {}))
    for lever in variant.split("+")[1:]:
        changes.update(LEVERS[lever])
    return cfg.derive(flink=changes)


def fill(
    cfg: Config, events_per_domain: int, seed: int = 7, domains: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Produce `events_per_domain` per domain (all by default) into the run's topics; the
    produce-time bounds. Every topic of the topology is created first, the built-in twin's too:
    security_alerts also reads config.rules and iot.devices, which no domain writes (their
    absence failed its runs in `ab` and the profiles: UnknownTopicOrPartition)."""
    from flink_jobs.builtin_twin import TWIN_PREFIX
    from flinkpulse.topics import ensure_topics
    from producers import streams
    from producers.base import TimeConfig
    from producers.kafka import AvroKafkaProducer

    ensure_topics(cfg)
    ensure_topics(cfg.with_prefix(cfg.kafka.topic_prefix + TWIN_PREFIX))

    topics = [t for d in streams.DOMAINS for t in streams.topics(d)]
    prod = AvroKafkaProducer(cfg, topics, producer_conf={"log_level": 0})
    from_ms = int(time.time() * 1000) - 1
    t0 = time.perf_counter()
    for i, domain in enumerate(streams.DOMAINS):
        if domains and domain not in domains:
            continue
        # event time at 10k events/s per domain: windows fill and fire as in a live stream
        stream = streams.stream(domain, seed + i, TimeConfig(events_per_second=10_000))
        prod.run(stream, count=events_per_domain)
    elapsed = time.perf_counter() - t0
    to_ms = int(time.time() * 1000) + 1
    return {
        "from_ms": from_ms,
        "to_ms": to_ms,
        "per_topic": dict(prod.stats.per_topic),
        "fill_s": round(elapsed, 2),
    }


def _wait_slots(rest: Any, needed: int, timeout: float) -> None:
    """Until the shared session cluster has `needed` free slots (other jobs come and go)."""
    from flinkpulse.errors import FlinkpulseError

    deadline = time.monotonic() + timeout
    free = 0
    while time.monotonic() < deadline:
        free = int(rest.overview().get("slots-available", 0))
        if free >= needed:
            return
        time.sleep(2)
    raise FlinkpulseError(
        f"no free task slot on the session cluster for {timeout:.0f}s ({free} free)"
    )


def run_variant(
    cfg: Config,
    job: str,
    variant: str,
    filled: dict[str, Any],
    timeout: float,
    on_submit: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One bounded run of `job` (or its twin) over the filled range; its rate from the REST API.
    `on_submit(job id)` is called once the job is submitted (the profiler watches it)."""
    from flinkpulse import jobstate
    from flinkpulse.flinkrest import FlinkRest
    from flinkpulse.flinkrun import submit

    rest = FlinkRest(cfg)
    script, extra = variant_script(job, variant)
    extra += ["--from", str(filled["from_ms"]), "--to", str(filled["to_ms"])]
    events = sum(filled["per_topic"].get(t, 0) for t in JOB_TOPICS[job])
    alongside = [ALONGSIDE_LEVERS[lv] for lv in variant.split("+")[1:] if lv in ALONGSIDE_LEVERS]
    _wait_slots(rest, cfg.flink.parallelism * (1 + len(alongside)), timeout)
    # jobs alongside (the archive reads every source topic and its dead letters, all created by
    # fill) are submitted just before the variant, not waited for: both start up and read their
    # backlog together (an archive RUNNING first would have read much of a bounded fill before it)
    others = {name: submit(cfg, name, wait_running=False) for name in alongside}
    t = time.perf_counter()
    t_submit = time.time()
    jid = submit(cfg, script, extra_args=extra, wait_running=False)
    submit_s = time.perf_counter() - t
    if on_submit:
        on_submit(jid)
    samples: list[tuple[float, int]] = []
    state = ""
    failure = ""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = rest.call("GET", f"/jobs/{jid}")
            state = info["state"]
            srcs = [v for v in info["vertices"] if v["name"].startswith("Source:")]
            samples.append(
                (time.time(), max((v["metrics"]["read-records"] for v in srcs), default=0))
            )
            if state in ("FINISHED", "FAILED", "CANCELED"):
                break
            if state == "RESTARTING":  # a bounded run that fails once fails every time
                failure = rest.exception(jid)
                break
            time.sleep(1.0)
    finally:
        if state not in ("FINISHED", "FAILED", "CANCELED"):
            rest.cancel(jid)
            rest.wait_state(jid, ("CANCELED", "FINISHED", "FAILED"))
        jobstate.discard(cfg, jid)  # a throwaway run: its retained checkpoints only fill the disk
        read_alongside = {name: source_reads(rest, other) for name, other in others.items()}
        for other in others.values():
            rest.cancel(other)
            rest.wait_state(other, ("CANCELED", "FINISHED", "FAILED"))
            jobstate.discard(cfg, other)
    row: dict[str, Any] = {
        "job": job,
        "variant": variant,
        "state": state or "TIMEOUT",
        "events": events,
        "submit_s": round(submit_s, 1),
        "parallelism": cfg.flink.parallelism,
        "python_execution_mode": cfg.flink.python_execution_mode,
        "bundle_size": cfg.flink.bundle_size,
        "bundle_time_ms": cfg.flink.bundle_time_ms,
        "progress": [(round(ts, 1), n) for ts, n in samples],
    }
    if others:
        # records the alongside jobs' sources had read when the variant ended (their share)
        row["alongside_read"] = read_alongside
    if state != "FINISHED":
        row["error"] = failure or rest.exception(jid) or f"not finished after {timeout:.0f}s"
        return row
    info = rest.call("GET", f"/jobs/{jid}")
    srcs = [v for v in info["vertices"] if v["name"].startswith("Source:")]
    start = min(v["start-time"] for v in srcs)
    end = max(v["end-time"] for v in info["vertices"])
    secs = max(0.001, (end - start) / 1000)
    rate = events / secs
    row.update(
        {
            "source_vertices": len(srcs),
            "run_s": round(secs, 2),
            "events_per_s": round(rate),
            # slot sharing: a job of parallelism p occupies p slots
            "events_per_s_per_slot": round(rate / max(1, cfg.flink.parallelism)),
            **split_startup(samples, t_submit, end / 1000, events),
        }
    )
    if row.get("steady_events_per_s"):
        row["steady_events_per_s_per_slot"] = round(
            row["steady_events_per_s"] / max(1, cfg.flink.parallelism)
        )
    return row


def source_reads(rest: Any, jid: str) -> int:
    """Records read by all source vertices of job `jid` so far (REST metrics, ≤ 1 s old)."""
    info = rest.call("GET", f"/jobs/{jid}")
    return sum(
        v["metrics"]["read-records"] for v in info["vertices"] if v["name"].startswith("Source:")
    )


#: the steady rate counts from the first progress sample at or past this share of the events
WARMUP_FRACTION = 0.1
#: ... and needs at least this share still to come, or the run is too short to tell
STEADY_MIN_FRACTION = 0.3


def split_startup(
    samples: list[tuple[float, int]], t_submit: float, t_end: float, events: int
) -> dict[str, Any]:
    """Start-up (submit → first record read) and the steady rate after warm-up, from the
    1 s progress samples (REST metrics ≤ 1 s old) and the job's end time (epoch seconds).

    The steady rate is (events − n_w) / (t_done − t_w) for the first sample (t_w, n_w) with
    n_w ≥ WARMUP_FRACTION × events (task deployment, Python worker start-up and the first
    bundle are behind it) and the first sample t_done that has read every event (else the end). None when less than STEADY_MIN_FRACTION of the run is left after it
    (a short run is all start-up: use more events)."""
    first = next(((t, n) for t, n in samples if n > 0), None)
    out: dict[str, Any] = {
        "startup_s": round(first[0] - t_submit, 1) if first else None,
        "steady_events_per_s": None,
    }
    warm = next(((t, n) for t, n in samples if n >= WARMUP_FRACTION * events), None)
    # until the sources had read everything: a bounded run's end-of-input flush (every open
    # window fires at once) is not part of the steady state
    done = next((t for t, n in samples if n >= events), t_end)
    if warm and events - warm[1] >= STEADY_MIN_FRACTION * events and done > warm[0]:
        out["steady_events_per_s"] = round((events - warm[1]) / (done - warm[0]))
        out["steady_s"] = round(done - warm[0], 1)
    return out


def run(
    cfg: Config,
    jobs: list[str],
    events_per_domain: int,
    levers: list[str],
    lever_jobs: list[str],
    timeout: float = 600,
    every_job_levers: tuple[str, ...] = (),
) -> dict[str, Any]:
    cfg = cfg.with_prefix(f"{cfg.kafka.topic_prefix}jobs.")
    filled = fill(cfg, events_per_domain)
    rows: list[dict[str, Any]] = []
    for job in jobs:
        variants = ["udf", "twin", *every_job_levers]
        variants += [lv for lv in levers if job in lever_jobs]
        for variant in variants:
            vcfg = lever_cfg(cfg, variant)
            try:
                rows.append(run_variant(vcfg, job, variant, filled, timeout))
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                rows.append({"job": job, "variant": variant, "error": f"{type(e).__name__}: {e}"})
    by = {(r["job"], r["variant"]): r for r in rows}
    for r in rows:
        base = by.get((r["job"], "twin"))
        if r.get("events_per_s") and base and base.get("events_per_s"):
            r["vs_twin"] = round(r["events_per_s"] / base["events_per_s"], 3)
        if r.get("steady_events_per_s") and base and base.get("steady_events_per_s"):
            r["steady_vs_twin"] = round(r["steady_events_per_s"] / base["steady_events_per_s"], 3)
    return {"fill": {k: v for k, v in filled.items()}, "rows": rows}


def ab(
    cfg: Config,
    job: str,
    variants: list[str],
    events_per_domain: int,
    rounds: int = 2,
    timeout: float = 600,
) -> dict[str, Any]:
    """Levers side by side: one fill, then `rounds` × the variants interleaved (A B A B ...), so
    a change in the machine's load hits every variant alike. Per variant: every run's steady
    rate and start-up, and the median steady rate ÷ the first variant's in the same round."""
    import statistics

    from flinkpulse.topics import delete_prefixed

    cfg = cfg.with_prefix(f"{cfg.kafka.topic_prefix}ab{uuid.uuid4().hex[:6]}.")
    domains = tuple(sorted({t.split(".")[0] for t in JOB_TOPICS[job]}))
    runs: list[dict[str, Any]] = []
    try:
        filled = fill(cfg, events_per_domain, domains=domains)
        for rnd in range(rounds):
            for variant in variants:
                try:
                    row = run_variant(lever_cfg(cfg, variant), job, variant, filled, timeout)
                except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                    row = {"job": job, "variant": variant, "error": f"{type(e).__name__}: {e}"}
                row["round"] = rnd
                runs.append(row)
    finally:
        # its topics go with it: left behind, lever runs grew a dev Kafka to ~4,000 topics
        # and 7.9 GB, and a broker with that many partitions took longer to start than `up`
        delete_prefixed(cfg)
    summary = []
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        ratios = []
        for r in mine:
            base = next(b for b in runs if b["round"] == r["round"] and b["variant"] == variants[0])
            if r.get("steady_events_per_s") and base.get("steady_events_per_s"):
                ratios.append(r["steady_events_per_s"] / base["steady_events_per_s"])
        summary.append(
            {
                "variant": variant,
                "steady_events_per_s": [r.get("steady_events_per_s") for r in mine],
                "events_per_s": [r.get("events_per_s") for r in mine],
                "startup_s": [r.get("startup_s") for r in mine],
                "vs_first": round(statistics.median(ratios), 3) if ratios else None,
            }
        )
    return {"job": job, "fill": filled, "runs": runs, "summary": summary}
