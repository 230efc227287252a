"""Data quality per source topic into ClickHouse: the `quality` process of the loader component.

Every ``loader.quality_interval_s`` it counts, per source topic, the records and how many were
late, dead-lettered, or dead-lettered as "future" (:func:`flinkpulse.quality.source_quality`,
the numbers `stack status` prints) and inserts one row per topic into ``source_quality``
(sql/clickhouse/005_source_quality.sql). The view ``source_quality_latest`` gives the newest
sample per topic with the shares; the Security dashboard shows it. The same process samples
each job's throughput and consumer lag into ``job_metrics`` (:mod:`flinkpulse.loader.jobmetrics`:
Flink's REST API keeps no history), which `flinkpulse report` reads over its period.

A separate process, not a thread of the loader: scanning dead letters for their reason costs
CPU that must not compete with the loader's inserts for the GIL. A failed sample (Kafka or
ClickHouse down, table not migrated yet) is logged and retried at the next interval.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flinkpulse.config import Config, load_config
from flinkpulse.loader import jobmetrics
from flinkpulse.quality import TopicQuality, source_quality

log = logging.getLogger("flinkpulse.loader.quality")

TABLE = "source_quality"
COLUMNS = ["sampled_at", "topic", "records", "late", "dead_lettered", "future", "duplicates"]


def rows(sampled_at: datetime, counts: list[TopicQuality]) -> list[list[Any]]:
    """The `source_quality` rows of one sample (one per source topic)."""
    return [
        [sampled_at, q.topic, q.records, q.late, q.dead_lettered, q.future, q.duplicates]
        for q in counts
    ]


def sample_once(cfg: Config, ch: Any = None) -> list[TopicQuality]:
    """Count now and insert the sample into ``<clickhouse.database>.source_quality``."""
    from flinkpulse.clickhouse.migrate import check_database_name, client

    db = check_database_name(cfg.clickhouse.database)
    sampled_at = datetime.now(UTC)
    counts = source_quality(cfg)
    if not counts:
        return counts
    own = ch is None
    ch = ch or client(cfg, "writer", database=db)
    try:
        ch.insert(f"`{db}`.{TABLE}", rows(sampled_at, counts), column_names=COLUMNS)
    finally:
        if own:
            ch.close()
    return counts


def run(
    cfg: Config, interval_s: float, stop: threading.Event, loader_status: Path | None = None
) -> None:
    """Sample every `interval_s` seconds until `stop` is set (first sample at once): the source
    topics' quality, and each job's throughput and lag (:mod:`flinkpulse.loader.jobmetrics`)."""
    while not stop.is_set():
        try:
            counts = sample_once(cfg)
            log.info("sampled %d source topics", len(counts))
        except Exception as e:  # noqa: BLE001 - retried next interval; the loader is unaffected
            _warn("quality", e)
        try:
            jobs = jobmetrics.sample_once(cfg, loader_status=loader_status)
            log.info("sampled %d jobs", len(jobs))
        except Exception as e:  # noqa: BLE001 - as above
            _warn("job metrics", e)
        stop.wait(interval_s)


def _warn(what: str, e: Exception) -> None:
    first = (str(e).strip().splitlines() or [repr(e)])[0]
    log.warning("%s sample failed: %s: %s", what, type(e).__name__, first[:300])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flinkpulse.loader.quality", description=__doc__)
    p.add_argument("--interval", type=float, help="seconds between samples")
    p.add_argument("--once", action="store_true", help="take one sample and exit")
    p.add_argument("--loader-status", type=Path, help="the loader's status file (its row)")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("urllib3", "clickhouse_connect"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    cfg = load_config()
    if args.once:
        sample_once(cfg)
        jobmetrics.sample_once(cfg, loader_status=args.loader_status)
        return 0
    interval = args.interval or cfg.loader.quality_interval_s
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(cfg, max(1.0, interval), stop, args.loader_status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
