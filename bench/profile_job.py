"""Where a job's time goes: JFR on the TaskManager and py-spy on its Python workers (issue 17).

    .venv/bin/python bench/profile_job.py player_stats --variant twin [--events 600000]
        [--seconds 40] [--warmup-events 50000] [--out /tmp/flinkpulse-profile]

On the running stack (kafka, registry, flink): fills the job's domain into fresh topics, runs
the job (`udf`) or its built-in twin (`twin`) bounded over them and, once it has read
`--warmup-events` records, records `--seconds` of JFR and py-spy; then cancels the job. One
implementation, `flinkpulse/bench/profile.py` (also the `profile` section of `flinkpulse
bench`); this prints its summary and keeps it, with the raw files, in --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from flinkpulse.bench.jobs import JOB_TOPICS, fill
    from flinkpulse.bench.profile import profile_job, text_lines
    from flinkpulse.config import load_config

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("job", choices=sorted(JOB_TOPICS))
    p.add_argument("--variant", choices=["udf", "twin"], default="twin")
    p.add_argument("--events", type=int, default=600_000)
    p.add_argument("--seconds", type=int, default=40)
    p.add_argument("--warmup-events", type=int, default=50_000)
    p.add_argument("--out", type=Path, default=Path("/tmp/flinkpulse-profile"))
    a = p.parse_args(argv)
    from flinkpulse.bench import stop_on_sigterm

    stop_on_sigterm()  # a killed run cancels its jobs
    cfg = load_config()
    cfg = cfg.with_prefix(f"{cfg.kafka.topic_prefix}prof{uuid.uuid4().hex[:6]}.")
    domains = tuple(sorted({t.split(".")[0] for t in JOB_TOPICS[a.job]}))
    print(f"filling {a.events:,} events per domain {domains} ...", flush=True)
    filled = fill(cfg, a.events, domains=domains)
    summary = profile_job(
        cfg, a.job, a.variant, filled,
        seconds=a.seconds, warmup_events=a.warmup_events, out_dir=a.out,
    )  # fmt: skip
    lines = text_lines(summary)
    print("\n".join(lines))
    stem = f"{a.job}-{a.variant}"
    (a.out / f"{stem}.summary.txt").write_text("\n".join(lines) + "\n")
    (a.out / f"{stem}.summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
