"""Benchmark: the exactly-once loader vs a direct bulk insert of the same rows (not a test).

Produces N Flink-shaped ``player_stats`` records (Avro, Confluent framing) to a fresh topic,
then measures, into fresh databases on the running stack's ClickHouse:

  * loader:  ``Loader.run(once=True)`` — consume (read_committed), decode Avro through the
    registry, build Arrow, insert with offsets; rows / wall time from start to all inserted;
  * direct:  the same rows, already decoded in memory, as 10k-row Arrow tables through
    clickhouse-connect ``insert_arrow`` (the fastest client path, bench/clickhouse_http.py),
    and the same rows through ``insert`` from Python row lists.

    .venv/bin/python bench/loader.py [--rows 200000] [--batch-rows 10000]

Needs kafka, registry and clickhouse running (`flinkpulse stack up kafka registry clickhouse`).
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Producer  # noqa: E402

from flinkpulse.clickhouse.migrate import client, migrate  # noqa: E402
from flinkpulse.config import load_config  # noqa: E402
from flinkpulse.loader.avro import Decoder  # noqa: E402
from flinkpulse.loader.columns import TableSpec, build  # noqa: E402
from flinkpulse.loader.core import Loader  # noqa: E402
from flinkpulse.topics import ensure_topics  # noqa: E402
from tests.loader_helpers import PLAYER_STATS, Encoder, player_row, register  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch-rows", type=int, default=10_000)
    args = ap.parse_args()
    n, b = args.rows, args.batch_rows

    base = load_config()
    run = f"bench{uuid.uuid4().hex[:6]}"
    cfg = copy.deepcopy(base)
    cfg.kafka.topic_prefix = f"{run}."
    cfg.clickhouse.database = f"{run}_loader"
    cfg.loader.batch_rows = b
    cfg.loader.stats_interval_s = 3600
    direct_db = f"{run}_direct"

    topic = cfg.kafka.topic("results.player-stats")
    ensure_topics(cfg, ["results.player-stats"])
    enc = Encoder(register(cfg.registry.url, f"{topic}-value", PLAYER_STATS), PLAYER_STATS)
    values = [enc(player_row(i)) for i in range(n)]
    p = Producer({**cfg.kafka.client_conf(), "linger.ms": 50, "batch.size": 1 << 20})
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topic, value=v)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    p.flush(60)
    migrate(cfg, log=None)
    migrate(cfg, direct_db, log=None)

    # (a) the loader, end to end
    t = time.perf_counter()
    stats = Loader(cfg, topics=["results.player-stats"]).run(once=True)
    # once=True waits up to its idle fallback only when it cannot see the end; subtract none
    loader_s = time.perf_counter() - t
    assert stats.rows == n, stats

    # (b) direct: the same rows, decoded beforehand, as Arrow tables
    ch = client(cfg)
    dec = Decoder(cfg.registry.url)
    rows = [dec.decode(v) for v in values]
    spec = TableSpec.from_system_columns(
        direct_db,
        "player_stats",
        ch.query(
            "SELECT name, type, default_kind FROM system.columns WHERE database = {d:String} "
            "AND table = 'player_stats' ORDER BY position",
            parameters={"d": direct_db},
        ).result_rows,
    )
    tables = [build(spec, topic, 0, rows[i : i + b], list(range(i, i + len(rows[i : i + b]))))[0]
              for i in range(0, n, b)]  # fmt: skip
    t = time.perf_counter()
    for tb in tables:
        ch.insert_arrow(spec.qualified, tb)
    arrow_s = time.perf_counter() - t

    # (c) direct: clickhouse-connect insert() from Python row lists
    cols = [*spec.columns, "_topic", "_partition", "_offset"]
    lists = [tb.to_pylist() for tb in tables]
    ch.command(f"TRUNCATE TABLE {spec.qualified}")
    t = time.perf_counter()
    for chunk in lists:
        ch.insert(spec.qualified, [[r[c] for c in cols] for r in chunk], column_names=cols)
    lists_s = time.perf_counter() - t

    for db in (cfg.clickhouse.database, direct_db):
        ch.command(f"DROP DATABASE IF EXISTS `{db}`")
    ch.close()

    print(f"machine: {platform.machine()}, python {platform.python_version()}, rows {n}, "
          f"batch {b}")  # fmt: skip
    print(f"loader (consume+decode+insert)   {n / loader_s:>10,.0f} rows/s  ({loader_s:.2f} s)")
    print(f"direct insert_arrow (prebuilt)   {n / arrow_s:>10,.0f} rows/s  ({arrow_s:.2f} s)")
    print(f"direct insert (Python lists)     {n / lists_s:>10,.0f} rows/s  ({lists_s:.2f} s)")
    print(f"ratio loader / insert_arrow      {arrow_s / loader_s:>10.2f}")
    print(f"ratio loader / insert (lists)    {lists_s / loader_s:>10.2f}")


if __name__ == "__main__":
    main()
