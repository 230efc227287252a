"""The run's outputs: JSON (everything), a Markdown summary a user can read, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: the Markdown summary's sections, in order (tests check they are all present)
SECTIONS = ["Machine", "Producers", "Jobs", "Loader", "End to end", "Start-up", "Goals"]


def _n(x: Any, fmt: str = ",.0f") -> str:
    return "—" if x is None else format(x, fmt)


def _err(sec: dict[str, Any]) -> str | None:
    if "error" in sec:
        return f"**Not measured**: {sec['error']}"
    if "skipped" in sec:
        return f"*Skipped*: {sec['skipped']}"
    return None


def markdown(res: dict[str, Any], plots: list[str]) -> str:
    m = res["machine"]
    out = [f"# flinkpulse bench — {res['started']}{' (quick)' if res['quick'] else ''}", ""]
    out += ["## Machine", ""]
    out += [
        f"{m['cores']} cores ({m['cpu']}, {m['arch']}), {m['memory_gb']} GB, load average at "
        f"start {m['load_average']}, Python {m['python']}, {m['java']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
        + f". Whole run: {res['elapsed_s']:.0f} s.",
        "",
    ]
    p = res["producers"]
    out += ["## Producers", ""]
    out += [_err(p) or ""] if _err(p) else [
        f"{p['events_per_domain']:,} events per domain, one process pinned to core "
        f"{p['pinned_cpu']}.", "",
        "| domain | Avro events/s (generate+encode+produce) | raw-bytes produce msgs/s | ratio |",
        "|---|---:|---:|---:|",
        *[f"| {r['domain']} | {r['avro_events_per_s']:,} | {r['raw_bytes_msgs_per_s']:,} | "
          f"{r['ratio']:.2f} |" for r in p["rows"]],
    ]  # fmt: skip
    out.append("")
    j = res["jobs"]
    out += ["## Jobs", ""]
    if _err(j):
        out += [_err(j) or ""]
    else:
        f = j["fill"]
        out += [
            "Bounded runs over pre-filled topics (" + ", ".join(
                f"{t} {n:,}" for t, n in f["per_topic"].items()) + "); `twin` = the same SQL "
            "with avro-confluent sources and built-in expressions instead of Python UDFs. "
            "Rate = events / (last task end − first source task start).", "",
            "| job | variant | state | events | s | events/s | per slot | vs twin |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]  # fmt: skip
        for r in j["rows"]:
            out.append(
                f"| {r['job']} | {r['variant']} | {r.get('state', 'ERROR')} | "
                f"{_n(r.get('events'))} | {_n(r.get('run_s'), '.1f')} | "
                f"{_n(r.get('events_per_s'))} | {_n(r.get('events_per_s_per_slot'))} | "
                f"{_n(r.get('vs_twin'), '.2f')} |"
            )
        errs = [f"- {r['job']} {r['variant']}: {r['error']}" for r in j["rows"] if "error" in r]
        out += ["", *errs] if errs else []
    out.append("")
    lo = res["loader"]
    out += ["## Loader", ""]
    out += [_err(lo) or ""] if _err(lo) else [
        f"{lo['rows']:,} `player_stats` rows, batches of {lo['batch_rows']:,}.", "",
        "| path | rows/s |", "|---|---:|",
        f"| loader (consume + decode + insert, exactly once) | {lo['loader_rows_per_s']:,} |",
        f"| direct `insert_arrow` of prebuilt Arrow tables | "
        f"{lo['direct_insert_arrow_rows_per_s']:,} |",
        f"| **ratio** | **{lo['ratio']:.2f}** |",
    ]  # fmt: skip
    out.append("")
    e = res["e2e"]
    out += ["## End to end", ""]
    if _err(e):
        out += [_err(e) or ""]
    else:
        lat = e["latency_s"]
        out += [
            f"security_alerts + loader, background load {e['rate']:,.0f} events/s "
            f"(achieved {_n(e.get('background', {}).get('rate'))}), checkpoint interval "
            f"{e['checkpoint_interval_s']} s, watermark delay {e['watermark_delay_s']} s. "
            f"Alerts: {e['alerts']} ({e['alerts_matched']} matched to their last event).", "",
            "| alert latency (last event produced → row in ClickHouse) | p50 | p95 | p99 | max |",
            "|---|---:|---:|---:|---:|",
            f"| all rules | {_n(lat['p50'], '.2f')} | {_n(lat['p95'], '.2f')} | "
            f"{_n(lat['p99'], '.2f')} | {_n(lat['max'], '.2f')} |",
            *[f"| {rule} | {_n(v['p50'], '.2f')} | {_n(v['p95'], '.2f')} | "
              f"{_n(v['p99'], '.2f')} | {_n(v['max'], '.2f')} |"
              for rule, v in e["latency_by_rule"].items()],
            "",
            f"Job submission to the first alert row in ClickHouse: "
            f"{_n(e.get('submit_to_first_row_s'), '.1f')} s.",
        ]  # fmt: skip
        if e.get("steps"):
            out += ["", f"Sustained rate, {e['step_s']:.0f} s per step:", "",
                    "| target events/s | achieved | lag growing | sustained |",
                    "|---:|---:|---|---|",
                    *[f"| {s['target']:,.0f} | {s['achieved']:,} | {s['lag_growing']} | "
                      f"{s['sustained']} |" for s in e["steps"]],
                    "", f"Highest sustained: {_n(e.get('max_sustained_rate'))} events/s."]  # fmt: skip
    out.append("")
    s = res["startup"]
    out += ["## Start-up", ""]
    out += [_err(s) or ""] if _err(s) else [
        f"Cold `stack up` of {', '.join(s['components'])} (private state dir and ports) to all "
        f"healthy: **{s['cold_up_s']} s** (" + ", ".join(
            f"{k} {v} s" for k, v in s["per_component_s"].items()) + ")."
    ]  # fmt: skip
    out += ["", "## Goals", "", "| goal | measured | met |", "|---|---|---|"]
    for g in res["goals"]:
        out.append(f"| {g['goal']} | {g['measured']} | {g['met']} |")
    if plots:
        out += ["", *[f"![{Path(pl).stem}]({Path(pl).name})" for pl in plots]]
    return "\n".join(out) + "\n"


def goals(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals against this run's numbers (None: not measured)."""
    g = []
    p = res["producers"].get("rows") or []
    worst = min((r["avro_events_per_s"] for r in p), default=None)
    g.append({"goal": "producer ≥ 50,000 Avro events/s on one core",
              "measured": f"{_n(worst)} (slowest domain)",
              "met": None if worst is None else worst >= 50_000})  # fmt: skip
    jr = [r for r in res["jobs"].get("rows", []) if r.get("variant") == "udf" and "vs_twin" in r]
    lo = min((r["vs_twin"] for r in jr), default=None)
    g.append({"goal": "every UDF job ≥ 0.5 × its built-in twin",
              "measured": ", ".join(f"{r['job']} {r['vs_twin']:.2f}" for r in jr) or "—",
              "met": None if lo is None else lo >= 0.5})  # fmt: skip
    ratio = res["loader"].get("ratio")
    g.append({"goal": "loader ≥ 0.5 × direct bulk insert", "measured": _n(ratio, ".2f"),
              "met": None if ratio is None else ratio >= 0.5})  # fmt: skip
    e = res["e2e"]
    p95 = (e.get("latency_s") or {}).get("p95")
    g.append({"goal": "alert p95 ≤ 5 s at 10,000 events/s",
              "measured": f"{_n(p95, '.2f')} s at {_n(e.get('rate'))} events/s",
              "met": None if p95 is None else (p95 <= 5 and e.get("rate", 0) >= 10_000)})  # fmt: skip
    return g


def plots(res: dict[str, Any], out_dir: Path, stem: str) -> list[str]:
    """latency distribution and throughput-over-time PNGs (only for what was measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    lat = res["e2e"].get("latency_samples") or []
    if lat:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(lat, bins=min(40, max(5, len(lat))), color="#4c72b0")
        for q, ls in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            v = res["e2e"]["latency_s"][q]
            if v is not None:
                ax.axvline(v, color="k", ls=ls, label=f"{q} {v:.2f} s")
        ax.set_xlabel("alert latency: last event produced → row in ClickHouse (s)")
        ax.set_ylabel("alerts")
        ax.legend()
        ax.set_title(f"Alert latency at {res['e2e']['rate']:,.0f} events/s background load")
        path = out_dir / f"{stem}-latency.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(str(path))
    rows = [r for r in res["jobs"].get("rows", []) if r.get("progress")]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 4))
        for r in rows:
            pr = r["progress"]
            t0 = pr[0][0]
            ax.plot([t - t0 for t, _ in pr], [n for _, n in pr], label=f"{r['job']} {r['variant']}")
        ax.set_xlabel("seconds since submission")
        ax.set_ylabel("records read by the source (REST metric, ~10 s refresh)")
        ax.set_title("Jobs: bounded runs, progress over time")
        ax.legend(fontsize=7)
        path = out_dir / f"{stem}-jobs-throughput.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(str(path))
    steps = res["e2e"].get("steps") or []
    if steps:
        fig, ax = plt.subplots(figsize=(7, 4))
        for s in steps:
            ax.plot([t for t, _ in s["lag"]], [lg for _, lg in s["lag"]],
                    label=f"{s['target']:,.0f}/s target, {s['achieved']:,}/s achieved")  # fmt: skip
        ax.set_xlabel("seconds into the step")
        ax.set_ylabel("consumer lag of security_alerts (records)")
        ax.set_title("Sustained rate steps: lag over time")
        ax.legend(fontsize=7)
        path = out_dir / f"{stem}-lag.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(str(path))
    return made


def write(res: dict[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    made = plots(res, out_dir, stem)
    res["plots"] = [Path(p).name for p in made]
    js = out_dir / f"{stem}.json"
    js.write_text(json.dumps(res, indent=1, default=str) + "\n")
    md = out_dir / f"{stem}.md"
    md.write_text(markdown(res, made))
    return js, md
