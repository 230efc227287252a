"""Loader: rows/s of the exactly-once loader vs a direct clickhouse-connect bulk insert.

N Flink-shaped `player_stats` records (Avro, Confluent framing) in a fresh topic, loaded into
fresh databases (dropped afterwards):

* loader: ``Loader.run(once=True)`` end to end — start-up, consume (read_committed), decode,
  insert per partition with offsets — as configured: ClickHouse decodes the Avro
  (:mod:`flinkpulse.loader.fast`);
* loader, Python decoding: the same with ``fast=False`` (fastavro -> Arrow -> ``insert_arrow``),
  the path every record takes that ClickHouse cannot decode alike;
* direct: the same rows, decoded beforehand, as Arrow tables of the same batch size through
  ``insert_arrow`` — the fastest client path (bench/clickhouse_http.py).

The goal is loader ≥ 0.5 × direct; both loaders must leave identical rows.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from flinkpulse.config import Config
from flinkpulse.paths import ROOT


def run(cfg: Config, rows: int, batch_rows: int = 10_000) -> dict[str, Any]:
    """Produce `rows` records, load them three ways; rows/s and ratios (see the docstring)."""
    if str(ROOT) not in sys.path:  # the record shapes are shared with the loader tests
        sys.path.insert(0, str(ROOT))
    from confluent_kafka import Producer

    from flinkpulse.bench.records import PLAYER_STATS, Encoder, player_row, register
    from flinkpulse.clickhouse.migrate import client, migrate
    from flinkpulse.loader.avro import Decoder
    from flinkpulse.loader.columns import TableSpec, build
    from flinkpulse.loader.core import Loader
    from flinkpulse.topics import ensure_topics

    run_id = cfg.kafka.topic_prefix.strip(".").replace(".", "_").replace("-", "_")
    cfg = cfg.derive(
        kafka={"topic_prefix": f"{cfg.kafka.topic_prefix}load."},
        loader={"batch_rows": batch_rows, "stats_interval_s": 3600},
    )
    dbs = {"loader": f"{run_id}_loader", "python": f"{run_id}_loader_py"}
    direct_db = f"{run_id}_direct"
    topic = cfg.kafka.topic("results.player-stats")
    ensure_topics(cfg, ["results.player-stats"])
    enc = Encoder(register(cfg.registry.url, f"{topic}-value", PLAYER_STATS), PLAYER_STATS)
    values = [enc(player_row(i)) for i in range(rows)]
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
    for db in [*dbs.values(), direct_db]:
        migrate(cfg, db, log=None)
    ch = client(cfg)
    seconds: dict[str, float] = {}
    loaded: dict[str, int] = {}
    try:
        for name, db in dbs.items():
            lcfg = cfg.derive(clickhouse={"database": db})
            t = time.perf_counter()
            stats = Loader(lcfg, topics=["results.player-stats"], fast=name == "loader").run(
                once=True
            )
            seconds[name] = time.perf_counter() - t
            loaded[name] = stats.rows
        digests = {
            name: ch.query(
                "SELECT count(), sum(cityHash64(* EXCEPT _loaded_at)) "
                f"FROM `{db}`.player_stats FINAL"
            ).result_rows[0]
            for name, db in dbs.items()
        }
        dec = Decoder(cfg.registry.url)
        decoded = [dec.decode(v) for v in values]
        spec = TableSpec.from_system_columns(
            direct_db,
            "player_stats",
            ch.query(
                "SELECT name, type, default_kind FROM system.columns WHERE database = {d:String} "
                "AND table = 'player_stats' ORDER BY position",
                parameters={"d": direct_db},
            ).result_rows,
        )
        tables = [
            build(
                spec,
                topic,
                0,
                decoded[i : i + batch_rows],
                list(range(i, min(i + batch_rows, rows))),
            )[0]
            for i in range(0, rows, batch_rows)
        ]
        t = time.perf_counter()
        for tb in tables:
            ch.insert_arrow(spec.qualified, tb)
        direct_s = time.perf_counter() - t
    finally:
        for db in [*dbs.values(), direct_db]:
            ch.command(f"DROP DATABASE IF EXISTS `{db}`")
        ch.close()
    return {
        "rows": rows,
        "batch_rows": batch_rows,
        "loaded": loaded["loader"],
        "loader_rows_per_s": round(rows / seconds["loader"]),
        "loader_python_rows_per_s": round(rows / seconds["python"]),
        "direct_insert_arrow_rows_per_s": round(rows / direct_s),
        "ratio": round(direct_s / seconds["loader"], 3),
        "ratio_python": round(direct_s / seconds["python"], 3),
        "same_rows": digests["loader"] == digests["python"] and loaded["python"] == rows,
    }
