"""JVM/Python levers A/B, interleaved in one run (issue 17); see bench/README.md, "Levers".

    .venv/bin/python bench/levers.py player_stats twin twin+object_reuse [--events 200000]
        [--rounds 2]

On the running stack (kafka, registry, flink). The first variant is the base; each variant is
`udf` or `twin`, optionally `+<lever>` (flinkpulse/bench/jobs.py LEVERS). Prints one line per
run and, per variant, the steady rates and the median ratio to the base within a round.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from flinkpulse.bench.jobs import JOB_TOPICS, ab
    from flinkpulse.config import load_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("job", choices=sorted(JOB_TOPICS))
    p.add_argument("variants", nargs="+")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args(argv)
    from flinkpulse.bench import stop_on_sigterm

    stop_on_sigterm()  # a killed run cancels its jobs
    res = ab(load_config(), a.job, a.variants, a.events, a.rounds)
    keep = ("round", "variant", "state", "startup_s", "events_per_s", "steady_events_per_s",
            "alongside_read")  # fmt: skip
    for r in res["runs"]:
        print(
            json.dumps(
                {k: r.get(k) for k in keep} | ({"error": r["error"][:300]} if "error" in r else {})
            )
        )
    for s in res["summary"]:
        print(json.dumps(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
