"""Status and lag of the loader: counters, lag per partition, the log line and the status file
(``stack status`` reads it, :mod:`flinkpulse.loader.component`)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flinkpulse.loader.exactly_once import Key

log = logging.getLogger("flinkpulse.loader")


@dataclass
class Stats:
    """What `Loader.run` returns: totals since the loader started."""

    rows: int = 0
    inserts: int = 0
    dead_letters: int = 0
    resumes: int = 0
    started: float = field(default_factory=time.monotonic)


class Progress:
    """Counters shared by the main thread and the insert thread (under one lock): the totals
    and the rows queued for insert per partition, not acknowledged yet."""

    def __init__(self) -> None:
        self.stats = Stats()
        self._inflight: dict[Key, int] = {}
        self._lock = threading.Lock()

    def queued(self, key: Key, rows: int) -> None:
        with self._lock:
            self._inflight[key] = self._inflight.get(key, 0) + rows

    def inserted(self, key: Key, rows: int) -> None:
        with self._lock:
            self.stats.rows += rows
            self.stats.inserts += 1
            self._inflight[key] = max(0, self._inflight.get(key, 0) - rows)

    def drop_inflight(self) -> None:
        with self._lock:
            self._inflight.clear()

    def inflight(self) -> dict[Key, int]:
        with self._lock:
            return dict(self._inflight)

    def rows(self) -> int:
        with self._lock:
            return self.stats.rows


def high_watermarks(consumer: Any, partitions: list[Key]) -> dict[Key, int]:
    """(topic, partition) -> the high watermark the consumer's fetches last saw (partitions it
    cannot tell are left out); topics.end_offsets asks Kafka."""
    from confluent_kafka import TopicPartition

    out = {}
    for t, p in partitions:
        try:
            lo, hi = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=5, cached=True)
        except Exception:
            continue
        if hi >= 0:
            out[(t, p)] = hi
    return out


def positions(consumer: Any, partitions: list[Key], start: Mapping[Key, int]) -> dict[Key, int]:
    """(topic, partition) -> the next offset to consume ({} if Kafka cannot tell)."""
    from confluent_kafka import TopicPartition

    try:
        tps = consumer.position([TopicPartition(t, p) for t, p in partitions])
    except Exception:
        return {}
    out = dict(start)
    for tp in tps:
        if tp.offset >= 0:
            out[(tp.topic, tp.partition)] = tp.offset
    return out


def lag(
    partitions: list[Key],
    hws: Mapping[Key, int],
    pos: Mapping[Key, int],
    buffered: Mapping[Key, int],
    inflight: Mapping[Key, int],
) -> dict[Key, int]:
    """Records per partition not in ClickHouse yet: not consumed, buffered or queued."""
    out = {}
    for k in partitions:
        behind = max(0, hws.get(k, 0) - pos[k]) if k in pos else 0
        out[k] = behind + buffered.get(k, 0) + inflight.get(k, 0)
    return out


class Reporter:
    """The loader's periodic log line and its status file (rewritten atomically)."""

    def __init__(self, database: str, status_file: Path | None, interval_s: float) -> None:
        self.database = database
        self.status_file = status_file
        self.interval_s = interval_s
        self.state = "starting"
        self.rate = 0.0
        self._last = (time.monotonic(), 0)  # (when, rows) of the last report

    def due(self, now: float) -> bool:
        return now - self._last[0] >= self.interval_s

    def report(self, stats: Stats, rows: int, lag: Mapping[Key, int], final: bool = False) -> None:
        """Log the rate since the last report and the lag; rewrite the status file."""
        now = time.monotonic()
        t0, r0 = self._last
        self.rate = (rows - r0) / max(1e-6, now - t0)
        self._last = (now, rows)
        worst = sorted(lag.items(), key=lambda kv: -kv[1])[:3]
        log.info(
            "%s: %d rows loaded (%.0f rows/s), %d inserts, %d dead letters, lag %d%s",
            "stopped" if final else self.state,
            rows,
            self.rate,
            stats.inserts,
            stats.dead_letters,
            sum(lag.values()),
            (" (" + ", ".join(f"{t}[{p}]={n}" for (t, p), n in worst if n) + ")")
            if any(n for _, n in worst)
            else "",
        )
        self.write(stats, lag)

    def write(self, stats: Stats, lag: Mapping[Key, int] | None = None) -> None:
        """The status file: state, totals, rate and lag per partition (none: no file)."""
        if self.status_file is None:
            return
        doc = {
            "pid": os.getpid(),
            "updated": time.time(),
            "state": self.state,
            "database": self.database,
            "rows": stats.rows,
            "rows_per_s": round(self.rate, 1),
            "inserts": stats.inserts,
            "dead_letters": stats.dead_letters,
            "lag_total": sum((lag or {}).values()),
            "lag": {f"{t}[{p}]": n for (t, p), n in (lag or {}).items()},
        }
        tmp = self.status_file.with_suffix(".tmp")
        try:
            self.status_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc))
            tmp.replace(self.status_file)
        except OSError as e:
            log.debug("status file: %s", e)
