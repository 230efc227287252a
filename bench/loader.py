"""Benchmark: the exactly-once loader vs a direct bulk insert — the `loader` section of
`flinkpulse bench` (flinkpulse/bench/loader.py), printed instead of written to bench/results.

    .venv/bin/python bench/loader.py [--rows 200000] [--batch-rows N (default loader.batch_rows)]
    .venv/bin/python bench/loader.py --levers [--rounds 3] [--rows 200000] [--variants a,b]   # issue 17 levers

Same as ``flinkpulse bench --sections loader``. Needs kafka, registry and clickhouse running.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    """Run the harness's loader section once and print its rows/s and ratios."""
    from flinkpulse import topics
    from flinkpulse.config import load_config

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch-rows", type=int, help="the loaders' (default loader.batch_rows)")
    ap.add_argument("--levers", action="store_true", help="the loader levers, interleaved")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", help="comma-separated (default: all of loader.LEVERS)")
    args = ap.parse_args()
    cfg = load_config().with_prefix(f"bench{uuid.uuid4().hex[:6]}.")
    try:
        _run(args, cfg)
    finally:
        topics.delete_prefixed(cfg)  # the run's topics go with it


def _run(args: argparse.Namespace, cfg: Any) -> None:
    """The levers or the one three-way comparison, printed."""
    from flinkpulse.bench import loader

    if args.levers:
        names = args.variants.split(",") if args.variants else None
        lv = loader.levers(cfg, args.rows, args.rounds, names)
        print(
            f"rows {lv['rows']:,}, {lv['rounds']} interleaved rounds, load average (1 min) "
            f"at each round {lv['load_average_1m']}, identical rows: {lv['same_rows']}"
        )
        for name, v in lv["variants"].items():
            print(
                f"{name:<16} median ratio {v['median_ratio']:.3f} {v['ratios']}  "
                f"{v['median_rows_per_s']:>9,} rows/s (direct {v['median_direct_rows_per_s']:,})"
            )
        return
    load = os.getloadavg()
    r = loader.run(cfg, args.rows, args.batch_rows)
    print(f"rows {r['rows']:,}, batch {r['batch_rows']:,}, load average {load[0]:.2f}")
    for label, key in (
        ("loader (ClickHouse decodes)", "loader_rows_per_s"),
        ("loader (Python decodes)", "loader_python_rows_per_s"),
        ("direct insert_arrow (prebuilt)", "direct_insert_arrow_rows_per_s"),
    ):
        print(f"{label:<34}{r[key]:>10,} rows/s")
    print(f"{'ratio loader / direct':<34}{r['ratio']:>10.2f}")
    print(f"{'ratio Python loader / direct':<34}{r['ratio_python']:>10.2f}")
    print(f"identical rows both ways: {r['same_rows']}")


if __name__ == "__main__":
    main()
