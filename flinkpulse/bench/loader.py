"""Loader: rows/s of the exactly-once loader vs a direct clickhouse-connect bulk insert.

N Flink-shaped `player_stats` records (Avro, Confluent framing) in a fresh topic, loaded into
fresh databases (dropped afterwards):

* loader: ``Loader.run(once=True)`` end to end — start-up, consume (read_committed), decode,
  insert per partition with offsets — as configured: ClickHouse decodes the Avro
  (:mod:`flinkpulse.loader.fast`);
* loader, Python decoding: the same with ``fast=False`` (fastavro -> Arrow -> ``insert_arrow``),
  the path every record takes that ClickHouse cannot decode alike;
* direct: the same rows, decoded beforehand, as 10,000-row Arrow tables (DIRECT_BATCH_ROWS)
  through ``insert_arrow`` — the fastest client path (bench/clickhouse_http.py).

The goal is loader ≥ 0.5 × direct; both loaders must leave identical rows.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

from flinkpulse.config import Config
from flinkpulse.paths import ROOT


def _produce(cfg: Config, rows: int) -> tuple[str, list[bytes]]:
    """`rows` player_stats records into the (fresh) results topic; (topic, values)."""
    if str(ROOT) not in sys.path:  # the record shapes are shared with the loader tests
        sys.path.insert(0, str(ROOT))
    from flinkpulse.bench.records import PLAYER_STATS, Encoder, player_row, register
    from flinkpulse.producer import Producer
    from flinkpulse.topics import ensure_topics

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
    return topic, values


def _arrow_tables(
    cfg: Config, ch: Any, db: str, topic: str, values: list[bytes], batch_rows: int
) -> tuple[Any, list[Any]]:
    """The rows of `values`, decoded beforehand, as Arrow tables of `batch_rows` for `db`."""
    from flinkpulse.loader.avro import Decoder
    from flinkpulse.loader.columns import TableSpec, build

    rows = len(values)
    dec = Decoder(cfg.registry.url)
    decoded = [dec.decode(v) for v in values]
    spec = TableSpec.from_system_columns(
        db,
        "player_stats",
        ch.query(
            "SELECT name, type, default_kind FROM system.columns WHERE database = {d:String} "
            "AND table = 'player_stats' ORDER BY position",
            parameters={"d": db},
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
    return spec, tables


def _direct(ch: Any, spec: Any, tables: list[Any]) -> float:
    """Seconds to insert_arrow the prebuilt `tables` (an empty table first)."""
    ch.command(f"TRUNCATE TABLE {spec.qualified}")
    t = time.perf_counter()
    for tb in tables:
        ch.insert_arrow(spec.qualified, tb)
    return time.perf_counter() - t


def _run_id(cfg: Config) -> str:
    return cfg.kafka.topic_prefix.strip(".").replace(".", "_").replace("-", "_")


#: rows per Arrow table of the direct insert: the baseline every loader figure is a ratio of
DIRECT_BATCH_ROWS = 10_000


def run(cfg: Config, rows: int, batch_rows: int | None = None) -> dict[str, Any]:
    """Produce `rows` records, load them three ways; rows/s and ratios (see the docstring).
    batch_rows: the loaders' (default: loader.batch_rows); the direct insert's tables are
    always DIRECT_BATCH_ROWS."""
    from flinkpulse.clickhouse.migrate import client, migrate
    from flinkpulse.loader.core import Loader

    run_id = _run_id(cfg)
    batch_rows = batch_rows or cfg.loader.batch_rows
    cfg = cfg.derive(
        kafka={"topic_prefix": f"{cfg.kafka.topic_prefix}load."},
        loader={"batch_rows": batch_rows, "stats_interval_s": 3600},
    )
    dbs = {"loader": f"{run_id}_loader", "python": f"{run_id}_loader_py"}
    direct_db = f"{run_id}_direct"
    topic, values = _produce(cfg, rows)
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
        spec, tables = _arrow_tables(cfg, ch, direct_db, topic, values, DIRECT_BATCH_ROWS)
        direct_s = _direct(ch, spec, tables)
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


#: the loader levers of issue 17: name -> (ClickHouse decodes, batch_rows, more consumer
#: properties); 50k and the shipped consumer are the defaults
LEVERS: dict[str, tuple[bool, int, tuple[str, ...]]] = {
    "batch_10k": (True, 10_000, ()),
    "batch_25k": (True, 25_000, ()),
    "batch_50k": (True, 50_000, ()),
    "batch_100k": (True, 100_000, ()),
    "python_decodes": (False, 50_000, ()),
    # librdkafka's default prefetch, the loader's consumer before 2026-12-01 (fifth session)
    "default_prefetch": (True, 50_000, ("queued.min.messages=100000",)),
}


def levers(
    cfg: Config, rows: int, rounds: int = 3, names: list[str] | None = None
) -> dict[str, Any]:
    """The loader levers side by side: one topic, `rounds` interleaved rounds (the order of
    the variants rotates per round), each variant into a fresh database, and a direct
    insert_arrow right before each variant; per variant the median of its per-round ratios
    (direct seconds / loader seconds) and of its rows/s. Every variant must load every row
    with the same digest."""
    from flinkpulse.clickhouse.migrate import client, migrate
    from flinkpulse.loader.core import Loader

    names = names or list(LEVERS)
    run_id = _run_id(cfg)
    cfg = cfg.derive(
        kafka={"topic_prefix": f"{cfg.kafka.topic_prefix}load."},
        loader={"stats_interval_s": 3600},
    )
    topic, values = _produce(cfg, rows)
    direct_db = f"{run_id}_direct"
    migrate(cfg, direct_db, log=None)
    ch = client(cfg)
    per: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    digests: set[Any] = set()
    loads: list[float] = []
    try:
        spec, tables = _arrow_tables(cfg, ch, direct_db, topic, values, DIRECT_BATCH_ROWS)
        for r in range(rounds):
            loads.append(os.getloadavg()[0])
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                fast, batch_rows, consumer = LEVERS[name]
                db = f"{run_id}_lever_{r}_{name}"
                migrate(cfg, db, log=None)
                direct_s = _direct(ch, spec, tables)
                lcfg = cfg.derive(
                    clickhouse={"database": db},
                    loader={"batch_rows": batch_rows, "consumer_properties": consumer},
                )
                t = time.perf_counter()
                Loader(lcfg, topics=["results.player-stats"], fast=fast).run(once=True)
                loader_s = time.perf_counter() - t
                per[name].append((direct_s, loader_s))
                digests.add(
                    ch.query(
                        "SELECT count(), sum(cityHash64(* EXCEPT _loaded_at)) "
                        f"FROM `{db}`.player_stats FINAL"
                    ).result_rows[0]
                )
                ch.command(f"DROP DATABASE IF EXISTS `{db}`")
    finally:
        ch.command(f"DROP DATABASE IF EXISTS `{direct_db}`")
        ch.close()
    return {
        "rows": rows,
        "rounds": rounds,
        "load_average_1m": [round(x, 2) for x in loads],
        "same_rows": len(digests) == 1 and next(iter(digests))[0] == rows,
        "variants": {
            n: {
                "ratios": [round(d / s, 3) for d, s in v],
                "median_ratio": round(statistics.median(d / s for d, s in v), 3),
                "median_rows_per_s": round(statistics.median(rows / s for _, s in v)),
                "median_direct_rows_per_s": round(statistics.median(rows / d for d, _ in v)),
            }
            for n, v in per.items()
        },
    }
