"""Where a job's time goes: JFR on its TaskManager, py-spy on its Python workers (issue 17).

A job (`udf`) or its built-in twin (`twin`) runs bounded over pre-filled topics; once its
sources have read `warmup_events` records, `seconds` of JFR execution samples of every
TaskManager running one of its tasks (`jcmd <pid> JFR.start settings=profile`, 10 ms per
running Java thread) and of py-spy (`--format raw`, 50 Hz) on every Python worker below them are
recorded; then the job is cancelled. The summary gives, as shares of the samples, the hottest
TaskManager threads, the JVM *components* (each sample goes to the component of the frame
nearest its leaf, :data:`COMPONENTS`), the hottest leaf frames and the hottest Python
functions (self and inclusive). The raw files stay in `out_dir`.

The parsing and the summaries are pure functions of the tools' text output
(:func:`parse_jfr`, :func:`parse_pyspy`, :func:`jfr_summary`, :func:`pyspy_summary`); the
`profile` section of `flinkpulse bench` (:func:`run`) and `bench/profile_job.py` use them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError

#: JVM component -> frame pattern, matched leaf to root; the first hit takes the sample
COMPONENTS: list[tuple[str, str]] = [
    (
        "python runner (Beam gRPC / data exchange)",
        r"org\.apache\.beam|PythonFunction|pemja|python\.|Beam",
    ),
    (
        "avro decode (avro-confluent)",
        r"org\.apache\.avro.*(Decoder|DatumReader|Resolving)|AvroDeserializ|AvroToRowData|RegistryAvroDeserial",
    ),
    (
        "avro encode (sink)",
        r"org\.apache\.avro.*(Encoder|DatumWriter)|AvroSerializ|RowDataToAvro|RegistryAvroSerial",
    ),
    (
        "kafka producer / transactions (sink)",
        r"org\.apache\.kafka\.clients\.producer|KafkaWriter|FlinkKafkaInternalProducer|KafkaCommitter",
    ),
    (
        "kafka consumer fetch (source)",
        r"org\.apache\.kafka\.clients\.consumer|KafkaPartitionSplitReader|KafkaRecordEmitter|SplitFetcher",
    ),
    ("window / aggregate operator", r"[Ww]indow|Slice|AggsHandler|GroupAgg|LocalAgg|GlobalAgg"),
    ("deduplicate / rank", r"Deduplicate|Rank"),
    ("watermarks / time", r"[Ww]atermark"),
    (
        "row serialization between operators",
        r"TypeSerializer|RowDataSerializer|BinaryRowData|StreamElementSerializer|RecordWriter|SpillingAdaptiveSpanningRecordDeserializer|DataOutputSerializer|network\.api",
    ),
    (
        "generated code (calc / projections)",
        r"StreamExecCalc|\$Calc|Projection|org\.apache\.flink\.table\.runtime\.generated|Generated",
    ),
    ("checkpointing / state", r"[Cc]heckpoint|[Ss]napshot|HeapKeyedStateBackend|state\.heap"),
    (
        "task mailbox / network",
        r"org\.apache\.flink\.runtime\.(io|taskmanager|tasks)|StreamTask|Mailbox",
    ),
]
KAFKA_PRODUCER = "kafka producer / transactions (sink)"
ASYNC_SNAPSHOT = "checkpoint snapshots (async part)"
CHAINED_COPY = "copy between chained operators (no object reuse)"
OTHER = "JVM / other"
_COMPILED = [(name, re.compile(pat)) for name, pat in COMPONENTS]

#: py-spy's sampling rate (Hz) for the Python workers
PYSPY_RATE = 50


# -- pure parts: the tools' text output -> shares ---------------------------------------------


def thread_group(name: str) -> str:
    """A thread's name without what differs between instances of the same work: the subtask
    suffix `` (1/2)#0``, the operators' ids ``[12]``, the producer id of a Kafka producer's
    network thread, a pool's numbers (``flink-metrics-13`` -> ``flink-metrics-N``)."""
    name = re.sub(r"\s*\(\d+/\d+\)#\d+$", "", name)
    if name.startswith("kafka-producer-network-thread"):
        return "kafka-producer-network-thread"
    return re.sub(r"(-\d+)+$", "-N", re.sub(r"\[\d+\]", "", name))


def parse_jfr(text: str) -> list[tuple[str, list[str]]]:
    """(thread, frames leaf first) per event of `jfr print --events jdk.ExecutionSample`;
    frames without their `` line: N``, a truncated stack's ``...`` dropped."""
    samples: list[tuple[str, list[str]]] = []
    thread: str | None = None
    frames: list[str] = []
    in_stack = False
    for line in text.splitlines():
        s = line.strip()
        if s == "jdk.ExecutionSample {":
            thread, frames, in_stack = "?", [], False
        elif thread is None:
            continue
        elif in_stack:
            if s == "]":
                in_stack = False
            elif s and s != "...":
                frames.append(re.sub(r"\s+line: \d+$", "", s))
        elif s.startswith("sampledThread = "):
            m = re.match(r'sampledThread = "(.*)"(?: \(.*\))?$', s)
            thread = m.group(1) if m else "?"
        elif s == "stackTrace = [":
            in_stack = True
        elif s == "}":
            samples.append((thread, frames))
            thread = None
    return samples


def component_of(thread: str, frames: list[str]) -> str:
    """The component of the frame nearest the leaf that matches one (:data:`OTHER`: none).
    Three rules go first: a Kafka producer's network thread is the sink's whatever its frames;
    a sample under ``AsyncCheckpointRunnable`` writes a snapshot; a serializer's ``copy()``
    right below ``CopyingChainingOutput.pushToOperator`` is the copy object reuse would save."""
    if thread.startswith("kafka-producer-network-thread"):
        return KAFKA_PRODUCER
    if any("AsyncCheckpointRunnable" in f for f in frames):
        return ASYNC_SNAPSHOT
    for i, f in enumerate(frames):
        below = frames[i + 1 : i + 4]
        if ".copy(" in f and any("CopyingChainingOutput.pushToOperator" in g for g in below):
            return CHAINED_COPY
    for f in frames:
        for name, pat in _COMPILED:
            if pat.search(f):
                return name
    return OTHER


def shares(counts: Counter[str], total: int, n: int | None = None) -> list[dict[str, Any]]:
    """The `n` largest counts (all by default) as {name, samples, share of `total`}, largest
    first, ties by name."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [
        {"name": k, "samples": c, "share": round(c / total, 4) if total else 0.0} for k, c in ranked
    ]


def jfr_summary(samples: list[tuple[str, list[str]]], n: int = 10) -> dict[str, Any]:
    """Shares of the JFR samples: threads (grouped, :func:`thread_group`), components (all of
    them) and leaf frames."""
    total = len(samples)
    return {
        "samples": total,
        "threads": shares(Counter(thread_group(t) for t, _ in samples), total, n),
        "components": shares(Counter(component_of(t, f) for t, f in samples), total),
        "leaf_frames": shares(Counter(f[0] for _, f in samples if f), total, n),
    }


def python_frame(frame: str) -> str:
    """py-spy's ``func (/path/to/file.py:12)`` as ``func (file.py)``."""
    m = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    return f"{m.group(1)} ({Path(m.group(2)).name})" if m else frame


def parse_pyspy(text: str) -> list[tuple[list[str], int]]:
    """(frames root first, sample count) per line of ``py-spy record --format raw``."""
    out: list[tuple[list[str], int]] = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out.append(([python_frame(f) for f in stack.split(";")], int(count)))
    return out


#: leaf functions of a Beam worker's threads that wait for data (py-spy counts some of them
#: as running): left out of the busy samples
WAITING = re.compile(r"^(Condition\.wait|Event\.wait|.*channel_spin|select|poll) \(")


def pyspy_summary(stacks: list[tuple[list[str], int]], n: int = 10) -> dict[str, Any]:
    """Shares of the py-spy samples: functions by self time (the leaf) and inclusive (anywhere
    in the stack, once per sample however deep the recursion); the share of samples waiting
    for data (:data:`WAITING`) and the self shares of the others (`busy_self`)."""
    leaves: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for frames, c in stacks:
        total += c
        if frames:
            leaves[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    busy = Counter({k: c for k, c in leaves.items() if not WAITING.match(k)})
    waiting = sum(leaves.values()) - sum(busy.values())
    return {
        "samples": total,
        "waiting": round(waiting / total, 4) if total else 0.0,
        "self": shares(leaves, total, n),
        "busy_self": shares(busy, total - waiting, n),
        "inclusive": shares(incl, total, n),
    }


def text_lines(summary: dict[str, Any]) -> list[str]:
    """A profile summary as the lines `bench/profile_job.py` prints."""

    def top(rows: list[dict[str, Any]]) -> list[str]:
        return [f"  {100 * r['share']:5.1f}%  {r['name']}" for r in rows]

    out = [f"{summary['job']} {summary['variant']}: {_profiled(summary)}"]
    jvm = summary.get("jvm") or {}
    if "samples" in jvm:
        out += [f"JFR: {jvm['samples']} execution samples", "threads:", *top(jvm["threads"])]
        out += ["components (nearest matching frame to the leaf):", *top(jvm["components"])]
        out += ["leaf frames:", *top(jvm["leaf_frames"])]
    else:
        out.append(f"JFR: {_why(jvm)}")
    py = summary.get("python") or {}
    if "samples" in py:
        out += [f"py-spy: {py['samples']} samples from {summary.get('python_workers', 0)} workers"]
        out += [f"waiting for data: {100 * py['waiting']:.1f}%", "Python functions (self):"]
        out += [*top(py["self"]), "busy samples only (self):", *top(py["busy_self"])]
        out += ["inclusive:", *top(py["inclusive"])]
    else:
        out.append(f"py-spy: {_why(py)}")
    return out


def _why(part: dict[str, Any]) -> str:
    return str(part.get("error") or part.get("skipped") or "not recorded")


def _profiled(s: dict[str, Any]) -> str:
    rate = s.get("profiled_events_per_s")
    return (
        f"{s['seconds']:g} s profiled after {s.get('read_at_start', 0):,} records read"
        + (f", {rate:,} events/s during the profile" if rate is not None else "")
        + (" (the job's sources finished during the profile)" if s.get("finished_early") else "")
    )


# -- recording ---------------------------------------------------------------------------------


def pyspy_path() -> str | None:
    """py-spy next to this interpreter (the venv's, `pip install -e '.[dev]'`), else on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def missing_tools() -> dict[str, str]:
    """{"jfr" | "py-spy": why it cannot be recorded} for the tools not found."""
    out = {}
    gone = [t for t in ("jcmd", "jfr") if not shutil.which(t)]
    if gone:
        out["jfr"] = f"{' and '.join(gone)} not on PATH (they come with a JDK's bin/)"
    if not pyspy_path():
        out["py-spy"] = "py-spy not installed (pip install -e '.[dev]')"
    return out


def _read(rest: Any, jid: str) -> tuple[str, int]:
    """(state, most records read by one source vertex) of a job."""
    info = rest.call("GET", f"/jobs/{jid}")
    srcs = [v for v in info["vertices"] if v["name"].startswith("Source:")]
    return info["state"], max((v["metrics"]["read-records"] for v in srcs), default=0)


def _job_taskmanagers(rest: Any, jid: str) -> set[str]:
    """Resource ids of the TaskManagers running a task of the job (the stack names its
    TaskManagers' resource ids after their processes, `flink-taskmanager-N`)."""
    ids: set[str] = set()
    for v in rest.call("GET", f"/jobs/{jid}")["vertices"]:
        tms = rest.call("GET", f"/jobs/{jid}/vertices/{v['id']}/taskmanagers")
        ids |= {t.get("taskmanager-id", "") for t in tms.get("taskmanagers", [])}
    return ids


def profile_job(
    cfg: Config,
    job: str,
    variant: str,
    filled: dict[str, Any],
    *,
    seconds: float = 20,
    warmup_events: int = 50_000,
    out_dir: Path,
    timeout: float = 600,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run `job` (`variant`) bounded over the filled topics, profile it once its sources have
    read `warmup_events` records, cancel it; the summary (raw files in `out_dir`)."""
    from flinkpulse.bench.jobs import JOB_TOPICS, lever_cfg, run_variant
    from flinkpulse.flinkrest import FlinkRest
    from flinkpulse.stack.flink import Flink

    missing = missing_tools()
    if "jfr" in missing:
        raise FlinkpulseError(f"no JFR: {missing['jfr']}")
    out_dir.mkdir(parents=True, exist_ok=True)
    vcfg = lever_cfg(cfg, variant)
    events = sum(filled["per_topic"].get(t, 0) for t in JOB_TOPICS[job])
    submitted: list[str] = []
    row: dict[str, Any] = {}

    def bounded_run() -> None:
        try:
            row.update(run_variant(vcfg, job, variant, filled, timeout, submitted.append))
        except Exception as e:  # noqa: BLE001 - reported below
            row["error"] = f"{type(e).__name__}: {e}"

    th = threading.Thread(target=bounded_run, name=f"profile-{job}-{variant}", daemon=True)
    th.start()
    rest = FlinkRest(vcfg)
    read = 0
    deadline = time.monotonic() + timeout
    while th.is_alive() and time.monotonic() < deadline:  # until warmed up
        if submitted:
            state, read = _read(rest, submitted[0])
            if state == "RUNNING" and read >= warmup_events:
                break
        time.sleep(1)
    if not th.is_alive() or not submitted or read < warmup_events:
        th.join(60)
        raise FlinkpulseError(
            f"{job} {variant} ended before it had read {warmup_events:,} records: "
            + str(row.get("error") or row.get("state") or "timeout")[:300]
        )
    jid = submitted[0]
    flink = Flink(vcfg)
    tm_ids = _job_taskmanagers(rest, jid)
    tms = flink.taskmanager_pids()
    tms = {n: p for n, p in tms.items() if n in tm_ids} or tms
    workers = [pid for pid, tm in flink.python_workers().items() if tm in tms]
    stem = f"{job}-{variant}"
    log(f"profile: {stem}, {read:,} records read; {seconds:g} s of JFR on {', '.join(tms)}"
        f" and py-spy on {len(workers)} Python workers")  # fmt: skip
    jfrs = {n: out_dir / f"{stem}-{n}.jfr" for n in tms}
    for pid in tms.values():  # a safety duration, should the stop below never come
        _jcmd(pid, "JFR.start", f"name={stem}", "settings=profile", f"duration={seconds + 120:g}s")
    spy = pyspy_path()
    spies = [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(round(seconds)),
                "--rate",
                str(PYSPY_RATE),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out_dir / f"{stem}-py{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in (workers if spy else [])
    ]
    t0 = time.monotonic()
    time.sleep(seconds)
    for n, pid in tms.items():
        _jcmd(pid, "JFR.stop", f"name={stem}", f"filename={jfrs[n]}")
    state, read_end = _read(rest, jid)
    elapsed = time.monotonic() - t0
    for s in spies:
        try:
            s.wait(timeout=60)
        except subprocess.TimeoutExpired:
            s.kill()
    if th.is_alive():  # profiled: the rest of the run is not needed
        try:
            rest.cancel(jid)
        except FlinkpulseError:  # 409 when it finished meanwhile; anything else is an error
            if _read(rest, jid)[0] not in ("FINISHED", "CANCELED", "FAILED"):
                raise
    th.join(120)
    samples = [s for f in jfrs.values() if f.exists() for s in parse_jfr(_jfr_print(f))]
    out: dict[str, Any] = {
        "job": job,
        "variant": variant,
        "events": events,
        "warmup_events": warmup_events,
        "seconds": seconds,
        "read_at_start": read,
        "read_at_end": read_end,
        "profiled_events_per_s": round((read_end - read) / max(0.001, elapsed)),
        "finished_early": read_end >= events or state != "RUNNING",
        "taskmanagers": sorted(tms),
        "python_workers": len(workers),
        "jvm": jfr_summary(samples) if samples else {"error": "no JFR execution samples"},
        "files": sorted(p.name for p in out_dir.glob(f"{stem}-*")),
    }
    if variant.split("+")[0] == "twin" and not workers:
        out["python"] = {"skipped": "no Python workers (the twin runs no Python)"}
    elif not spy:
        out["python"] = {"skipped": missing["py-spy"]}
    elif not workers:
        out["python"] = {"error": "no Python worker found below the TaskManager"}
    else:
        stacks = [
            s for f in sorted(out_dir.glob(f"{stem}-py*.txt")) for s in parse_pyspy(f.read_text())
        ]
        out["python"] = pyspy_summary(stacks) if stacks else {"error": "py-spy wrote no samples"}
    return out


def _jcmd(pid: int, *args: str) -> None:
    res = subprocess.run(["jcmd", str(pid), *args], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise FlinkpulseError(f"jcmd {pid} {args[0]} failed: {(res.stdout + res.stderr)[-300:]}")


def _jfr_print(path: Path) -> str:
    return subprocess.run(
        ["jfr", "print", "--events", "jdk.ExecutionSample", "--stack-depth", "96", str(path)],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip


def run(
    cfg: Config,
    jobs: list[str],
    variants: list[str],
    events_per_domain: int,
    seconds: float,
    warmup_events: int,
    out_dir: Path,
    timeout: float = 600,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The `profile` section of `flinkpulse bench`: one fill, then each job's variants in turn,
    each profiled once warmed up. A run that fails is recorded with its error."""
    from flinkpulse.bench.jobs import JOB_TOPICS, fill

    missing = missing_tools()
    if "jfr" in missing:
        raise FlinkpulseError(f"no JFR: {missing['jfr']}")
    cfg = cfg.with_prefix(f"{cfg.kafka.topic_prefix}prof.")
    domains = tuple(sorted({t.split(".")[0] for j in jobs for t in JOB_TOPICS[j]}))
    filled = fill(cfg, events_per_domain, domains=domains)
    runs: list[dict[str, Any]] = []
    for job in jobs:
        for variant in variants:
            try:
                runs.append(
                    profile_job(
                        cfg,
                        job,
                        variant,
                        filled,
                        seconds=seconds,
                        warmup_events=warmup_events,
                        out_dir=out_dir,
                        timeout=timeout,
                        log=log,
                    )  # fmt: skip
                )
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                runs.append({"job": job, "variant": variant, "error": f"{type(e).__name__}: {e}"})
    return {
        "fill": filled,
        "seconds": seconds,
        "warmup_events": warmup_events,
        "pyspy_rate_hz": PYSPY_RATE,
        "missing_tools": missing,
        "raw_dir": str(out_dir),
        "runs": runs,
    }
