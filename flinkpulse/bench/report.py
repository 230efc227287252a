"""The run's outputs: JSON (everything), a Markdown summary a user can read, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: the Markdown summary's sections, in order (tests check they are all present)
SECTIONS = [
    "Machine", "Producers", "Jobs", "Profile", "Loader", "End to end", "Start-up", "Goals"
]  # fmt: skip


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
        "| domain | Avro events/s (generate+encode+produce) | per CPU-second | raw-bytes "
        "produce msgs/s | ratio | generate only /s | encode only /s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {r['domain']} | {r['avro_events_per_s']:,} | {_n(r.get('avro_events_per_cpu_s'))} "
          f"| {r['raw_bytes_msgs_per_s']:,} | {r['ratio']:.2f} | {_n(r.get('generate_per_s'))} | "
          f"{_n(r.get('encode_per_s'))} |" for r in p["rows"]],
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
            "Rate = events / (last task end − first source task start). Start-up = submit → "
            "first record read; steady = events / s after the first 10 % were read (— : the "
            "run was too short to tell).", "",
            "| job | variant | state | events | s | events/s | per slot | vs twin "
            "| start-up s | steady events/s | steady vs twin |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]  # fmt: skip
        for r in j["rows"]:
            out.append(
                f"| {r['job']} | {r['variant']} | {r.get('state', 'ERROR')} | "
                f"{_n(r.get('events'))} | {_n(r.get('run_s'), '.1f')} | "
                f"{_n(r.get('events_per_s'))} | {_n(r.get('events_per_s_per_slot'))} | "
                f"{_n(r.get('vs_twin'), '.2f')} | {_n(r.get('startup_s'), '.1f')} | "
                f"{_n(r.get('steady_events_per_s'))} | {_n(r.get('steady_vs_twin'), '.2f')} |"
            )
        errs = [f"- {r['job']} {r['variant']}: {r['error']}" for r in j["rows"] if "error" in r]
        out += ["", *errs] if errs else []
    out.append("")
    out += ["## Profile", "", *profile_markdown(res.get("profile") or {"skipped": "not run"})]
    out.append("")
    lo = res["loader"]
    out += ["## Loader", ""]
    out += [_err(lo) or ""] if _err(lo) else [
        f"{lo['rows']:,} `player_stats` rows, batches of {lo['batch_rows']:,}.", "",
        "| path | rows/s | ÷ direct |", "|---|---:|---:|",
        f"| before: loader decoding in Python (fastavro → Arrow), exactly once | "
        f"{_n(lo.get('loader_python_rows_per_s'))} | {_n(lo.get('ratio_python'), '.2f')} |",
        f"| after: loader with ClickHouse decoding the Avro (staged, checked), exactly once | "
        f"{lo['loader_rows_per_s']:,} | **{lo['ratio']:.2f}** |",
        f"| direct `insert_arrow` of prebuilt Arrow tables | "
        f"{lo['direct_insert_arrow_rows_per_s']:,} | 1.00 |",
        "", f"Both loader paths left identical rows: {lo.get('same_rows')}.",
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
            *_latency_variants(e),
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
        out += pipeline_markdown(e.get("pipeline"))
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


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _cut(name: str, width: int = 90) -> str:
    """A Markdown-safe, shortened name (operator chains run to hundreds of characters)."""
    name = name.replace("|", "/")
    return name if len(name) <= width else name[: width - 1] + "…"


def profile_markdown(sec: dict[str, Any]) -> list[str]:
    """The profile section: one column of component shares per profiled run, then per run its
    hottest threads and Python functions."""
    if _err(sec):
        return [_err(sec) or ""]
    runs = [r for r in sec["runs"] if "jvm" in r and "samples" in r["jvm"]]
    out = [
        f"Each job run bounded as in *Jobs*, profiled for {sec['seconds']:g} s once its sources "
        f"had read {sec['warmup_events']:,} records, then cancelled: JFR execution samples of "
        f"the TaskManager (`settings=profile`, every 10 ms per running Java thread) and py-spy "
        f"({sec['pyspy_rate_hz']} Hz) on its Python workers. A sample goes to the component of "
        "the frame nearest its leaf (flinkpulse/bench/profile.py `COMPONENTS`). Shares of the "
        "samples; raw files in `" + sec["raw_dir"] + "`.",
        "",
    ]
    if runs:
        names = [f"{r['job']} {r['variant']}" for r in runs]
        comps: list[str] = []
        for r in runs:
            comps += [c["name"] for c in r["jvm"]["components"] if c["name"] not in comps]
        share = [{c["name"]: c["share"] for c in r["jvm"]["components"]} for r in runs]
        out += [
            "| TaskManager component | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(runs),
            *[f"| {c} | " + " | ".join(_pct(s[c]) if c in s else "—" for s in share) + " |"
              for c in comps],
            "| JFR samples | " + " | ".join(f"{r['jvm']['samples']:,}" for r in runs) + " |",
            "| events/s while profiled | "
            + " | ".join(_n(r.get("profiled_events_per_s")) for r in runs) + " |",
            "",
            "| run | hottest TaskManager threads | Python workers: waiting for data, hottest "
            "functions of the busy samples (self) "
            "| py-spy samples |",
            "|---|---|---|---:|",
        ]  # fmt: skip
        for name, r in zip(names, runs, strict=True):
            py = r.get("python") or {}
            threads = "; ".join(
                f"{_cut(t['name'])} {_pct(t['share'])}" for t in r["jvm"]["threads"][:3]
            )
            funcs = (
                f"waiting {_pct(py['waiting'])}; of the rest: "
                + "; ".join(
                    f"{_cut(f['name'], 60)} {_pct(f['share'])}" for f in py["busy_self"][:3]
                )
                if "samples" in py
                else _cut(str(py.get("error") or py.get("skipped") or "—"))
            )
            out.append(f"| {name} | {threads} | {funcs} | {_n(py.get('samples'))} |")
    errs = [
        f"- {r['job']} {r['variant']}: {r.get('error') or r['jvm'].get('error')}"
        for r in sec["runs"]
        if r not in runs
    ]
    if sec.get("missing_tools", {}).get("py-spy"):
        errs.append(f"- Python workers not profiled: {sec['missing_tools']['py-spy']}")
    return [*out, *([""] if runs and errs else []), *errs]


def _latency_variants(e: dict[str, Any]) -> list[str]:
    """Before/after rows: the same incidents with the job as configured and tuned."""
    vs = e.get("latency_variants") or []
    if len(vs) < 2:
        return []
    rows = [
        "Tuning for latency (same load and incidents, the job resubmitted with other settings):",
        "",
        "| job settings | alerts | p50 s | p95 s | p99 s | max s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v in vs:
        st = v["settings"]
        lat = v["latency_s"]
        rows.append(
            f"| {v['label']}: checkpoint {st['checkpoint_interval_s']} s, watermark delay "
            f"{st['watermark_delay_s']} s | {v['alerts_matched']} | {_n(lat['p50'], '.2f')} | "
            f"{_n(lat['p95'], '.2f')} | {_n(lat['p99'], '.2f')} | {_n(lat['max'], '.2f')} |"
        )
    return [*rows, ""]


def _best_p95(e: dict[str, Any]) -> tuple[float | None, str]:
    """The lowest alert p95 among the latency variants, and which settings gave it."""
    vs = [v for v in e.get("latency_variants") or [] if v["latency_s"].get("p95") is not None]
    if not vs:
        return (e.get("latency_s") or {}).get("p95"), ""
    best = min(vs, key=lambda v: v["latency_s"]["p95"])
    return best["latency_s"]["p95"], f" ({best['label']})"


def pipeline_markdown(pl: dict[str, Any] | None) -> list[str]:
    """The whole pipeline's steps (e2e.pipeline), with each step's last lag per consumer."""
    if not pl:
        return []
    return [
        "", f"Whole pipeline ({', '.join(pl['jobs'])} and a loader of every table, as "
        f"configured{'; as built-in twins: ' + ', '.join(pl['twins']) if pl.get('twins') else ''}"
        f"), {pl['step_s']:.0f} s per step:", "",
        "| target events/s | achieved | lag growing | sustained | last lag per consumer "
        "| CPU cores used, second half |",
        "|---:|---:|---|---|---|---|",
        *[f"| {s['target']:,.0f} | {s['achieved']:,} | {s['lag_growing']} | {s['sustained']} | "
          + ", ".join(f"{k} {v:,}" for k, v in s.get("lag_last", {}).items()) + " | "
          + cpu_summary(s.get("cpu")) + " |"
          for s in pl["steps"]],
        "", f"Highest sustained: {_n(pl.get('max_sustained_rate'))} events/s.",
    ]  # fmt: skip


def cpu_summary(c: dict[str, Any] | None) -> str:
    """A step's CPU (flinkpulse/bench/cpu.py) in one cell: the total, then the roles that used
    at least 0.05 of a core, then the TaskManager's threads by group."""
    if not c:
        return "—"
    roles = ", ".join(f"{r} {v:.2f}" for r, v in c["roles"].items() if v >= 0.05)
    tm = ", ".join(f"{g} {v:.2f}" for g, v in c["taskmanager_threads"].items() if v >= 0.05)
    return f"{c['total']:.2f}: {roles}" + (f" (TaskManager: {tm})" if tm else "")


def goals(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals against this run's numbers (None: not measured)."""
    g = []
    p = res["producers"].get("rows") or []
    worst = min((r["avro_events_per_s"] for r in p), default=None)
    worst_cpu = min((r.get("avro_events_per_cpu_s") or 0 for r in p), default=None)
    g.append({"goal": "producer ≥ 50,000 Avro events/s on one core",
              "measured": f"{_n(worst)} wall clock, {_n(worst_cpu)} per CPU-second "
                          "(slowest domain)",
              "met": None if worst is None else worst >= 50_000})  # fmt: skip
    # at steady state (issue 17), the whole-run ratio where a run was too short to tell
    jr = [r for r in res["jobs"].get("rows", []) if r.get("variant") == "udf" and "vs_twin" in r]
    ratio = {r["job"]: r.get("steady_vs_twin", r["vs_twin"]) for r in jr}
    lo = min(ratio.values(), default=None)
    g.append({"goal": "every UDF job ≥ 0.5 × its built-in twin at steady state",
              "measured": ", ".join(
                  f"{r['job']} {ratio[r['job']]:.2f}"
                  + (f" steady ({r['vs_twin']:.2f} whole run)" if "steady_vs_twin" in r
                     else " whole run") for r in jr) or "—",
              "met": None if lo is None else lo >= 0.5})  # fmt: skip
    lr = res["loader"].get("ratio")
    g.append({"goal": "loader ≥ 0.5 × direct bulk insert", "measured": _n(lr, ".2f"),
              "met": None if lr is None else lr >= 0.5})  # fmt: skip
    e = res["e2e"]
    p95, how = _best_p95(e)
    g.append({"goal": "alert p95 ≤ 5 s at 10,000 events/s",
              "measured": f"{_n(p95, '.2f')} s at {_n(e.get('rate'))} events/s{how}",
              "met": None if p95 is None else (p95 <= 5 and e.get("rate", 0) >= 10_000)})  # fmt: skip
    pl = e.get("pipeline") or {}
    held = pl.get("max_sustained_rate")
    g.append({"goal": "whole pipeline (four jobs + loader, as configured) sustains ≥ 50,000 "
                      "events/s",
              "measured": f"{_n(held)} events/s" if pl else "—",
              "met": None if not pl else (held or 0) >= 50_000})  # fmt: skip
    return g


def plots(res: dict[str, Any], out_dir: Path, stem: str) -> list[str]:
    """latency distribution and throughput-over-time PNGs (only for what was measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    e2e = res["e2e"]
    variants = e2e.get("latency_variants") or (
        [{"label": "as configured", "latency_samples": e2e.get("latency_samples") or [],
          "latency_s": e2e.get("latency_s")}] if e2e.get("latency_samples") else []
    )  # fmt: skip
    if any(v["latency_samples"] for v in variants):
        fig, ax = plt.subplots(figsize=(7, 4))
        every = [x for v in variants for x in v["latency_samples"]]
        bins = [i * 0.5 for i in range(int(max(every) / 0.5) + 2)]
        for v, color in zip(variants, ["#4c72b0", "#dd8452", "#55a868"], strict=False):
            ax.hist(v["latency_samples"], bins=bins, color=color, alpha=0.6,
                    label=f"{v['label']} (n={len(v['latency_samples'])})")  # fmt: skip
            p95 = v["latency_s"]["p95"]
            if p95 is not None:
                ax.axvline(p95, color=color, ls="--", label=f"{v['label']} p95 {p95:.2f} s")
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
        ax.set_ylabel("records read by the source (REST metric, 1 s refresh)")
        ax.set_title("Jobs: bounded runs, progress over time")
        ax.legend(fontsize=7)
        path = out_dir / f"{stem}-jobs-throughput.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(str(path))
    runs = [r for r in (res.get("profile") or {}).get("runs", []) if "samples" in r.get("jvm", {})]
    if runs:
        fig, ax = plt.subplots(figsize=(7, max(3.0, 1.2 + 0.5 * len(runs))))
        comps: list[str] = []
        for r in runs:
            comps += [c["name"] for c in r["jvm"]["components"] if c["name"] not in comps]
        cmap = plt.get_cmap("tab20")
        names = [f"{r['job']} {r['variant']}" for r in runs]
        left = [0.0] * len(runs)
        for i, c in enumerate(comps):
            w = [100 * next((x["share"] for x in r["jvm"]["components"] if x["name"] == c), 0.0)
                 for r in runs]  # fmt: skip
            ax.barh(names, w, left=left, color=cmap(i % 20), label=c)
            left = [a + b for a, b in zip(left, w, strict=True)]
        ax.set_xlabel("share of the TaskManager's JFR samples (%)")
        ax.set_title("Profile: where the TaskManager's time goes, once warmed up")
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        path = out_dir / f"{stem}-profile.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100, bbox_inches="tight")
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
