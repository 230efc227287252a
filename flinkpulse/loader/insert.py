"""The insert worker: one thread sends the queued inserts to ClickHouse, one after another.

A bounded queue between the main thread and this one is the backpressure: when inserts are
slow the main thread stops consuming. After a failed insert everything still queued is
discarded (the main thread resumes from ClickHouse, exactly_once point 3); a failed staged
insert marks its offsets for replay through the Python path.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from flinkpulse.loader.batch import Insert, Router
from flinkpulse.loader.errors import NO_STAGE_ERRORS, Control, clickhouse_error_name, first_line
from flinkpulse.loader.exactly_once import insert_query_id
from flinkpulse.loader.fast import (
    STAGE_SETTINGS,
    Plan,
    create_stage_sql,
    insert_select_sql,
    stage_name,
)
from flinkpulse.loader.status import Progress

log = logging.getLogger("flinkpulse.loader")

#: inserts queued for the insert thread (each up to batch_rows rows)
QUEUE_BATCHES = 2
#: recreate the session's stage tables after this long unused (sessions expire after 60 s)
STAGE_IDLE_S = 30.0


class InsertWorker:
    """The insert thread and its queue. `connect` opens a ClickHouse session client."""

    def __init__(
        self,
        database: str,
        connect: Callable[[], Any],
        control: Control,
        progress: Progress,
        router: Router,
    ) -> None:
        self.database = database
        self._connect = connect
        self._control = control
        self._progress = progress
        self._router = router
        self._q: queue.Queue[Insert | None] = queue.Queue(QUEUE_BATCHES)
        self._thread: threading.Thread | None = None

    # -- the main thread's side -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="loader-insert", daemon=True)
        self._thread.start()

    def put(self, ins: Insert) -> None:
        """Queue one insert; blocks while the queue is full (backpressure)."""
        self._progress.queued(ins.key, ins.rows)
        c = self._control
        while True:
            try:
                self._q.put(ins, timeout=0.5)
                return
            except queue.Full:
                if c.stop.is_set() and c.failed.is_set():
                    return

    def join(self) -> None:
        """Wait until every queued insert is done (or discarded after a failure)."""
        self._q.join()

    def empty(self) -> bool:
        return self._q.empty()

    def shutdown(self, timeout: float = 180) -> None:
        """Finish what is queued, then end the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._q.put(None)
            self._thread.join(timeout=timeout)

    # -- the insert thread ------------------------------------------------------------------------

    def _loop(self) -> None:
        ch = None
        stages: dict[str, Plan] = {}  # table -> the plan its stage in this session was made for
        used = 0.0
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                if self._control.failed.is_set():
                    continue  # discard: the main thread resumes from ClickHouse
                if ch is None:
                    ch = self._connect()
                    stages.clear()
                if item.staged:
                    if time.monotonic() - used > STAGE_IDLE_S:
                        stages.clear()  # the session may have expired with its tables
                    self._write_staged(ch, item, stages)
                    used = time.monotonic()
                else:
                    self._write_arrow(ch, item)
                self._progress.inserted(item.key, item.rows)
            except BaseException as e:  # noqa: BLE001 - any failure: resume from ClickHouse
                if item is not None and item.staged:  # replay the batch, decoded in Python
                    self._router.replay_in_python(item.key, item.last)
                self._control.fail(e)
                if ch is not None:
                    with contextlib.suppress(Exception):
                        ch.close()
                ch = None
            finally:
                self._q.task_done()

    def _query_id(self, item: Insert) -> str:
        return insert_query_id(self.database, item.topic, item.partition, item.first, item.last)

    def _write_arrow(self, ch: Any, item: Insert) -> None:
        """The Arrow variant: one insert of the built table."""
        ch.insert_arrow(
            item.spec.qualified, item.table, settings={"query_id": self._query_id(item)}
        )

    def _write_staged(self, ch: Any, item: Insert, stages: dict[str, Plan]) -> None:
        """The staged variant: through the session's stage table (:mod:`flinkpulse.loader.fast`)."""
        from clickhouse_connect.driver.exceptions import DatabaseError

        assert item.plan is not None and item.body is not None
        table = item.spec.name
        stage = stage_name(table)
        if stages.get(table) is not item.plan:
            try:
                ch.command(f"DROP TEMPORARY TABLE IF EXISTS `{stage}`")
                ch.command(create_stage_sql(table, item.plan))
            except DatabaseError as e:
                if clickhouse_error_name(e) in NO_STAGE_ERRORS:  # not allowed here: never will be
                    self._router.enabled = False
                    log.warning(
                        "cannot create a temporary stage table (%s): decoding in Python from now",
                        first_line(e),
                    )
                raise
            stages[table] = item.plan
        else:
            ch.command(f"TRUNCATE TABLE `{stage}`")
        ch.raw_insert(
            stage,
            None,
            insert_block=item.body,
            fmt="Avro",
            settings={**STAGE_SETTINGS, "query_id": self._query_id(item)},
        )
        ch.command(
            insert_select_sql(item.spec.qualified, table, item.plan),
            parameters={"t": item.topic, "p": item.partition, "n": item.rows},
            settings={"query_id": self._query_id(item), "max_threads": 1},
        )
