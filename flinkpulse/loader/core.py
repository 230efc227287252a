"""The loader loop: consume, decode, batch, insert; resume from ClickHouse after any error.

See the package docstring for the exactly-once argument. Threads: the main thread consumes
and batches — runs of records ClickHouse can decode (:mod:`flinkpulse.loader.fast`) as Avro
containers, the others decoded in Python into Arrow tables; one insert thread sends the
batches to ClickHouse in order (so consuming the next batch overlaps the insert of the
previous one). A bounded queue between them is the backpressure: when inserts are slow the
main thread stops consuming.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from flinkpulse.config import Config
from flinkpulse.loader import TOPIC_TABLES
from flinkpulse.loader.avro import DecodeError, Decoder, RegistryUnavailable
from flinkpulse.loader.columns import TableSpec, build
from flinkpulse.loader.fast import (
    STAGE_SETTINGS,
    Plan,
    create_stage_sql,
    insert_select_sql,
    plan,
    stage_name,
)

log = logging.getLogger("flinkpulse.loader")

#: inserts queued for the insert thread (each up to batch_rows rows)
QUEUE_BATCHES = 2
#: longest wait between two attempts to reach ClickHouse
MAX_BACKOFF_S = 5.0
#: recreate the session's stage tables after this long unused (sessions expire after 60 s)
STAGE_IDLE_S = 30.0
#: errors creating a temporary table that turn ClickHouse-side decoding off for good
_NO_STAGE = ("ACCESS_DENIED", "NOT_ENOUGH_PRIVILEGES", "READONLY", "NOT_IMPLEMENTED")


@dataclass
class Pending:
    """Buffered records of one (topic, partition), a contiguous run in offset order.

    Either decoded in Python (`sid` None: `rows`, `msgs`, `dead`) or, all of one schema id
    `sid`, left to ClickHouse to decode (`raw`, see :mod:`flinkpulse.loader.fast`).
    """

    topic: str
    partition: int
    table: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    msgs: list[Any] = field(default_factory=list)  # the Kafka messages of `rows`
    dead: list[tuple[Any, str]] = field(default_factory=list)  # (message, reason)
    since: float = 0.0
    sid: int | None = None
    raw: list[bytes] = field(default_factory=list)  # Confluent-framed values (sid not None)


@dataclass
class Insert:
    """One INSERT: rows of one (topic, partition), offsets first..last."""

    topic: str
    partition: int
    spec: TableSpec
    table: Any  # pyarrow.Table, or None for a staged insert
    first: int
    last: int
    rows: int
    body: bytes | None = None  # Avro container for ClickHouse to decode (with `plan`)
    plan: Plan | None = None


@dataclass
class Stats:
    rows: int = 0
    inserts: int = 0
    dead_letters: int = 0
    resumes: int = 0
    started: float = field(default_factory=time.monotonic)


class Stop(Exception):
    """Raised inside waits when the loader is asked to stop."""


class Loader:
    """`flinkpulse load`: see the package docstring. One instance per ClickHouse database."""

    def __init__(
        self,
        cfg: Config,
        topics: list[str] | None = None,
        status_file: Path | None = None,
        fast: bool = True,
    ) -> None:
        from flinkpulse.clickhouse.migrate import check_database_name

        self.cfg = cfg
        self.database = check_database_name(cfg.clickhouse.database)
        logical = topics or list(TOPIC_TABLES)
        unknown = [t for t in logical if t not in TOPIC_TABLES]
        if unknown:
            from flinkpulse.errors import UsageError

            raise UsageError(f"not a loadable topic: {', '.join(unknown)}")
        #: physical topic -> (logical topic, table)
        self.topics = {cfg.kafka.topic(t): (t, TOPIC_TABLES[t]) for t in logical}
        self.batch_rows = max(1, cfg.loader.batch_rows)
        self.flush_interval = max(0.01, cfg.loader.flush_interval_s)
        self.status_file = status_file
        self.decoder = Decoder(cfg.registry.url)
        self.stats = Stats()
        self.specs: dict[str, TableSpec] = {}
        self.pending: dict[tuple[str, int], Pending] = {}
        self.buffered = 0
        self.inflight_rows: dict[tuple[str, int], int] = {}
        self.partitions: list[tuple[str, int]] = []
        #: where consumption (re)started: max(_offset) + 1 per partition (absent: beginning)
        self.start: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._failed = threading.Event()
        self._error: BaseException | None = None
        self._q: queue.Queue[Insert | None] = queue.Queue(QUEUE_BATCHES)
        self._consumer: Any = None
        self._producer: Any = None
        self._ch: Any = None
        self._worker: threading.Thread | None = None
        self._state = "starting"
        self._last_stats = (time.monotonic(), 0)
        self._rate = 0.0
        self._migrated = False
        self._qid = f"fpload-{self.database}-"
        self._lock = threading.Lock()
        #: let ClickHouse decode record schemas it converts alike (flinkpulse.loader.fast)
        self.fast = fast
        self._plans: dict[tuple[str, int], Plan | None] = {}  # (table, schema id) -> plan
        #: (topic, first 5 bytes of a value) -> schema id to stage, None: decode in Python
        self._sids: dict[tuple[str, bytes], int | None] = {}
        #: (topic, partition) -> decode offsets up to this in Python (a staged insert failed)
        self._slow_until: dict[tuple[str, int], int] = {}

    # -- public -------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self, until_idle: float | None = None, once: bool = False) -> Stats:
        """Load until stopped (SIGTERM/SIGINT or :meth:`stop`).

        until_idle: return once nothing arrived for that many seconds and all is inserted.
        once: return once the high watermarks seen at start are loaded (or idle for 5 s).
        """
        self._setup_kafka()
        self._worker = threading.Thread(target=self._insert_loop, name="loader-insert", daemon=True)
        self._worker.start()
        targets: dict[tuple[str, int], int] | None = None
        try:
            self._resume()
            if once:
                targets = self._high_watermarks(cached=False)
                until_idle = until_idle or 5.0
            last_msg = time.monotonic()
            next_meta = time.monotonic() + 30.0
            while not self._stop.is_set():
                if self._failed.is_set():
                    self._recover()
                    last_msg = time.monotonic()
                    continue
                msgs = self._consumer.consume(num_messages=2000, timeout=0.1)
                now = time.monotonic()
                if msgs:
                    last_msg = now
                    self._handle(msgs)
                self._flush_due(now)
                self._maybe_report(now)
                if now >= next_meta:
                    next_meta = now + 30.0
                    if self._new_partitions():
                        self._drain()
                        self._resume()
                if targets is not None and self._reached(targets) and self._idle():
                    break
                if until_idle is not None and now - last_msg >= until_idle:
                    self._flush_all()
                    self._q.join()
                    if self._failed.is_set():
                        continue
                    if self._idle() and time.monotonic() - last_msg >= until_idle:
                        break
            if not self._failed.is_set():
                self._drain()
        except Stop:
            pass
        finally:
            self._shutdown()
        self._report(final=True)
        return self.stats

    # -- setup --------------------------------------------------------------------------------

    def _setup_kafka(self) -> None:
        from confluent_kafka import Consumer, Producer

        from flinkpulse.topics import ensure_topics

        logical = [lt for lt, _ in self.topics.values()]
        ensure_topics(self.cfg, logical + [f"dlq.{t}" for t in logical])
        conf = self.cfg.kafka.client_conf()
        self._consumer = Consumer(
            {
                **conf,
                # required by librdkafka; offsets are never committed nor read from Kafka
                "group.id": f"flinkpulse-loader-{self.database}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "queued.max.messages.kbytes": 16384,
                "fetch.max.bytes": 16 << 20,
                "log_level": 3,
            }
        )
        self._producer = Producer(
            {**conf, "enable.idempotence": True, "linger.ms": 5, "log_level": 3}
        )

    def _client(self, session: bool = False) -> Any:
        from flinkpulse.clickhouse.migrate import client

        return client(
            self.cfg,
            "writer",
            connect_timeout=5,
            send_receive_timeout=120,
            autogenerate_session_id=False,
            session_id=f"{self._qid}{uuid.uuid4().hex}" if session else None,
        )

    # -- resume: the heart of exactly-once ----------------------------------------------------

    def _resume(self) -> None:
        """Wait for ClickHouse, then consume every partition from max(_offset) + 1."""
        attempt = 0
        while True:
            if self._stop.is_set():
                raise Stop
            try:
                if self._ch is None:
                    self._ch = self._client()
                if self.cfg.loader.migrate and not self._migrated:
                    from flinkpulse.clickhouse.migrate import migrate

                    migrate(self.cfg, self.database, log=lambda m: log.info(m.strip()))
                    self._migrated = True
                self._wait_no_inflight()
                self.specs = {table: self._describe(table) for _, table in self.topics.values()}
                self._plans.clear()
                self._sids.clear()
                self.partitions = self._list_partitions()
                start = self._committed()
                self.start = start
                break
            except Stop:
                raise
            except Exception as e:
                from flinkpulse.errors import FlinkpulseError

                if isinstance(e, FlinkpulseError) and "does not exist" in str(e):
                    raise
                self._close_ch()
                delay = min(MAX_BACKOFF_S, 0.5 * 2**attempt)
                attempt += 1
                self._state = f"waiting for ClickHouse ({_first_line(e)})"
                log.warning("ClickHouse not ready: %s; retrying in %.1fs", _first_line(e), delay)
                self._write_status()
                self._sleep(delay)
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        assignment = []
        for topic, p in self.partitions:
            nxt = start.get((topic, p))
            assignment.append(TopicPartition(topic, p, OFFSET_BEGINNING if nxt is None else nxt))
        self._consumer.assign(assignment)
        self.stats.resumes += 1
        self._state = "running"
        described = ", ".join(
            f"{t}[{p}]@{start.get((t, p), 'beginning')}" for t, p in self.partitions
        )
        log.info("consuming from ClickHouse's positions: %s", described)
        self._write_status()

    def _committed(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> max(_offset) + 1, as held in ClickHouse."""
        out: dict[tuple[str, int], int] = {}
        for topic, (_, table) in self.topics.items():
            rows = self._ch.query(
                f"SELECT _partition, max(_offset) FROM {self.specs[table].qualified} "
                "WHERE _topic = {t:String} GROUP BY _partition",
                parameters={"t": topic},
            ).result_rows
            for p, mx in rows:
                out[(topic, int(p))] = int(mx) + 1
        return out

    def _wait_no_inflight(self) -> None:
        """Block while an insert of ours is still running in ClickHouse (see the proof, 4)."""
        from clickhouse_connect.driver.exceptions import DatabaseError

        deadline = time.monotonic() + 300
        while True:
            try:
                n = self._ch.query(
                    "SELECT count() FROM system.processes WHERE startsWith(query_id, {q:String})",
                    parameters={"q": self._qid},
                ).result_rows[0][0]
            except DatabaseError as e:  # no access to system.processes: nothing to wait for
                if "ACCESS_DENIED" in str(e) or "UNKNOWN_TABLE" in str(e):
                    return
                raise
            if not n:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} earlier insert(s) still running in ClickHouse")
            self._state = "waiting for an earlier insert to finish"
            self._sleep(0.2)

    def _describe(self, table: str) -> TableSpec:
        from flinkpulse.errors import FlinkpulseError

        rows = self._ch.query(
            "SELECT name, type, default_kind FROM system.columns "
            "WHERE database = {d:String} AND table = {t:String} ORDER BY position",
            parameters={"d": self.database, "t": table},
        ).result_rows
        if not rows:
            raise FlinkpulseError(
                f"table {self.database}.{table} does not exist — run `flinkpulse clickhouse migrate`"
            )
        return TableSpec.from_system_columns(self.database, table, rows)

    def _list_partitions(self) -> list[tuple[str, int]]:
        md = self._consumer.list_topics(timeout=10)
        out = []
        for topic in self.topics:
            t = md.topics.get(topic)
            if t is None or t.error is not None:
                raise RuntimeError(f"Kafka topic {topic} is not available")
            out += [(topic, p) for p in sorted(t.partitions)]
        return out

    def _new_partitions(self) -> bool:
        try:
            return set(self._list_partitions()) != set(self.partitions)
        except Exception:
            return False

    def _recover(self) -> None:
        """After a failed insert: drop everything in memory, resume from ClickHouse."""
        err = self._error
        self._q.join()  # the insert thread discards what is queued
        with self._lock:
            self.inflight_rows.clear()
        dropped = self.buffered
        self.pending.clear()
        self.buffered = 0
        with contextlib.suppress(Exception):
            self._consumer.unassign()  # stop fetching and drop librdkafka's queue
        log.warning(
            "insert failed (%s); dropped %d buffered rows (Kafka keeps them), resuming from "
            "ClickHouse",
            _first_line(err),
            dropped,
        )
        self._close_ch()
        self._failed.clear()
        self._error = None
        self._resume()

    # -- consume and batch --------------------------------------------------------------------

    def _handle(self, msgs: list[Any]) -> None:
        if not self.fast or any(m.error() is not None for m in msgs):
            self._handle_each(msgs)
        else:  # runs of one partition, each as a whole where ClickHouse is to decode it all
            keys = zip([m.topic() for m in msgs], [m.partition() for m in msgs], strict=True)
            i = 0
            for key, grp in groupby(keys):
                n = sum(1 for _ in grp)
                self._handle_run(key, msgs[i : i + n])
                i += n
                if self._failed.is_set():
                    return
        if self.buffered >= self.batch_rows:
            self._flush_all()

    def _handle_run(self, key: tuple[str, int], msgs: list[Any]) -> None:
        """Consecutive records of one partition: staged as a whole if they can all be."""
        values = [m.value() for m in msgs]
        headers = {v[:5] for v in values if v is not None}
        sid = None
        if len(headers) == 1 and None not in values:
            (header,) = headers
            sid = self._sids.get((key[0], header), -1)
            if sid == -1:
                sid = self._fast_sid(key[0], values[0])
        offsets = [m.offset() for m in msgs]
        if sid is None or offsets[0] <= self._slow_until.get(key, -1):
            self._handle_each(msgs)
            return
        i, n = 0, len(values)
        while i < n and not self._failed.is_set():
            pend = self._pending_for(key, sid)
            j = min(n, i + self.batch_rows - len(pend.offsets))
            pend.raw += values[i:j]
            pend.offsets += offsets[i:j]
            self.buffered += j - i
            if len(pend.offsets) >= self.batch_rows:
                self._flush(key)
            i = j

    def _pending_for(self, key: tuple[str, int], sid: int | None) -> Pending:
        """The buffer of `key` for records decoded by `sid` (None: Python); a run ends where
        the way of decoding changes."""
        pend = self.pending.get(key)
        if pend is not None and pend.sid != sid:
            if pend.offsets or pend.dead:
                self._flush(key)
                pend = None
            else:
                pend.sid = sid
        if pend is None:
            pend = self.pending[key] = Pending(
                key[0], key[1], self.topics[key[0]][1], since=time.monotonic(), sid=sid
            )
        elif not pend.offsets and not pend.dead:
            pend.since = time.monotonic()
        return pend

    def _handle_each(self, msgs: list[Any]) -> None:
        decode = self.decoder.decode
        fast, slow, sids = self.fast, self._slow_until, self._sids
        for m in msgs:
            if m.error() is not None:
                if m.error().code() != -191:  # _PARTITION_EOF
                    log.warning("Kafka: %s", m.error())
                continue
            topic = m.topic()
            key = (topic, m.partition())
            value, offset = m.value(), m.offset()
            sid = None
            if fast and value is not None:
                sid = sids.get((topic, value[:5]), -1)
                if sid == -1:
                    sid = self._fast_sid(topic, value)
                if sid is not None and offset <= slow.get(key, -1):
                    sid = None
            pend = self._pending_for(key, sid)
            if sid is not None:
                pend.raw.append(value)
            else:
                try:
                    row = decode(value)
                except DecodeError as e:
                    pend.dead.append((m, str(e)))
                    continue
                except RegistryUnavailable as e:
                    self._error = e
                    self._failed.set()
                    return
                pend.rows.append(row)
                pend.msgs.append(m)
            pend.offsets.append(offset)
            self.buffered += 1
            if len(pend.offsets) >= self.batch_rows:
                self._flush(key)

    def _fast_sid(self, topic: str, value: bytes) -> int | None:
        """The schema id if ClickHouse is to decode `value`, else None (Python decodes)."""
        header = value[:5]
        if len(value) < 6 or value[0] != 0:
            self._sids[(topic, header)] = None
            return None
        sid = int.from_bytes(header[1:], "big")
        table = self.topics[topic][1]
        p = self._plans.get((table, sid), False)
        if p is False:
            try:
                self.decoder.schema(sid)
            except (DecodeError, RegistryUnavailable):
                return None  # the Python path reports it (dead letter, or retry); not cached
            p = plan(self.decoder.raw.get(sid), self.specs[table].ch_types)
            self._plans[(table, sid)] = p
        self._sids[(topic, header)] = sid if p is not None else None
        return sid if p is not None else None

    def _flush_due(self, now: float) -> None:
        for key, pend in list(self.pending.items()):
            if (pend.offsets or pend.dead) and now - pend.since >= self.flush_interval:
                self._flush(key)

    def _flush_all(self) -> None:
        for key in list(self.pending):
            self._flush(key)

    def _flush(self, key: tuple[str, int]) -> None:
        """Build the batch of one (topic, partition); dead letters first, then queue the insert."""
        pend = self.pending.pop(key, None)
        if pend is None or self._failed.is_set():
            return
        self.buffered -= len(pend.offsets)
        spec = self.specs[pend.table]
        if pend.sid is not None:
            if pend.raw:
                p = self._plans[(pend.table, pend.sid)]
                assert p is not None
                body = p.container(pend.raw, pend.offsets)
                first, last, n = pend.offsets[0], pend.offsets[-1], len(pend.offsets)
                self._enqueue(key, Insert(pend.topic, pend.partition, spec, None, first, last, n,
                                          body, p))  # fmt: skip
            return
        dead = list(pend.dead)
        table = None
        if pend.rows:
            table, bad = build(spec, pend.topic, pend.partition, pend.rows, pend.offsets)
            dead += [(pend.msgs[i], reason) for i, reason in sorted(bad.items())]
        if dead:
            self._dead_letter(pend, dead)
        if table is not None and table.num_rows:
            offs = table.column("_offset")
            first, last = offs[0].as_py(), offs[-1].as_py()
            ins = Insert(pend.topic, pend.partition, spec, table, first, last, table.num_rows)
            self._enqueue(key, ins)

    def _enqueue(self, key: tuple[str, int], ins: Insert) -> None:
        with self._lock:
            self.inflight_rows[key] = self.inflight_rows.get(key, 0) + ins.rows
        while True:  # backpressure: block while the insert thread is busy
            try:
                self._q.put(ins, timeout=0.5)
                break
            except queue.Full:
                if self._stop.is_set() and self._failed.is_set():
                    return

    def _dead_letter(self, pend: Pending, dead: list[tuple[Any, Any]]) -> None:
        """Send undecodable records to dlq.<topic>; wait for Kafka's ack (proof, 5)."""
        logical = self.topics[pend.topic][0]
        dlq = self.cfg.kafka.topic(f"dlq.{logical}")
        for m, reason in dead:
            self._send_dead(dlq, m.key(), m.value(), reason, m.offset(), pend)
        left = self._producer.flush(30)
        if left:
            raise RuntimeError(f"{left} dead letters not acknowledged by Kafka")

    def _send_dead(
        self, dlq: str, key: Any, value: Any, reason: str, offset: int, pend: Pending
    ) -> None:
        headers = [
            ("error", reason.encode()),
            ("source.topic", pend.topic.encode()),
            ("source.partition", str(pend.partition).encode()),
            ("source.offset", str(offset).encode()),
        ]
        while True:
            try:
                self._producer.produce(dlq, value=value, key=key, headers=headers)
                break
            except BufferError:
                self._producer.poll(0.1)
        self.stats.dead_letters += 1
        log.warning(
            "dead-lettered %s[%d]@%d to %s: %s", pend.topic, pend.partition, offset, dlq, reason
        )

    # -- insert thread ------------------------------------------------------------------------

    def _insert_loop(self) -> None:
        ch = None
        stages: dict[str, Plan] = {}  # table -> the plan its stage in this session was made for
        used = 0.0
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                if self._failed.is_set():
                    continue  # discard: the main thread resumes from ClickHouse
                if ch is None:
                    ch = self._client(session=True)
                    stages.clear()
                qid = f"{self._qid}{item.topic}-{item.partition}-{item.first}-{item.last}-"
                if item.body is not None:
                    if time.monotonic() - used > STAGE_IDLE_S:
                        stages.clear()  # the session may have expired with its tables
                    self._insert_staged(ch, item, qid, stages)
                    used = time.monotonic()
                else:
                    ch.insert_arrow(
                        item.spec.qualified,
                        item.table,
                        settings={"query_id": qid + uuid.uuid4().hex[:8]},
                    )
                n = item.rows
                with self._lock:
                    self.stats.rows += n
                    self.stats.inserts += 1
                    key = (item.topic, item.partition)
                    self.inflight_rows[key] = max(0, self.inflight_rows.get(key, 0) - n)
            except BaseException as e:  # noqa: BLE001 - any failure: resume from ClickHouse
                if item is not None and item.body is not None:
                    key = (item.topic, item.partition)  # replay the batch, decoded in Python
                    self._slow_until[key] = max(self._slow_until.get(key, -1), item.last)
                self._error = e
                self._failed.set()
                if ch is not None:
                    with contextlib.suppress(Exception):
                        ch.close()
                ch = None
            finally:
                self._q.task_done()

    def _insert_staged(self, ch: Any, item: Insert, qid: str, stages: dict[str, Plan]) -> None:
        """One batch through the session's stage table (see :mod:`flinkpulse.loader.fast`)."""
        from clickhouse_connect.driver.exceptions import DatabaseError

        assert item.plan is not None and item.body is not None
        table = item.spec.name
        stage = stage_name(table)
        if stages.get(table) is not item.plan:
            try:
                ch.command(f"DROP TEMPORARY TABLE IF EXISTS `{stage}`")
                ch.command(create_stage_sql(table, item.plan))
            except DatabaseError as e:
                if any(c in str(e) for c in _NO_STAGE):  # not allowed here: never will be
                    self.fast = False
                    log.warning(
                        "cannot create a temporary stage table (%s): decoding in Python from now",
                        _first_line(e),
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
            settings={**STAGE_SETTINGS, "query_id": qid + "s" + uuid.uuid4().hex[:8]},
        )
        ch.command(
            insert_select_sql(item.spec.qualified, table, item.plan),
            parameters={"t": item.topic, "p": item.partition, "n": item.rows},
            settings={"query_id": qid + uuid.uuid4().hex[:8], "max_threads": 1},
        )

    # -- progress -----------------------------------------------------------------------------

    def _drain(self) -> None:
        self._flush_all()
        self._q.join()

    def _idle(self) -> bool:
        with self._lock:
            inflight = sum(self.inflight_rows.values())
        return self.buffered == 0 and not self.pending and inflight == 0 and self._q.empty()

    def _high_watermarks(self, cached: bool = True) -> dict[tuple[str, int], int]:
        from confluent_kafka import TopicPartition

        out = {}
        for t, p in self.partitions:
            try:
                lo, hi = self._consumer.get_watermark_offsets(
                    TopicPartition(t, p), timeout=5, cached=cached
                )
            except Exception:
                continue
            if hi >= 0:
                out[(t, p)] = hi
        return out

    def _positions(self) -> dict[tuple[str, int], int]:
        from confluent_kafka import TopicPartition

        try:
            tps = self._consumer.position([TopicPartition(t, p) for t, p in self.partitions])
        except Exception:
            return {}
        out = dict(self.start)
        for tp in tps:
            if tp.offset >= 0:
                out[(tp.topic, tp.partition)] = tp.offset
        return out

    def _reached(self, targets: dict[tuple[str, int], int]) -> bool:
        pos = self._positions()
        return all(pos.get(k, 0) >= hi or hi == 0 for k, hi in targets.items())

    def lag(self) -> dict[tuple[str, int], int]:
        """Records per partition not in ClickHouse yet: not consumed, buffered or queued."""
        hws = self._high_watermarks(cached=True)
        pos = self._positions()
        with self._lock:
            inflight = dict(self.inflight_rows)
        out = {}
        for k in self.partitions:
            buffered = len(self.pending[k].offsets) if k in self.pending else 0
            behind = max(0, hws.get(k, 0) - pos[k]) if k in pos else 0
            out[k] = behind + buffered + inflight.get(k, 0)
        return out

    def _maybe_report(self, now: float) -> None:
        t0, _ = self._last_stats
        if now - t0 >= self.cfg.loader.stats_interval_s:
            self._report()

    def _report(self, final: bool = False) -> None:
        now = time.monotonic()
        t0, r0 = self._last_stats
        with self._lock:
            rows = self.stats.rows
        self._rate = (rows - r0) / max(1e-6, now - t0)
        self._last_stats = (now, rows)
        lag = self.lag() if self._consumer is not None and not final else {}
        worst = sorted(lag.items(), key=lambda kv: -kv[1])[:3]
        log.info(
            "%s: %d rows loaded (%.0f rows/s), %d inserts, %d dead letters, lag %d%s",
            "stopped" if final else self._state,
            rows,
            self._rate,
            self.stats.inserts,
            self.stats.dead_letters,
            sum(lag.values()),
            (" (" + ", ".join(f"{t}[{p}]={n}" for (t, p), n in worst if n) + ")")
            if any(n for _, n in worst)
            else "",
        )
        self._write_status(lag)

    def _write_status(self, lag: dict[tuple[str, int], int] | None = None) -> None:
        if self.status_file is None:
            return
        doc = {
            "pid": os.getpid(),
            "updated": time.time(),
            "state": self._state,
            "database": self.database,
            "rows": self.stats.rows,
            "rows_per_s": round(self._rate, 1),
            "inserts": self.stats.inserts,
            "dead_letters": self.stats.dead_letters,
            "lag_total": sum((lag or {}).values()),
            "lag": {f"{t}[{p}]": n for (t, p), n in (lag or {}).items()},
        }
        tmp = self.status_file.with_suffix(".tmp")
        try:
            self.status_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc))
            tmp.replace(self.status_file)
        except OSError as e:
            log.debug("status file: %s", e)

    # -- helpers ------------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise Stop

    def _close_ch(self) -> None:
        if self._ch is not None:
            with contextlib.suppress(Exception):
                self._ch.close()
            self._ch = None

    def _shutdown(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._q.put(None)
            self._worker.join(timeout=180)
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
        if self._producer is not None:
            self._producer.flush(10)
        self._close_ch()
        self._state = "stopped"


def _first_line(e: BaseException | None) -> str:
    text = str(e).strip() if e is not None else ""
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def install_signal_handlers(loader: Loader) -> None:
    """SIGTERM/SIGINT: finish the current batches, then return from run()."""

    def handler(signum: int, frame: Any) -> None:
        loader.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
