"""Feed bounded rows with event time through a job's .sql file in a local Flink, collect views.

The same SQL file and UDFs as on the cluster; only the sources differ (bounded rows instead
of decoded Kafka topics). The bounded input ends with a final watermark, so every window fires.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from flink_jobs.common import JobContext, Needs, deduplicate, run_sql_file
from flink_jobs.decoding import reader_fields
from flinkpulse import topics
from flinkpulse.config import Config, FlinkConfig

#: the source topic of each record type (common.Needs adds that topic's dedup key)
SOURCE_OF_RECORD = {record: topic for topic, record in topics.SOURCE_RECORDS.items()}


@cache
def worker_python() -> str:
    """A `python.executable` that forks this test process's local Python workers from one warm
    interpreter (flinkpulse.stack.udf_fork, as the stack's TaskManagers do): a worker is ready
    in ~0.1 s instead of ~1.7 s of imports. The server dies with this process."""
    from flinkpulse.stack import udf_fork

    d = Path(tempfile.mkdtemp(prefix="udffork-"))
    sock = d / "s.sock"

    # it asks for SIGKILL when this process ends, then execs the server (no preexec_fn: this
    # process has threads, py4j's)
    die_with_parent = (
        "import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", die_with_parent, udf_fork.__file__, "serve", str(sock),
         str(d / "registry")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert server.stdout is not None and "listening at" in server.stdout.readline()
    atexit.register(shutil.rmtree, d, True)
    atexit.register(server.terminate)  # first: atexit runs the last registered first
    launcher = d / "python"
    udf_fork.write_launcher(launcher, sys.executable, str(sock))
    return str(launcher)


def make_env(parallelism: int = 1) -> Any:
    """A local streaming table environment (UTC) running operators at `parallelism`, its
    Python workers forked (worker_python)."""
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    t_env.get_config().set("python.executable", worker_python())
    return t_env


def register_input(
    t_env: Any,
    view: str,
    record: str,
    rows: list[dict[str, Any]],
    dedup: Sequence[str] | None = None,
    time_field: str = "event_time",
    dedup_state: str = FlinkConfig.dedup_state,
    needs: Needs | None = None,
    immediate: bool = False,
) -> None:
    """Register `rows` as the source view `view` (fields of `record`, rowtime `time_field`).
    With `dedup` (key fields), through the jobs' deduplication (`dedup_state`: how long a key
    is remembered, the shipped default; `immediate` as in the jobs' `wire`): later copies of a
    key leave `view` and are in `<view>_duplicates`. With
    `needs` (a job's common.Needs for `view`), only its fields and the rows its predicate
    keeps, as the job's source gives them (after the watermark, before deduplication)."""
    from pyflink.common import Row
    from pyflink.table import Schema

    fields = reader_fields(record)
    if needs is not None:
        fields = needs.select(SOURCE_OF_RECORD[record], fields)
    names = [n for n, _ in fields]
    # in event-time order, as from one partition: the watermark trails the newest row by 1 s,
    # so a row listed after a much newer one would be late and dropped, silently
    rows = sorted(rows, key=lambda r: r[time_field])
    table = t_env.from_elements(
        [Row(*(r.get(n) for n in names)) for r in rows],
        __import__("pyflink.table", fromlist=["DataTypes"]).DataTypes.ROW(
            [
                __import__("pyflink.table", fromlist=["DataTypes"]).DataTypes.FIELD(n, t)
                for n, t in fields
            ]
        ),
    )
    ds = t_env.to_data_stream(table)
    b = Schema.new_builder()
    for n, t in fields:
        b = b.column(n, t)
    b = b.watermark(time_field, f"`{time_field}` - INTERVAL '1' SECOND")
    table = t_env.from_data_stream(ds, b.build())
    if needs is not None and needs.where:
        t_env.create_temporary_view(f"{view}_all", table)
        table = t_env.sql_query(f"SELECT * FROM {view}_all WHERE {needs.where}")
    if dedup is None:
        t_env.create_temporary_view(view, table)
        return
    t_env.create_temporary_view(f"{view}_in", table)
    deduplicate(t_env, f"{view}_in", view, dedup, names, dedup_state, immediate)


def register_reference(
    t_env: Any, logical_topic: str, view: str, rows: list[dict[str, Any]]
) -> None:
    """`rows` as the changes `view` of the reference topic `logical_topic` (topics.VERSIONED,
    rowtime its version time), and the versioned table the jobs make of them (its .sql file)."""
    from flink_jobs.common import versioned_tables
    from flinkpulse.topics import VERSIONED

    spec = VERSIONED[logical_topic]
    register_input(t_env, view, spec.record, rows, time_field=spec.version_time)
    versioned_tables(JobContext(cfg=Config().finalize(), t_env=t_env, job="test"), [logical_topic])


def run_views(
    t_env: Any,
    sql_file: str,
    params: dict[str, Any],
    outputs: list[str],
) -> dict[str, list[dict[str, Any]]]:
    from flink_jobs.no_joins import column_types
    from udfs.flink import register_all

    register_all(t_env)
    ctx = JobContext(cfg=Config().finalize(), t_env=t_env, job="test")
    run_sql_file(ctx, sql_file, params)
    columns = {view: column_types(t_env, view) for view in outputs}
    # one job for every view, as on the cluster (a job per view started a local cluster and
    # Python workers per view): the views side by side in one UNION ALL, each row tagged with
    # its view and NULL in the other views' columns, each column cast to its own type
    branches = []
    for i, view in enumerate(outputs):
        cells = [f"{i} AS qh_view"]
        for j, other in enumerate(outputs):
            for k, (name, sql_type) in enumerate(columns[other].items()):
                value = f"`{name}`" if j == i else "NULL"
                cells.append(f"CAST({value} AS {sql_type}) AS qh_{j}_{k}")
        branches.append(f"SELECT {', '.join(cells)} FROM `{view}`")
    # where each view's values sit in a row: (view, its column names, first cell, end)
    layout, at = [], 1
    for view in outputs:
        layout.append((view, list(columns[view]), at, at + len(columns[view])))
        at += len(columns[view])
    out: dict[str, list[dict[str, Any]]] = {view: [] for view in outputs}
    with t_env.sql_query(" UNION ALL ".join(branches)).execute().collect() as results:
        for r in results:
            values = list(r)
            view, names, first, end = layout[values[0]]
            out[view].append(dict(zip(names, values[first:end], strict=True)))
    return out
