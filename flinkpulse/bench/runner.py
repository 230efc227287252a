"""One benchmark run: every section in turn, each isolated, then JSON + Markdown + plots."""

from __future__ import annotations

import datetime as dt
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flinkpulse import topics
from flinkpulse.config import Config
from flinkpulse.paths import ROOT

ALL_SECTIONS = ["producers", "jobs", "profile", "loader", "e2e", "startup"]
#: the four jobs, each run as is (`udf`) and as its built-in twin
ALL_JOBS = ["player_stats", "device_stats", "web_traffic", "security_alerts"]


@dataclass
class Profile:
    """How much of each section to run: `quick` is a < 3 minute smoke check."""

    producer_events: int = 200_000
    jobs: list[str] = field(default_factory=lambda: list(ALL_JOBS))
    #: enough for a steady rate well past start-up (issue 17: 200k per run was mostly start-up)
    job_events_per_domain: int = 1_000_000
    levers: list[str] = field(
        default_factory=lambda: ["udf_thread_mode", "udf_bundle_1000", "udf_bundle_100000"]
    )
    lever_jobs: list[str] = field(default_factory=lambda: ["player_stats", "web_traffic"])
    #: levers run for every job: parallelism 1 (`udf`) and 2 side by side in one run
    every_job_levers: tuple[str, ...] = ("udf_parallelism_2",)
    #: seconds one bounded job run (incl. waiting for a free slot) may take: 1M events at the
    #: slowest job's ~7k events/s (2026-11-26) take ~150 s, several times that on a loaded machine
    job_timeout_s: float = 1200
    #: profile section: JFR + py-spy of each job once warmed up (flinkpulse/bench/profile.py);
    #: its runs are cancelled after the profile, so they never read all of their events
    profile_jobs: list[str] = field(default_factory=lambda: list(ALL_JOBS))
    profile_variants: list[str] = field(default_factory=lambda: ["udf", "twin"])
    profile_events_per_domain: int = 1_000_000
    profile_seconds: float = 20
    profile_warmup_events: int = 100_000
    #: seconds a profiled job may take to be submitted, get a slot and read the warm-up
    profile_timeout_s: float = 600
    loader_rows: int = 200_000
    e2e_rate: float = 10_000
    e2e_latency_s: float = 90
    e2e_steps: list[float] = field(default_factory=lambda: [5_000, 10_000, 20_000, 40_000])
    e2e_step_s: float = 300
    #: the same steps for the whole pipeline (the four jobs + a loader of every table, as
    #: configured): issue 17's goal is 50k events/s with lag that does not grow
    e2e_pipeline_steps: list[float] = field(default_factory=lambda: [5_000, 10_000, 20_000, 50_000])
    #: the latency run is repeated with these flink settings (before/after rows): a checkpoint
    #: commits the exactly-once Kafka sink's transaction and the watermark delay holds CEP back
    e2e_tuned: dict[str, Any] = field(
        default_factory=lambda: {"checkpoint_interval_s": 1.0, "watermark_delay_s": 1.0}
    )
    startup_components: list[str] = field(
        default_factory=lambda: ["kafka", "registry", "clickhouse", "flink"]
    )
    skip: dict[str, str] = field(default_factory=dict)


def quick_profile() -> Profile:
    return Profile(
        producer_events=5_000,
        jobs=["player_stats"],
        job_events_per_domain=20_000,
        levers=[],
        every_job_levers=(),
        job_timeout_s=60,
        profile_jobs=["player_stats"],
        profile_variants=["udf"],
        profile_events_per_domain=100_000,
        profile_seconds=10,
        profile_warmup_events=10_000,
        loader_rows=20_000,
        startup_components=["kafka"],
        skip={
            "e2e": "end-to-end latency and sustained rate need minutes: full run only",
            "profile": "a profile needs a warmed-up job, minutes per job: full run only "
            "(or --sections profile)",
        },
    )


def run(
    cfg: Config,
    profile: Profile,
    sections: list[str] | None = None,
    out_dir: Path | None = None,
    quick: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[Path, Path]:
    """Run the sections (all by default); write and return (json path, markdown path)."""
    from flinkpulse.bench import e2e, jobs, loader, machine, producers, report, startup
    from flinkpulse.bench import profile as prof

    started = dt.datetime.now().astimezone()
    t_run = time.perf_counter()
    cfg = cfg.with_prefix(f"bench{uuid.uuid4().hex[:6]}.")
    log(f"bench: topic prefix {cfg.kafka.topic_prefix}{' (quick)' if quick else ''}")
    res: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "quick": quick,
        "topic_prefix": cfg.kafka.topic_prefix,
        "machine": machine.facts(),
        "settings": profile.__dict__,
    }
    p = profile
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "producers": lambda: producers.run(cfg, p.producer_events),
        "jobs": lambda: jobs.run(
            cfg,
            p.jobs,
            p.job_events_per_domain,
            p.levers,
            p.lever_jobs,
            p.job_timeout_s,
            every_job_levers=p.every_job_levers,
        ),
        "profile": lambda: prof.run(
            cfg,
            p.profile_jobs,
            p.profile_variants,
            p.profile_events_per_domain,
            p.profile_seconds,
            p.profile_warmup_events,
            # raw JFR / py-spy files: megabytes each, kept with the stack's state, not the results
            cfg.stack.state_path() / "bench-profile" / cfg.kafka.topic_prefix.rstrip("."),
            p.profile_timeout_s,
            log,
        ),
        "loader": lambda: loader.run(cfg, p.loader_rows),
        "e2e": lambda: e2e.run(
            cfg,
            p.e2e_rate,
            p.e2e_latency_s,
            p.e2e_steps,
            p.e2e_step_s,
            p.e2e_tuned,
            p.e2e_pipeline_steps,
        ),
        "startup": lambda: startup.run(cfg, p.startup_components),
    }
    for name in ALL_SECTIONS:
        if sections and name not in sections:
            res[name] = {"skipped": "not selected (--sections)"}
            continue
        if name in p.skip:
            res[name] = {"skipped": p.skip[name]}
            continue
        log(f"bench: {name} ...")
        t = time.perf_counter()
        try:
            res[name] = steps[name]()
        except Exception as e:  # noqa: BLE001 - a failed section is a result, not a crash
            res[name] = {"error": f"{type(e).__name__}: {e}".strip()[:500],
                         "trace": traceback.format_exc()[-2000:]}  # fmt: skip
        res[name]["section_s"] = round(time.perf_counter() - t, 1)
        log(f"bench: {name} done in {res[name]['section_s']} s"
            + (f" — error: {res[name]['error']}" if "error" in res[name] else ""))  # fmt: skip
    topics.delete_prefixed(cfg)
    res["elapsed_s"] = round(time.perf_counter() - t_run, 1)
    res["goals"] = report.goals(res)
    out = out_dir or ROOT / "bench" / "results"
    return report.write(res, out, result_stem(started, socket.gethostname(), quick, out))


def result_stem(started: dt.datetime, host: str, quick: bool, out_dir: Path) -> str:
    """`<date>-<host>[-quick]`, or `<date>T<hhmm>-<host>[-quick]` when that day's name is taken:
    a second run of the day never overwrites the first, and names sort by start time."""
    tail = f"-{host.split('.')[0]}{'-quick' if quick else ''}"
    stem = f"{started:%Y-%m-%d}{tail}"
    if (out_dir / f"{stem}.json").exists():
        stem = f"{started:%Y-%m-%dT%H%M}{tail}"
    return stem
