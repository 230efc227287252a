"""Where a job's time goes: JFR on the TaskManager and py-spy on its Python workers (issue 17).

    .venv/bin/python bench/profile_job.py player_stats --variant twin [--events 600000]
        [--seconds 40] [--warmup-events 50000] [--out /tmp/flinkpulse-profile]

On the running stack (kafka, registry, flink): fills the job's domain into fresh topics, runs
the job (`udf`) or its built-in twin (`twin`) bounded over them, and once it has read
`--warmup-events` records records `--seconds` of JFR execution samples of the TaskManager
(`jcmd <pid> JFR.start settings=profile`) and of py-spy (`--format raw`) on every Python
worker below it. Then cancels the job. Prints the hottest JVM threads, leaf frames and components (each sample is
given to the first component pattern found walking from the leaf to the root), and the
hottest Python leaf functions. Raw files stay in --out.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    ("JVM / other", r"."),
]


def tm_pid(cfg: Any) -> int:
    """The first TaskManager's pid, from the stack's pid file."""
    run = cfg.stack.state_path() / "run"
    return int((run / "flink-taskmanager-1.pid").read_text().split()[0])


def python_workers(root: int) -> list[int]:
    """Python processes below `root` (Beam workers of process mode)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,comm="], capture_output=True, text=True)
    kids: dict[int, list[tuple[int, str]]] = collections.defaultdict(list)
    for line in out.stdout.splitlines():
        p, pp, comm = line.split(None, 2)
        kids[int(pp)].append((int(p), comm))
    found: list[int] = []
    todo = [root]
    while todo:
        for pid, name in kids.get(todo.pop(), []):
            todo.append(pid)
            if name.startswith("python"):
                found.append(pid)
    return found


def jfr_samples(path: Path) -> list[tuple[str, list[str]]]:
    """(thread, frames leaf first) per jdk.ExecutionSample in a JFR recording."""
    text = subprocess.run(
        ["jfr", "print", "--events", "jdk.ExecutionSample", "--stack-depth", "96", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    samples = []
    for block in text.split("jdk.ExecutionSample {")[1:]:
        m = re.search(r'sampledThread = "(.*?)"', block)
        thread = re.sub(r"\s*\(\d+/\d+\)#\d+$", "", m.group(1)) if m else "?"
        st = block.split("stackTrace = [", 1)[-1].split("]\n", 1)[0]
        frames = [f.strip() for f in st.splitlines() if f.strip() and f.strip() != "..."]
        samples.append((thread, [re.sub(r"\s+line:.*$", "", f) for f in frames]))
    return samples


def component_leaf_first(thread: str, frames: list[str]) -> str:
    """The component of the frame nearest the leaf that matches one (JVM/other: none); a
    Kafka producer's network thread is the sink's, whatever its frames; a serializer's copy()
    right below CopyingChainingOutput is the copy object reuse would save."""
    if thread.startswith("kafka-producer-network-thread"):
        return "kafka producer / transactions (sink)"
    if any("AsyncCheckpointRunnable" in f for f in frames):  # writing a full heap snapshot
        return "checkpoint snapshots (async part)"
    for i, f in enumerate(frames):
        below = frames[i + 1 : i + 4]
        if ".copy(" in f and any("CopyingChainingOutput.pushToOperator" in g for g in below):
            return "copy between chained operators (no object reuse)"
    for f in frames:
        for name, pat in COMPONENTS[:-1]:
            if re.search(pat, f):
                return name
    return "JVM / other"


def top(counter: collections.Counter[str], total: int, n: int) -> list[str]:
    return [f"  {100 * c / total:5.1f}%  {k}" for k, c in counter.most_common(n)]


def report_jfr(path: Path, n: int = 15) -> list[str]:
    samples = jfr_samples(path)
    total = max(1, len(samples))
    threads = collections.Counter(t[:110] for t, _ in samples)
    leaves = collections.Counter(f[0] for _, f in samples if f)
    comps = collections.Counter(component_leaf_first(t, f) for t, f in samples)
    return [
        f"JFR {path.name}: {len(samples)} execution samples",
        "threads:", *top(threads, total, 8),
        "components (nearest matching frame to the leaf):", *top(comps, total, 13),
        "leaf frames:", *top(leaves, total, n),
    ]  # fmt: skip


def report_pyspy(path: Path, n: int = 15) -> list[str]:
    leaves: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        frames = stack.split(";")
        total += c
        leaves[re.sub(r"\s+\(.*?:\d+\)$", "", frames[-1])] += c
        for f in set(re.sub(r":\d+\)$", ")", fr) for fr in frames):
            incl[f] += c
    total = max(1, total)
    return [
        f"py-spy {path.name}: {total} samples",
        "leaf functions (self):", *top(leaves, total, n),
        "inclusive:", *top(incl, total, n),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from flink_jobs.builtin_twin import TWIN_PREFIX
    from flinkpulse.bench.jobs import JOB_TOPICS, fill, run_variant
    from flinkpulse.config import load_config
    from flinkpulse.flinkrest import FlinkRest
    from flinkpulse.topics import ensure_topics

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("job", choices=sorted(JOB_TOPICS))
    p.add_argument("--variant", choices=["udf", "twin"], default="twin")
    p.add_argument("--events", type=int, default=600_000)
    p.add_argument("--seconds", type=int, default=40)
    p.add_argument("--warmup-events", type=int, default=50_000)
    p.add_argument("--out", type=Path, default=Path("/tmp/flinkpulse-profile"))
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    cfg = load_config()
    cfg = cfg.with_prefix(f"{cfg.kafka.topic_prefix}prof{uuid.uuid4().hex[:6]}.")
    domains = tuple(sorted({t.split(".")[0] for t in JOB_TOPICS[a.job]}))
    print(f"filling {a.events:,} events per domain {domains} ...", flush=True)
    filled = fill(cfg, a.events, domains=domains)
    ensure_topics(cfg.with_prefix(cfg.kafka.topic_prefix + TWIN_PREFIX))
    result: dict[str, Any] = {}
    th = threading.Thread(
        target=lambda: result.update(run_variant(cfg, a.job, a.variant, filled, 1800)),
        daemon=True,
    )
    th.start()
    rest = FlinkRest(cfg)
    name = f"flinkpulse-{cfg.kafka.topic_prefix}"
    jid = ""
    while th.is_alive():  # until the job has read warmup-events records
        jobs = [j for j in rest.call("GET", "/jobs/overview")["jobs"] if name in j["name"]]
        if jobs and jobs[0]["state"] == "RUNNING":
            jid = jobs[0]["jid"]
            info = rest.call("GET", f"/jobs/{jid}")
            srcs = [v for v in info["vertices"] if v["name"].startswith("Source:")]
            if max((v["metrics"]["read-records"] for v in srcs), default=0) >= a.warmup_events:
                break
        time.sleep(1)
    tm = tm_pid(cfg)
    stem = f"{a.job}-{a.variant}"
    jfr = a.out / f"{stem}.jfr"
    subprocess.run(
        ["jcmd", str(tm), "JFR.start", f"name={stem}", "settings=profile",
         f"duration={a.seconds}s", f"filename={jfr}"],
        check=True, capture_output=True,
    )  # fmt: skip
    spies = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(a.seconds),
                "--rate",
                "50",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(a.out / f"{stem}-py{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for pid in python_workers(tm)
    ]
    time.sleep(a.seconds + 3)
    for s in spies:
        s.wait(timeout=60)
    if jid and th.is_alive():  # profiled: the rest of the run is not needed
        rest.cancel(jid)
    th.join()
    lines = report_jfr(jfr) if jfr.exists() else [f"no JFR recording at {jfr}"]
    for f in sorted(a.out.glob(f"{stem}-py*.txt")):
        lines += ["", *report_pyspy(f)]
    print("\n".join(lines))
    (a.out / f"{stem}.summary.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
