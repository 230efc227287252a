"""Benchmark: the embedded ClickHouse HTTP server vs chDB in-process (not a test).

Inserts the same 100k-row batches (a player_stats-shaped table) two ways and reports rows/s:
  * in-process: ``INSERT INTO t SELECT * FROM Python(df)`` on a chDB connection;
  * over HTTP:  clickhouse-connect ``insert_df`` / ``insert`` (column lists) / ``insert_arrow`` into
    ``flinkpulse clickhouse serve`` on a temporary data directory, without and with lz4;
and the round trip of a small query (``SELECT 1``) both ways.

    .venv/bin/python bench/clickhouse_http.py [--batches 10] [--rows 100000]
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

DDL = """CREATE TABLE IF NOT EXISTS {name} (
    window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC'),
    player_id String, team String, match_id String,
    kills UInt32, deaths UInt32, assists UInt32, damage Float64, headshots UInt32,
    kd_ratio Float64, _topic String, _partition UInt32, _offset UInt64
) ENGINE = MergeTree ORDER BY (match_id, player_id, window_start)"""


def batch(rows: int, k: int) -> pd.DataFrame:
    rng = np.random.default_rng(k)
    start = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 86_400_000, rows), unit="ms"
    )
    kills = rng.integers(0, 30, rows).astype("uint32")
    deaths = rng.integers(0, 30, rows).astype("uint32")
    return pd.DataFrame(
        {
            "window_start": start,
            "window_end": start + pd.Timedelta(seconds=60),
            "player_id": [f"player-{i}" for i in rng.integers(0, 10_000, rows)],
            "team": np.where(rng.integers(0, 2, rows) == 0, "red", "blue"),
            "match_id": [f"match-{i}" for i in rng.integers(0, 500, rows)],
            "kills": kills,
            "deaths": deaths,
            "assists": rng.integers(0, 20, rows).astype("uint32"),
            "damage": rng.random(rows) * 5000,
            "headshots": rng.integers(0, 10, rows).astype("uint32"),
            "kd_ratio": kills / np.maximum(deaths, 1),
            "_topic": "gaming.player-stats",
            "_partition": np.zeros(rows, dtype="uint32"),
            "_offset": np.arange(k * rows, (k + 1) * rows, dtype="uint64"),
        }
    )


def in_process(dfs: list[pd.DataFrame], path: str, queries: int) -> tuple[float, float]:
    import chdb

    conn = chdb.connect(path)
    conn.query(DDL.format(name="t"))
    total = 0.0
    for df in dfs:  # noqa: B007 - Python(df) reads the local `df` by name
        t0 = time.perf_counter()
        conn.query("INSERT INTO t SELECT * FROM Python(df)")
        total += time.perf_counter() - t0
    n = int(str(conn.query("SELECT count() FROM t", "CSV")).strip())
    assert n == sum(len(d) for d in dfs), n
    lat = []
    for _ in range(queries):
        t0 = time.perf_counter()
        conn.query("SELECT 1", "CSV")
        lat.append(time.perf_counter() - t0)
    conn.close()
    return sum(len(d) for d in dfs) / total, statistics.median(lat)


def over_http(dfs: list[pd.DataFrame], port: int, queries: int) -> dict[str, float]:
    import clickhouse_connect

    out: dict[str, float] = {}
    for label, compress, how in [
        ("insert_df, no compression", False, "df"),
        ("insert_df, lz4", "lz4", "df"),
        ("insert (column lists), no compression", False, "cols"),
        ("insert_arrow, no compression", False, "arrow"),
    ]:
        c = clickhouse_connect.get_client(host="127.0.0.1", port=port, compress=compress)
        table = f"t_{len(out)}"
        c.command(DDL.format(name=table))
        total = 0.0
        for df in dfs:
            cols = [df[col].tolist() for col in df.columns] if how == "cols" else None
            arrow = pa.Table.from_pandas(df, preserve_index=False) if how == "arrow" else None
            t0 = time.perf_counter()
            if cols is not None:
                c.insert(table, cols, column_names=list(df.columns), column_oriented=True)
            elif arrow is not None:
                c.insert_arrow(table, arrow)
            else:
                c.insert_df(table, df)
            total += time.perf_counter() - t0
        assert c.command(f"SELECT count() FROM {table}") == sum(len(d) for d in dfs)
        out[label] = sum(len(d) for d in dfs) / total
    c = clickhouse_connect.get_client(host="127.0.0.1", port=port)
    lat = []
    for _ in range(queries):
        t0 = time.perf_counter()
        c.query("SELECT 1")
        lat.append(time.perf_counter() - t0)
    out["select1"] = statistics.median(lat)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args(argv)

    dfs = [batch(args.rows, k) for k in range(args.batches)]
    with tempfile.TemporaryDirectory() as tmp:
        ip_rate, ip_lat = in_process(dfs, str(Path(tmp) / "inproc"), args.queries)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115
        srv = subprocess.Popen(
            [sys.executable, "-m", "flinkpulse.cli", "clickhouse", "serve",
             "--path", str(Path(tmp) / "srv"), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            import requests

            for _ in range(300):
                try:
                    if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).ok:
                        break
                except requests.RequestException:
                    time.sleep(0.1)
            http = over_http(dfs, port, args.queries)
        finally:
            srv.terminate()
            srv.wait(30)
            log.close()

    import chdb
    import clickhouse_connect

    print(
        f"machine: {platform.processor() or platform.machine()}, {_cpus()} CPUs, "
        f"Python {platform.python_version()}, chDB {chdb.__version__} (engine "
        f"{chdb.engine_version}), clickhouse-connect {clickhouse_connect.__version__}"
    )
    print(f"{args.batches} batches x {args.rows} rows (player_stats shape, 14 columns)\n")
    print("| path | rows/s | vs in-process |")
    print("|---|---:|---:|")
    print(f"| chDB in-process, INSERT ... SELECT FROM Python(df) | {ip_rate:,.0f} | 1.00 |")
    for label, rate in http.items():
        if label != "select1":
            print(
                f"| HTTP server, clickhouse-connect {label} | {rate:,.0f} | {rate / ip_rate:.2f} |"
            )
    print()
    print("| small query (SELECT 1), median round trip | ms |")
    print("|---|---:|")
    print(f"| chDB in-process | {ip_lat * 1000:.2f} |")
    print(f"| HTTP server via clickhouse-connect | {http['select1'] * 1000:.2f} |")
    print(f"| overhead of the HTTP path | {(http['select1'] - ip_lat) * 1000:.2f} |")
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
