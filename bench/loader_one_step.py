"""Benchmark: the loader's staged insert vs one-step ClickHouse-side decoding, in-process chDB.

    .venv/bin/python bench/loader_one_step.py [--rows 10000] [--rounds 5]

Issue 17's loader lever "ClickHouse-side decoding without the stage table": server time of one
batch of Flink-shaped player_stats records (the container of flinkpulse/loader/fast.py), with
no HTTP and no Kafka in the way, interleaved rounds, median milliseconds:

* stage: what the loader does (TRUNCATE, INSERT ... FORMAT Avro into the Memory stage table,
  the checked INSERT ... SELECT);
* file: one checked INSERT ... SELECT ... FROM file(<container>, Avro) (what an ``input()``
  rewritten by the server into a spooled file would run; the row-count check reads it twice);
* format_b64: one checked INSERT ... SELECT ... FROM format(Avro, base64Decode({d:String}));

and whether chDB takes ``INSERT ... SELECT ... FROM input(...)`` at all (streaming insert, and
the data inline after FORMAT).
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COLUMNS = {
    "window_start": "DateTime64(3)", "window_end": "DateTime64(3)", "player_id": "String",
    "team": "String", "match_id": "String", "kills": "Int32", "deaths": "Int32",
    "assists": "Int32", "damage": "Float64", "headshots": "Int32",
    "kd_ratio": "Nullable(Float64)",
}  # fmt: skip
AVRO_SETTINGS = "input_format_avro_allow_missing_fields=1, input_format_null_as_default=1"


def main() -> None:
    import chdb

    from flinkpulse.bench.records import PLAYER_STATS, Encoder, player_row
    from flinkpulse.loader.fast import create_stage_sql, insert_select_sql, plan, stage_name

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = args.rows
    tmp = tempfile.mkdtemp()
    c = chdb._chdb.connect(f"file:{tmp}/db")
    cols = ", ".join(f"`{k}` {v}" for k, v in COLUMNS.items())
    c.query(
        f"CREATE TABLE t ({cols}, _topic String, _partition Int32, _offset Int64) "
        "ENGINE = MergeTree ORDER BY (_partition, _offset)"
    )
    p = plan(PLAYER_STATS, COLUMNS)
    assert p is not None
    enc = Encoder(7, PLAYER_STATS)
    values = [enc(player_row(i)) for i in range(n)]
    stage = stage_name("t")
    c.query(create_stage_sql("t", p))
    structure = ", ".join(f"`{a}` {b}" for a, b in p.stage_columns)

    def one_step(src: str) -> str:
        return (
            insert_select_sql("t", "t", p).replace(f"FROM `{stage}`", f"FROM {src}")
            + f" SETTINGS {AVRO_SETTINGS}"
        )

    ms: dict[str, list[float]] = {"stage": [], "file": [], "format_b64": []}
    k = 0
    for r in range(args.rounds):
        names = list(ms)
        for way in names[r % 3 :] + names[: r % 3]:
            k += 1
            body = p.container(values, list(range(k * n, k * n + n)))
            bind = {"t": "bench", "p": "0", "n": str(n)}
            t = time.perf_counter()
            if way == "stage":
                c.query(f"TRUNCATE TABLE `{stage}`")
                h = c.send_insert(f"INSERT INTO `{stage}` SETTINGS {AVRO_SETTINGS}", "Avro")
                c.insert_append(h, body)
                c.insert_done(h)
                c.query(insert_select_sql("t", "t", p), params=bind)
            elif way == "file":
                path = f"{tmp}/batch{k}.avro"
                Path(path).write_bytes(body)
                c.query(one_step(f"file('{path}', Avro, '{structure}')"), params=bind)
                os.unlink(path)
            else:
                src = f"format(Avro, '{structure}', base64Decode({{d:String}}))"
                c.query(one_step(src), params={**bind, "d": base64.b64encode(body).decode()})
            ms[way].append((time.perf_counter() - t) * 1000)
    rows = c.query("SELECT count(), uniqExact(_offset) FROM t", "TSV").bytes().split()
    print(f"{n:,} rows a batch, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}")
    for way, v in ms.items():
        print(f"{way:<12} median {statistics.median(v):6.1f} ms  {[round(x) for x in v]}")
    print(f"rows in the table {int(rows[0]):,}, distinct offsets {int(rows[1]):,}")
    input_sql = "INSERT INTO t (kills) SELECT kills FROM input('kills Int32')"
    try:
        c.send_insert(input_sql, "TSV")
        print("input() streaming insert: accepted")
    except RuntimeError as e:
        print(f"input() streaming insert: refused: {str(e).splitlines()[0]}")
    before = c.query("SELECT count() FROM t", "TSV").bytes().strip()
    c.query(f"{input_sql} FORMAT TSV\n1\n2\n".encode(), "TSV")
    after = c.query("SELECT count() FROM t", "TSV").bytes().strip()
    print(f"input() with the data inline: no error, rows {before.decode()} -> {after.decode()}")


if __name__ == "__main__":
    main()
