"""Helpers for the notebooks (notebooks/*.ipynb): the stack's ClickHouse, Flink SQL and CLI.

Everything reads the same configuration as the CLI (flinkpulse.toml, FLINKPULSE_* environment),
so a notebook started by `flinkpulse notebook` talks to that stack.
"""

from __future__ import annotations

import shlex
import threading
import time
from typing import Any

from flinkpulse.config import Config, load_config


def config(topic_prefix: str | None = None, database: str | None = None) -> Config:
    """The CLI's configuration, optionally for another topic prefix / ClickHouse database."""
    cfg = load_config()
    if topic_prefix is not None:
        cfg = cfg.with_prefix(topic_prefix)
    if database is not None:
        cfg = cfg.derive(clickhouse={"database": database})
    return cfg


def query(cfg: Config, sql: str) -> Any:
    """Run a SELECT in ClickHouse (read-only user) and return a pandas DataFrame."""
    from flinkpulse.clickhouse.migrate import client

    ch = client(cfg, "reader", database=cfg.clickhouse.database)
    try:
        return ch.query_df(sql)
    finally:
        ch.close()


def cli(*args: str) -> int:
    """Run `flinkpulse ARGS` in this kernel (output shows in the cell); its exit code.

    One string is split like a shell would: ``cli("schemas check --no-registry")``.
    """
    from flinkpulse.cli import main

    argv = list(args)
    if len(argv) == 1 and " " in argv[0]:
        argv = shlex.split(argv[0])
    return main(argv)


def flink_table_env(cfg: Config, bounded: bool = False) -> Any:
    """A PyFlink table environment that runs its queries on the stack's Flink session cluster,
    with every source topic as a table (sql/flink/catalog.sql, as `flinkpulse sql`).

    `bounded`: tables end at each topic's current end, so queries finish (reproducible runs).
    """
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    from flink_jobs.common import connector_jars
    from flinkpulse.commands.sql import parse_jobmanager, render_catalog
    from flinkpulse.flinkrest import FlinkRest

    FlinkRest(cfg).call("GET", "/config")  # one line if Flink is not up, not a Java trace
    host, port = parse_jobmanager(cfg.flink.jobmanager)
    conf = Configuration()
    # a TableEnvironment's executor honours execution.target (a StreamExecutionEnvironment
    # from PyFlink would always be a local mini-cluster)
    conf.set_string("execution.target", "remote")
    conf.set_string("rest.address", host)
    conf.set_string("rest.port", str(port))
    conf.set_string("pipeline.jars", ";".join(j.as_uri() for j in connector_jars(cfg)))
    conf.set_string("parallelism.default", "1")
    conf.set_string("table.local-time-zone", "UTC")
    conf.set_string("pipeline.name", f"flinkpulse-notebook-{cfg.kafka.topic_prefix}sql")
    settings = EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf)
    t_env = TableEnvironment.create(settings.build())
    for stmt in _statements(render_catalog(cfg, bounded=bounded)):
        t_env.execute_sql(stmt)
    return t_env


def _statements(script: str) -> list[str]:
    """The statements of a SQL script: split on ';' and without '--' comments, both outside
    string literals (the catalog's Avro schemas are literals holding both)."""
    out, cur, i, quoted = [], [], 0, False
    while i < len(script):
        c = script[i]
        if quoted:
            cur.append(c)
            quoted = c != "'"  # a doubled '' closes and reopens: the same state
        elif c == "'":
            cur.append(c)
            quoted = True
        elif script.startswith("--", i):
            i = script.find("\n", i)
            i = len(script) if i < 0 else i
            continue
        elif c == ";":
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur).strip())
    return [s for s in out if s]


def stream(
    t_env: Any,
    sql: str,
    seconds: float = 60,
    max_rows: int = 10_000,
    refresh_s: float = 2.0,
    show: bool = True,
) -> Any:
    """Run a Flink SQL query on the cluster and collect its rows into a pandas DataFrame that
    is redrawn in the cell every `refresh_s` while rows arrive; stops after `seconds`,
    `max_rows` or the end of a bounded query, and cancels the query's job. Returns the frame."""
    import pandas as pd

    result = t_env.execute_sql(sql)
    names = list(result.get_table_schema().get_field_names())
    rows: list[list[Any]] = []
    done = threading.Event()
    failure: list[BaseException] = []

    def pull() -> None:
        try:
            with result.collect() as it:
                for r in it:
                    rows.append(list(r))
                    if len(rows) >= max_rows or done.is_set():
                        break
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            if not done.is_set():
                failure.append(e)
        finally:
            done.set()

    worker = threading.Thread(target=pull, daemon=True)
    worker.start()
    deadline = time.monotonic() + seconds
    shown = -1
    while not done.wait(refresh_s) and time.monotonic() < deadline:
        if show and len(rows) != shown:
            shown = len(rows)
            _redraw(pd.DataFrame(list(rows), columns=names))
    finished = done.is_set()
    done.set()
    if not finished:
        job = result.get_job_client()
        if job is not None:
            job.cancel().result()
    worker.join(30)
    if failure:
        raise failure[0]
    frame = pd.DataFrame(rows, columns=names)
    if show:
        _redraw(frame)
    return frame


def _redraw(frame: Any) -> None:
    try:
        from IPython.display import clear_output, display
    except ImportError:  # not in a notebook
        return
    clear_output(wait=True)
    display(frame.tail(20))


def read_topic(cfg: Config, logical: str, max_records: int = 1000, timeout_s: float = 10) -> Any:
    """The records of a source topic from its start, decoded with their writer schemas from
    the registry, as a DataFrame (plus partition, offset and schema_id columns)."""
    import pandas as pd
    from confluent_kafka import Consumer

    from flinkpulse.avro import Registry, schema_id_of

    reg = Registry(cfg.registry.url)
    c = Consumer(
        {
            **cfg.kafka.client_conf(),
            "group.id": f"flinkpulse-notebook-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    topic = cfg.kafka.topic(logical)
    rows: list[dict[str, Any]] = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        at_end: set[int] = set()
        parts = len(c.list_topics(topic, timeout=10).topics[topic].partitions)
        while time.monotonic() < deadline and len(rows) < max_records and len(at_end) < parts:
            m = c.poll(0.5)
            if m is None:
                continue
            err = m.error()
            if err is not None:
                if err.code() == -191:  # _PARTITION_EOF
                    at_end.add(int(m.partition() or 0))
                continue
            rec = reg.decode(m.value())
            rows.append(
                {**rec, "partition": m.partition(), "offset": m.offset(),
                 "schema_id": schema_id_of(m.value())}
            )  # fmt: skip
    finally:
        c.close()
    return pd.DataFrame(rows)
