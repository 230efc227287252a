"""The loader loop: consume, batch, insert; resume from ClickHouse after any error.

The exactly-once argument, and the checks that enforce it on every batch, are in
:mod:`flinkpulse.loader.exactly_once`. The units, each readable alone:

* :mod:`~flinkpulse.loader.batch` — records -> batches (Arrow or staged Avro) -> inserts;
* :mod:`~flinkpulse.loader.insert` — the insert thread behind a bounded queue;
* :mod:`~flinkpulse.loader.status` — counters, lag, the status file;
* :mod:`~flinkpulse.loader.errors` — the errors, told apart by type.

This module wires them: the main thread consumes and batches (consuming the next batch
overlaps the insert of the previous one), sends a batch's dead letters and waits for Kafka's
acknowledgement, then queues its insert.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flinkpulse.config import Config
from flinkpulse.errors import UsageError
from flinkpulse.loader import TOPIC_TABLES
from flinkpulse.loader.avro import Decoder
from flinkpulse.loader.batch import Batch, Batcher, DeadLetter, Router
from flinkpulse.loader.columns import TableSpec
from flinkpulse.loader.errors import (
    NO_PROCESSES_ERRORS,
    Control,
    DeadLettersUnacknowledged,
    InsertsStillRunning,
    PositionAhead,
    Stop,
    TableMissing,
    TopicRecreated,
    TopicUnavailable,
    clickhouse_error_name,
    first_line,
)
from flinkpulse.loader.exactly_once import (
    Key,
    Ledger,
    check_consumer_conf,
    consumer_conf,
    query_id_prefix,
    record_topic_ids,
    recorded_topic_ids,
    resume_positions,
    session_id,
)
from flinkpulse.loader.insert import InsertWorker
from flinkpulse.loader.status import Progress, Reporter, Stats, high_watermarks, lag, positions
from flinkpulse.topics import end_offsets, topic_ids

__all__ = ["Loader", "Stats", "Stop", "install_signal_handlers"]

log = logging.getLogger("flinkpulse.loader")

#: longest wait between two attempts to reach ClickHouse
MAX_BACKOFF_S = 5.0
#: how often a running loader looks at Kafka's metadata (new partitions, a topic recreated
#: under it), and how long a look may hold up the loop when Kafka does not answer
METADATA_S = 10.0
METADATA_TIMEOUT_S = 2.0


def consumer_settings(cfg: Config, database: str) -> dict[str, Any]:
    """The loader's Kafka consumer: the exactly-once settings, prefetch, and
    `loader.consumer_properties`, which may change anything but the exactly-once ones."""
    exactly_once = consumer_conf(database)
    extra = cfg.loader.consumer_pairs()
    fixed = sorted(set(extra) & (set(exactly_once) - {"group.id"}))
    if fixed:
        raise UsageError(
            f"loader.consumer_properties cannot set {', '.join(fixed)}: "
            "the loader's exactly-once depends on it (docs/loader.md)"
        )
    cconf = {
        **cfg.kafka.client_conf(),
        **exactly_once,
        "queued.max.messages.kbytes": 16384,
        "fetch.max.bytes": 16 << 20,
        # prefetch up to the 16 MB above: at librdkafka's default (100,000 messages)
        # consume() kept waiting on fetches, 1.3 s instead of 0.2 s for the same 400,000
        # records of 4 partitions (bench/README.md, "Loader: consumer prefetch")
        "queued.min.messages": 1_000_000,
        "log_level": 3,
        **extra,
    }
    check_consumer_conf(cconf)
    return cconf


@dataclass
class Target:
    """What the loader loads where: fixed for its lifetime."""

    cfg: Config
    database: str
    #: physical topic -> (logical topic, table)
    topics: dict[str, tuple[str, str]]


@dataclass
class Position:
    """Where consumption (re)started, per partition: max(_offset) + 1 (absent: beginning)."""

    partitions: list[Key] = field(default_factory=list)
    start: dict[Key, int] = field(default_factory=dict)
    specs: dict[str, TableSpec] = field(default_factory=dict)  # table -> its columns
    #: topic -> the Kafka topic ID its rows came from (loader_topics); None: no such table
    recorded: dict[str, str] | None = None
    migrated: bool = False


@dataclass
class Clients:
    """The loader's connections (None until set up)."""

    consumer: Any = None
    producer: Any = None
    ch: Any = None  # the main thread's ClickHouse client (resume, describe)

    def close_ch(self) -> None:
        if self.ch is not None:
            with contextlib.suppress(Exception):
                self.ch.close()
            self.ch = None


class Loader:
    """`flinkpulse load`: see :mod:`flinkpulse.loader.exactly_once`. One per ClickHouse database."""

    def __init__(
        self,
        cfg: Config,
        topics: list[str] | None = None,
        status_file: Path | None = None,
        fast: bool = True,
    ) -> None:
        from flinkpulse.clickhouse.migrate import check_database_name

        database = check_database_name(cfg.clickhouse.database)
        logical = topics or list(TOPIC_TABLES)
        unknown = [t for t in logical if t not in TOPIC_TABLES]
        if unknown:
            from flinkpulse.errors import UsageError

            raise UsageError(f"not a loadable topic: {', '.join(unknown)}")
        self.target = Target(
            cfg, database, {cfg.kafka.topic(t): (t, TOPIC_TABLES[t]) for t in logical}
        )
        self.position = Position()
        #: every partition's end offset when the last resume checked them (_check_topics)
        self.ends_at_resume: dict[Key, int] = {}
        self.clients = Clients()
        self.control = Control()
        self.progress = Progress()
        self.ledger = Ledger()
        self.reporter = Reporter(database, status_file, cfg.loader.stats_interval_s)
        #: ClickHouse decodes record schemas it converts alike (flinkpulse.loader.fast)
        self.router = Router(Decoder(cfg.registry.url), enabled=fast)
        self.batcher = Batcher(
            self.router,
            {topic: table for topic, (_, table) in self.target.topics.items()},
            cfg.loader.batch_rows,
            cfg.loader.flush_interval_s,
            flush_to=self._flush,
            failed=self.control.failed.is_set,
            registry_down=self.control.fail,
        )
        self.worker = InsertWorker(
            database, self._session, self.control, self.progress, self.router
        )

    @property
    def stats(self) -> Stats:
        return self.progress.stats

    # -- public -------------------------------------------------------------------------------

    def stop(self) -> None:
        self.control.stop.set()

    def run(self, until_idle: float | None = None, once: bool = False) -> Stats:
        """Load until stopped (SIGTERM/SIGINT or :meth:`stop`).

        until_idle: return once nothing arrived for that many seconds and all is inserted.
        once: return once the high watermarks seen at start are loaded (or idle for 5 s).
        """
        self._setup_kafka()
        self.worker.start()
        failed = self.control.failed
        targets: dict[Key, int] | None = None
        failure: Exception | None = None
        try:
            self._resume()
            if once:
                # the ends the resume just read; those it could not (Kafka unreachable, a
                # partition without a leader) are asked for now
                targets = dict(self.ends_at_resume)
                unknown = [k for k in self.position.partitions if k not in targets]
                if unknown:
                    targets.update(end_offsets(self.target.cfg, unknown))
                until_idle = until_idle or 5.0
            last_msg = time.monotonic()
            next_meta = time.monotonic() + METADATA_S
            while not self.control.stop.is_set():
                if failed.is_set():
                    self._recover()
                    last_msg = time.monotonic()
                    continue
                msgs = self.clients.consumer.consume(num_messages=2000, timeout=0.1)
                now = time.monotonic()
                if msgs:
                    last_msg = now
                    self.batcher.handle(msgs)
                self.batcher.flush_due(now)
                if self.reporter.due(now):
                    self._report()
                if now >= next_meta:
                    next_meta = now + METADATA_S
                    if self._new_partitions() or self._recreated(self.target.topics):
                        # a recreated topic the database holds rows of stops the resume
                        # (TopicRecreated); one it holds none of is consumed from its start
                        self._drain()
                        self._resume()
                if targets is not None and self._reached(targets) and self._idle():
                    break
                if until_idle is not None and now - last_msg >= until_idle:
                    self._drain()
                    if failed.is_set():
                        continue
                    if self._idle() and time.monotonic() - last_msg >= until_idle:
                        break
            if not failed.is_set():
                self._drain()
        except Stop:
            pass
        except Exception as e:
            failure = e
            raise
        finally:
            self._shutdown()
            if failure is not None:
                # what `stack status` shows of a loader stopped by an error (its log has it all)
                self.reporter.state = f"failed: {first_line(failure)}"
                with contextlib.suppress(Exception):
                    self.reporter.write(self.stats)
        self._report(final=True)
        return self.stats

    def lag(self) -> dict[Key, int]:
        """Records per partition not in ClickHouse yet: not consumed, buffered or queued."""
        parts = self.position.partitions
        consumer = self.clients.consumer
        return lag(
            parts,
            high_watermarks(consumer, parts),
            positions(consumer, parts, self.position.start),
            {k: self.batcher.buffered_of(k) for k in parts},
            self.progress.inflight(),
        )

    # -- setup --------------------------------------------------------------------------------

    def _setup_kafka(self) -> None:
        from confluent_kafka import Consumer

        from flinkpulse.producer import Producer
        from flinkpulse.topics import ensure_topics

        cfg = self.target.cfg
        logical = [lt for lt, _ in self.target.topics.values()]
        ensure_topics(cfg, logical + [f"dlq.{t}" for t in logical])
        conf = cfg.kafka.client_conf()
        cconf = consumer_settings(cfg, self.target.database)
        self.clients.consumer = Consumer(cconf)
        self.clients.producer = Producer(
            {**conf, "enable.idempotence": True, "linger.ms": 5, "log_level": 3}
        )

    def _client(self, session: bool = False) -> Any:
        from flinkpulse.clickhouse.migrate import client

        return client(
            self.target.cfg,
            "writer",
            connect_timeout=5,
            send_receive_timeout=120,
            autogenerate_session_id=False,
            session_id=session_id(self.target.database) if session else None,
        )

    def _session(self) -> Any:
        """A ClickHouse client with its own session (the insert thread's stage tables)."""
        return self._client(session=True)

    # -- resume: the heart of exactly-once ----------------------------------------------------

    def _resume(self) -> None:
        """Wait for ClickHouse, then consume every partition from max(_offset) + 1."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        attempt = 0
        pos = self.position
        while True:
            if self.control.stop.is_set():
                raise Stop
            try:
                self._read_positions()
                self._check_topics()
                break
            except (Stop, TableMissing, TopicRecreated, PositionAhead):
                raise
            except Exception as e:
                self.clients.close_ch()
                delay = min(MAX_BACKOFF_S, 0.5 * 2**attempt)
                attempt += 1
                self.reporter.state = f"waiting for ClickHouse ({first_line(e)})"
                log.warning("ClickHouse not ready: %s; retrying in %.1fs", first_line(e), delay)
                self.reporter.write(self.stats)
                self.control.sleep(delay)
        self.ledger.resumed(pos.start, pos.partitions)
        self.clients.consumer.assign(
            [
                TopicPartition(t, p, pos.start.get((t, p), OFFSET_BEGINNING))
                for t, p in pos.partitions
            ]
        )
        self.stats.resumes += 1
        self.reporter.state = "running"
        described = ", ".join(
            f"{t}[{p}]@{pos.start.get((t, p), 'beginning')}" for t, p in pos.partitions
        )
        log.info("consuming from ClickHouse's positions: %s", described)
        self.reporter.write(self.stats)

    def _check_topics(self) -> None:
        """Refuse to resume from rows of an earlier topic of the same name (exactly_once, 3):
        one whose recorded topic ID is not Kafka's (TopicRecreated), or whose position is past
        its partition's end (PositionAhead: Kafka's offsets of a topic never go back; catches
        rows loaded before IDs were recorded). Then record the IDs of the topics without rows.
        Kafka unreachable: nothing to compare, consuming waits for it as before. Runs in
        `_resume`'s retry loop: a ClickHouse error recording the IDs is retried."""
        pos, cfg = self.position, self.target.cfg
        ch = cfg.clickhouse
        table = {t: pos.specs[self.target.topics[t][1]].qualified for t in self.target.topics}
        held = {t for t, _ in pos.start}
        ids = topic_ids(cfg, sorted(self.target.topics))
        recorded = pos.recorded or {}
        changed = self._changed_ids(ids, held)
        if changed:
            raise TopicRecreated(ch.url, ch.user, changed)
        ends = self.ends_at_resume = end_offsets(cfg, pos.partitions)
        asked = [k for k in pos.partitions if k in pos.start]
        ahead = [
            (t, p, pos.start[(t, p)], ends[(t, p)], table[t])
            for t, p in asked
            if (t, p) in ends and pos.start[(t, p)] > ends[(t, p)]
        ]
        if ahead:
            raise PositionAhead(ch.url, ch.user, ahead)
        if pos.recorded is None:
            return
        new = {
            t: i
            for t, i in ids.items()
            if (t not in held or t not in recorded) and recorded.get(t) != i
        }
        # before any row of these topics is loaded, or not at all: a failure is retried
        # with the resume (a row loaded without its topic's ID could not be told apart later)
        record_topic_ids(self.clients.ch, self.target.database, new)
        pos.recorded = {**recorded, **new}

    def _changed_ids(
        self, ids: dict[str, str], topics: Iterable[str]
    ) -> list[tuple[str, str, str, str]]:
        """(topic, its table, recorded ID, Kafka's ID) of those of `topics` whose ID in `ids`
        (Kafka's) is not the one recorded with their rows."""
        pos = self.position
        recorded = pos.recorded or {}
        return [
            (t, pos.specs[self.target.topics[t][1]].qualified, recorded[t], ids[t])
            for t in sorted(set(topics) & set(ids) & set(recorded))
            if recorded[t] != ids[t]
        ]

    def _recreated(self, topics: Iterable[str]) -> list[tuple[str, str, str, str]]:
        """Those of `topics` deleted and created again while the loader ran (exactly_once, 3),
        as :meth:`_changed_ids`. The consumer goes on at its offsets in the new topic: where it
        has grown past them, without a word, skipping the new topic's first records."""
        if not self.position.recorded:
            return []  # no IDs recorded (loader_topics missing): nothing to compare with
        names = sorted(topics)
        return self._changed_ids(topic_ids(self.target.cfg, names, METADATA_TIMEOUT_S), names)

    def _read_positions(self) -> None:
        """One attempt: migrate, wait for our earlier inserts, read tables and positions."""
        pos, cfg, db = self.position, self.target.cfg, self.target.database
        if self.clients.ch is None:
            self.clients.ch = self._client()
        if cfg.loader.migrate and not pos.migrated:
            from flinkpulse.clickhouse.migrate import migrate

            migrate(cfg, db, log=lambda m: log.info(m.strip()))
            pos.migrated = True
        self._wait_no_inflight()
        tables = {table for _, table in self.target.topics.values()}
        pos.specs = {table: self._describe(table) for table in sorted(tables)}
        self.router.reset(pos.specs)
        pos.partitions = self._list_partitions()
        pos.start = resume_positions(
            self.clients.ch,
            {topic: pos.specs[table].qualified for topic, (_, table) in self.target.topics.items()},
        )
        pos.recorded = recorded_topic_ids(self.clients.ch, db)

    def _wait_no_inflight(self) -> None:
        """Block while an insert of ours is still running in ClickHouse (exactly_once, 4)."""
        from clickhouse_connect.driver.exceptions import DatabaseError

        deadline = time.monotonic() + 300
        while True:
            try:
                n = self.clients.ch.query(
                    "SELECT count() FROM system.processes WHERE startsWith(query_id, {q:String})",
                    parameters={"q": query_id_prefix(self.target.database)},
                ).result_rows[0][0]
            except DatabaseError as e:  # no access to system.processes: nothing to wait for
                if clickhouse_error_name(e) in NO_PROCESSES_ERRORS:
                    return
                raise
            if not n:
                return
            if time.monotonic() > deadline:
                raise InsertsStillRunning(n)
            self.reporter.state = "waiting for an earlier insert to finish"
            self.control.sleep(0.2)

    def _describe(self, table: str) -> TableSpec:
        db = self.target.database
        rows = self.clients.ch.query(
            "SELECT name, type, default_kind FROM system.columns "
            "WHERE database = {d:String} AND table = {t:String} ORDER BY position",
            parameters={"d": db, "t": table},
        ).result_rows
        if not rows:
            raise TableMissing(db, table)
        return TableSpec.from_system_columns(db, table, rows)

    def _list_partitions(self) -> list[Key]:
        from flinkpulse.topics import existing_topics

        found = existing_topics(self.clients.consumer, list(self.target.topics))
        out = []
        for topic in self.target.topics:
            t = found.get(topic)
            if t is None:
                raise TopicUnavailable(topic)
            out += [(topic, p) for p in sorted(t.partitions)]
        return out

    def _new_partitions(self) -> bool:
        try:
            return set(self._list_partitions()) != set(self.position.partitions)
        except Exception:
            return False

    def _recover(self) -> None:
        """After a failed insert: drop everything in memory, resume from ClickHouse."""
        self.worker.join()  # the insert thread discards what is queued
        self.progress.drop_inflight()
        dropped = self.batcher.drop()
        with contextlib.suppress(Exception):
            self.clients.consumer.unassign()  # stop fetching and drop librdkafka's queue
        log.warning(
            "insert failed (%s); dropped %d buffered rows (Kafka keeps them), resuming from "
            "ClickHouse",
            first_line(self.control.error),
            dropped,
        )
        self.clients.close_ch()
        self.control.recovered()
        self._resume()

    # -- batches: dead letters first, then the insert -----------------------------------------

    def _flush(self, batch: Batch) -> None:
        """A closed batch: build it, dead-letter (and wait for Kafka), then queue its insert."""
        if batch.empty():
            return
        first = batch.first()
        ins, dead = batch.build(self.position.specs[batch.table])
        if dead:
            self._dead_letter(batch, dead)
        offsets = ins.offsets if ins is not None else []
        if self.ledger.overlaps(batch.key, first):
            # Kafka reset the consumer to the start of a topic recreated under it (shorter than
            # the old one): say that, rather than the overlap check_insert refuses below
            changed = self._recreated([batch.topic])
            if changed:
                ch = self.target.cfg.clickhouse
                raise TopicRecreated(ch.url, ch.user, changed)
        self.ledger.check_insert(batch.key, first, offsets, [m.offset() for m, _ in dead])
        if ins is not None:
            self.worker.put(ins)

    def _dead_letter(self, batch: Batch, dead: list[DeadLetter]) -> None:
        """Send undecodable records to dlq.<topic>; wait for Kafka's ack (exactly_once, 5)."""
        producer = self.clients.producer
        logical = self.target.topics[batch.topic][0]
        dlq = self.target.cfg.kafka.topic(f"dlq.{logical}")
        for m, reason in dead:
            headers = [
                ("error", reason.encode()),
                ("source.topic", batch.topic.encode()),
                ("source.partition", str(batch.partition).encode()),
                ("source.offset", str(m.offset()).encode()),
            ]
            while True:
                try:
                    producer.produce(dlq, value=m.value(), key=m.key(), headers=headers)
                    break
                except BufferError:
                    producer.poll(0.1)
            self.stats.dead_letters += 1
            log.warning(
                "dead-lettered %s[%d]@%d to %s: %s",
                batch.topic,
                batch.partition,
                m.offset(),
                dlq,
                reason,
            )
        left = producer.flush(30)
        if left:
            raise DeadLettersUnacknowledged(left)
        self.ledger.dead_letters_acked(batch.key, [m.offset() for m, _ in dead])

    # -- progress -----------------------------------------------------------------------------

    def _drain(self) -> None:
        self.batcher.flush_all()
        self.worker.join()

    def _idle(self) -> bool:
        inflight = sum(self.progress.inflight().values())
        return self.batcher.idle() and inflight == 0 and self.worker.empty()

    def _reached(self, targets: dict[Key, int]) -> bool:
        pos = positions(self.clients.consumer, self.position.partitions, self.position.start)
        return all(pos.get(k, 0) >= hi or hi == 0 for k, hi in targets.items())

    def _report(self, final: bool = False) -> None:
        lag = self.lag() if self.clients.consumer is not None and not final else {}
        self.reporter.report(self.stats, self.progress.rows(), lag, final=final)

    def _shutdown(self) -> None:
        self.worker.shutdown()
        if self.clients.consumer is not None:
            with contextlib.suppress(Exception):
                self.clients.consumer.close()
        if self.clients.producer is not None:
            self.clients.producer.flush(10)
        self.clients.close_ch()
        self.reporter.state = "stopped"


def install_signal_handlers(loader: Loader) -> None:
    """SIGTERM/SIGINT: finish the current batches, then return from run()."""

    def handler(signum: int, frame: Any) -> None:
        loader.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
