"""`flinkpulse report` over a scripted input that went through the whole pipeline.

:class:`ReportRun` rides along a deployment of the four jobs (test_event_time.py's 1 x 1 parity
run, so no Flink submission of its own): while the jobs run it samples their metrics into
``job_metrics`` as the loader component's sampler does, and once their results are out it
loads them into a ClickHouse database of the run (the loader). :func:`expected` derives from the
scripted input itself the figures the report must show: the requests and 5xx errors of the
tiling web windows, the kWh of each appliance (the energy job's formula over the tiling
windows), and the records each job reads.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from flinkpulse.bench.jobs import JOB_TOPICS
from flinkpulse.clickhouse.migrate import client, migrate
from flinkpulse.config import Config
from flinkpulse.loader import jobmetrics
from flinkpulse.loader.core import Loader
from flinkpulse.topics import DEDUP_KEYS

#: the HOP window size of the windowed jobs (their default): the tiling windows are these
WINDOW_MS = 60_000


@dataclass
class ReportRun:
    """What the report test needs from the deployment: its config (topic prefix, database)."""

    cfg: Config | None = None
    samples: int = 0
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextlib.contextmanager
    def observe(self, dep: Config) -> Iterator[None]:
        """While the block runs (the jobs deployed on `dep`'s prefix): sample every 2 s into
        the database named like the prefix; at its end, one last sample (Flink's REST serves
        metrics up to 10 s old: by then the jobs have long read everything) and the results
        loaded. A failure is kept for the report test, never fails the deployment's test."""
        try:
            self.cfg = replace(
                dep,
                clickhouse=replace(dep.clickhouse, database=dep.kafka.topic_prefix.rstrip(".")),
            )
            migrate(self.cfg, log=None)
        except Exception as e:  # noqa: BLE001 - kept for the report test
            self.error = e
            yield
            return
        sampler = threading.Thread(target=self._sample_loop, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            self._stop.set()
            sampler.join(30)
            try:
                self._sample()
                Loader(self.cfg).run(once=True, until_idle=8)
            except Exception as e:  # noqa: BLE001 - kept for the report test
                self.error = self.error or e

    def _sample(self) -> None:
        assert self.cfg is not None
        jobmetrics.sample_once(self.cfg)
        self.samples += 1

    def _sample_loop(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self._sample()
            except Exception as e:  # noqa: BLE001 - kept for the report test
                self.error = self.error or e
                return

    def drop(self) -> None:
        if self.cfg is not None:
            ch = client(self.cfg, "writer")
            ch.command(f"DROP DATABASE IF EXISTS `{self.cfg.clickhouse.database}`")
            ch.close()


def _first_copies(events: list[tuple[str, dict[str, Any], str, int]]) -> list[tuple[dict, str]]:
    """(record, topic) of each event, later copies of a deduplicated one left out (the jobs'
    dedup keys, flinkpulse.topics.DEDUP_KEYS)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for _, rec, topic, _ in events:
        key = (topic, *(rec[k] for k in DEDUP_KEYS[topic]))
        if key not in seen:
            seen.add(key)
            out.append((rec, topic))
    return out


def expected(
    events: list[tuple[str, dict[str, Any], str, int]],
    start_ms: int,
    end_ms: int,
    watermark_delay_ms: int,
) -> dict[str, Any]:
    """The report's figures for [start_ms, end_ms) of the scripted input `events` (key,
    record, topic, Kafka timestamp), derived from the records alone. A window is out once the
    watermark of its topic (the topic's latest Kafka timestamp less the delay) reached its end:
    the input's last records only close the windows before them."""

    def tiling_end(t: int) -> int:
        return t // WINDOW_MS * WINDOW_MS + WINDOW_MS

    watermark: dict[str, int] = defaultdict(int)
    for _, _, topic, ts in events:
        watermark[topic] = max(watermark[topic], ts - watermark_delay_ms)
    requests = errors = 0
    energy: dict[tuple[int, str, str], list[tuple[int, float]]] = defaultdict(list)
    for rec, topic in _first_copies(events):
        t = int(rec["event_time"])
        end = tiling_end(t)
        if not start_ms <= end < end_ms or end - 1 > watermark[topic]:
            continue
        if topic == "web.access-logs":
            requests += 1
            errors += rec["status"] >= 500
        elif (
            topic == "iot.sensor-readings"
            and rec["sensor_type"] == "POWER"
            and rec["appliance"] is not None
        ):
            energy[(tiling_end(t), rec["home_id"], rec["appliance"])].append((t, rec["value"]))
    # device_stats' energy_usage: mean power x the time its samples cover, per window
    kwh: dict[str, float] = defaultdict(float)
    for (_, _, appliance), samples in energy.items():
        times = [t for t, _ in samples]
        mean = sum(v for _, v in samples) / len(samples)
        kwh[appliance or "unassigned"] += mean * (max(times) - min(times)) / 3_600_000_000.0
    top = max(kwh, key=lambda a: (kwh[a], a))
    read = {
        job: sum(1 for _, _, topic, _ in events if topic in topics)
        for job, topics in JOB_TOPICS.items()
    }
    return {
        "requests": requests,
        "errors": errors,
        "top_appliance": top,
        "top_kwh": kwh[top],
        "kwh": dict(kwh),
        "records_read": read,
    }
