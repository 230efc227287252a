"""Backfill of one hour vs the streaming rate (issue 18), and the job's checkpointed state as it
grows (issue 22), in one run over the same data.

An hour of event time is produced at `rate` events/s of event time on a simulated clock that
ends two hours ago (Kafka timestamps = event time, never the future): [t0 − 2 min, t0 + 62 min)
of the job's domain, its reference records first. Then, per round, in turn:

* **stream** — the job as deployed (`submit`, from the earliest offsets), cancelled once its
  sources have read every record and a checkpoint taken after that completed; its whole-run and
  steady rate (`jobs.split_startup`, 1 s samples), and every completed checkpoint's size paired
  with the records read when it was triggered;
* **backfill** — `flinkpulse backfill JOB --from t0 --to t0+1h` (the command itself, in a
  thread while its job's progress is sampled every second); its whole-run rate = records its
  sources read ÷ (last vertex end − first source start), its steady rate as the stream's, and
  the command's wall time (submission and start-up included).

Backfill ÷ stream per round, whole-run and steady rates each.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flinkpulse.bench.jobs import JOB_TOPICS, split_startup
from flinkpulse.config import Config

MINUTE = 60_000
HOUR = 60 * MINUTE


def produce_hour(cfg: Config, domain: str, rate: float, seed: int = 7) -> dict[str, Any]:
    """[t0 − 2 min, t0 + 62 min) of `domain` at `rate` events/s of event time, t0 a closed hour
    two hours back, as fast as Kafka takes it."""
    from producers import streams
    from producers.base import TimeConfig
    from producers.kafka import AvroKafkaProducer

    t0 = (int(time.time() * 1000) // HOUR - 2) * HOUR
    start, end = t0 - 2 * MINUTE, t0 + HOUR + 2 * MINUTE
    tc = TimeConfig(start_ms=start, events_per_second=rate, simulated=True)
    prod = AvroKafkaProducer(cfg, streams.topics(domain), producer_conf={"log_level": 0})
    refs = prod.send_reference(streams.reference(domain, seed, tc))
    t = time.perf_counter()
    stats = prod.run(
        streams.stream(domain, seed, tc, timed=True), count=int((end - start) * rate / 1000)
    )
    return {
        "t0": t0,
        "event_time": [start, end],
        "rate": rate,
        "reference_records": refs,
        "per_topic": dict(stats.per_topic),
        "failed": stats.failed,
        "produce_s": round(time.perf_counter() - t, 1),
    }


def _reads(info: dict[str, Any]) -> int:
    """Records read by the job's busiest source vertex (the events; the reference topic is small)."""
    srcs = [v for v in info["vertices"] if v["name"].startswith("Source:")]
    return max((int(v["metrics"]["read-records"]) for v in srcs), default=0)


def read_at(samples: list[tuple[float, int]], t: float) -> int | None:
    """Records read at epoch second `t`: the last sample at or before it (None: before the first)."""
    before = [n for ts, n in samples if ts <= t]
    return before[-1] if before else None


def growth(points: list[tuple[int, int]]) -> dict[str, float] | None:
    """Least-squares line bytes = intercept + slope × events over (events, bytes) points; None
    with fewer than two distinct event counts."""
    if len({e for e, _ in points}) < 2:
        return None
    n = len(points)
    me = sum(e for e, _ in points) / n
    mb = sum(b for _, b in points) / n
    slope = sum((e - me) * (b - mb) for e, b in points) / sum((e - me) ** 2 for e, _ in points)
    return {"bytes_per_event": slope, "intercept_bytes": mb - slope * me}


def stream_run(cfg: Config, job: str, events: int, timeout: float) -> dict[str, Any]:
    from flinkpulse import jobstate
    from flinkpulse.flinkrest import FlinkRest
    from flinkpulse.flinkrun import submit

    rest = FlinkRest(cfg)
    t_submit = time.time()
    jid = submit(cfg, job)
    samples: list[tuple[float, int]] = []
    ckpts: dict[int, dict[str, Any]] = {}
    all_read: float | None = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            info = rest.call("GET", f"/jobs/{jid}")
            samples.append((time.time(), _reads(info)))
            hist = rest.call("GET", f"/jobs/{jid}/checkpoints").get("history", [])
            for c in hist:
                if c.get("status") == "COMPLETED" and c["id"] not in ckpts:
                    ckpts[c["id"]] = {
                        "id": c["id"],
                        "trigger": c["trigger_timestamp"] / 1000,
                        "state_size": c.get("state_size"),
                        "checkpointed_size": c.get("checkpointed_size"),
                        "duration_ms": c.get("end_to_end_duration"),
                    }
            if all_read is None and samples[-1][1] >= events:
                all_read = samples[-1][0]
            if all_read is not None and any(c["trigger"] > all_read for c in ckpts.values()):
                break
            if info["state"] in ("FAILED", "CANCELED", "FINISHED", "RESTARTING"):
                break
            time.sleep(1.0)
        info = rest.call("GET", f"/jobs/{jid}")
    finally:
        rest.cancel(jid)
        rest.wait_state(jid, ("CANCELED", "FINISHED", "FAILED"))
        jobstate.discard(cfg, jid)  # a throwaway prefix: nothing resumes it
    srcs = [v for v in info["vertices"] if v["name"].startswith("Source:")]
    start = min(v["start-time"] for v in srcs) / 1000
    row: dict[str, Any] = {"mode": "stream", "job_id": jid, "events": events}
    if all_read is None:
        row["error"] = f"read {samples[-1][1] if samples else 0} of {events} in {timeout:.0f}s"
    else:
        row["run_s"] = round(all_read - start, 1)
        row["events_per_s"] = round(events / max(0.001, all_read - start))
        row.update(split_startup(samples, t_submit, all_read, events))
    points = []
    for c in sorted(ckpts.values(), key=lambda c: c["id"]):
        c["events_read"] = read_at(samples, c["trigger"])
        if c["events_read"] is not None and c["checkpointed_size"] is not None:
            points.append((c["events_read"], int(c["checkpointed_size"])))
    row["checkpoints"] = sorted(ckpts.values(), key=lambda c: c["id"])
    row["state_growth"] = growth(points)
    return row


def backfill_run(cfg: Config, job: str, t0: int) -> dict[str, Any]:
    """`flinkpulse backfill` in a thread; its job's progress sampled every second meanwhile."""
    import threading

    from flinkpulse import cli
    from flinkpulse.flinkrest import FlinkRest, backfill_name

    argv = ["backfill", job, "--topic-prefix", cfg.kafka.topic_prefix]
    argv += ["--from", str(t0), "--to", str(t0 + HOUR)]
    rest = FlinkRest(cfg)
    name = backfill_name(cfg, job)
    before = {j["jid"] for j in rest.call("GET", "/jobs/overview")["jobs"] if j["name"] == name}
    rc: list[int] = []
    t_submit = time.time()
    thread = threading.Thread(target=lambda: rc.append(cli.main(argv)), daemon=True)
    thread.start()
    jid = ""
    samples: list[tuple[float, int]] = []
    while thread.is_alive():
        if not jid:
            new = [j["jid"] for j in rest.call("GET", "/jobs/overview")["jobs"]]
            jid = next((j for j in new if j not in before and _named(rest, j, name)), "")
        if jid:
            samples.append((time.time(), _reads(rest.call("GET", f"/jobs/{jid}"))))
        time.sleep(1.0)
    wall = time.time() - t_submit
    info = rest.call("GET", f"/jobs/{jid}")
    srcs = [v for v in info["vertices"] if v["name"].startswith("Source:")]
    read = _reads(info)
    end = max(v["end-time"] for v in info["vertices"]) / 1000
    secs = end - min(v["start-time"] for v in srcs) / 1000
    return {
        "mode": "backfill",
        "job_id": jid,
        "rc": rc[0] if rc else None,
        "command": "flinkpulse " + " ".join(argv),
        "events_read": read,
        "run_s": round(secs, 1),
        "events_per_s": round(read / max(0.001, secs)),
        "command_s": round(wall, 1),
        **split_startup(samples, t_submit, end, read),
    }


def _named(rest: Any, jid: str, name: str) -> bool:
    return bool(rest.call("GET", f"/jobs/{jid}")["name"] == name)


def run(
    cfg: Config, job: str, rate: float, rounds: int = 1, timeout: float = 1800
) -> dict[str, Any]:
    """Produce the hour once; then `rounds` × (stream, backfill). Backfill ÷ stream per round."""
    from flinkpulse.topics import ensure_topics

    cfg = cfg.with_prefix(f"{cfg.kafka.topic_prefix}bfh{uuid.uuid4().hex[:6]}.")
    ensure_topics(cfg)
    domain = JOB_TOPICS[job][0].split(".")[0]
    hour = produce_hour(cfg, domain, rate)
    events = sum(hour["per_topic"].get(t, 0) for t in JOB_TOPICS[job])
    runs: list[dict[str, Any]] = []
    for rnd in range(rounds):
        for mode in ("stream", "backfill"):
            try:
                if mode == "stream":
                    row = stream_run(cfg, job, events, timeout)
                else:
                    row = backfill_run(cfg, job, hour["t0"])
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                row = {"mode": mode, "error": f"{type(e).__name__}: {e}"}
            row["round"] = rnd
            runs.append(row)
        s, b = runs[-2], runs[-1]
        for key in ("events_per_s", "steady_events_per_s"):
            if s.get(key) and b.get(key):
                b[f"{key}_vs_stream"] = round(b[key] / s[key], 3)
    return {"job": job, "hour": hour, "events": events, "runs": runs}
