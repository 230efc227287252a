"""The one Kafka producer: confluent-kafka's, except that a record is written only when Kafka
gives it an offset.

librdkafka's idempotent producer also reports a record delivered, with no error and no offset,
when it reads the broker's DUPLICATE_SEQUENCE_NUMBER as success. For the first records of a
partition just created those records were not in the partition (seen in the MQTT bridge and in
the tests' writers, about 1 run in 7 right after ``stack up``). Every producer of flinkpulse is
this class, so such a record is written again (at worst a duplicate, which the jobs drop) and
its delivery callback hears only of the copy that has an offset.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import confluent_kafka

log = logging.getLogger(__name__)

_produce = confluent_kafka.Producer.produce

Report = Callable[[Any, Any], None]


def written(msg: Any) -> bool:
    """Whether a successful delivery report's record is in its partition: it has an offset."""
    offset = msg.offset()
    return offset is not None and offset >= 0


class Producer(confluent_kafka.Producer):  # type: ignore[misc]
    """``confluent_kafka.Producer`` that writes a record again when its delivery report has no
    error and no offset. The copy is produced by the next :meth:`poll` or :meth:`flush` (never
    from inside a callback, where a full queue could not wait), to the same partition with the
    same key, value, headers and timestamp; :meth:`flush` waits for it too."""

    def __init__(self, conf: dict[str, Any]) -> None:
        super().__init__(conf)
        #: (produce() arguments of a record to write again, its guarded callback)
        self._again: collections.deque[tuple[tuple[Any, ...], Report]] = collections.deque()
        #: (callback, its guard) of the last produce() without headers: a caller passing one
        #: callback for every record gets one guard, not a closure per record (~1 us each)
        self._guarded: tuple[Report | None, Report] = (None, self._guard(None, None))

    def produce(  # type: ignore[override]
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = -1,
        on_delivery: Report | None = None,
        timestamp: int = 0,
        headers: Any = None,
        **kwargs: Any,
    ) -> None:
        """As confluent-kafka's ``produce``; ``on_delivery`` hears only of a written record."""
        callback = on_delivery if on_delivery is not None else kwargs.get("callback")
        if headers is None:  # a report carries all else of the record
            guarded = self._guarded
            if guarded[0] is not callback:
                guarded = self._guarded = (callback, self._guard(callback, None))
            _produce(
                self, topic, value, key, partition, on_delivery=guarded[1], timestamp=timestamp
            )
        else:  # a report carries no headers: keep the arguments
            args = (topic, value, key, partition, timestamp, headers)
            self._send(args, self._guard(callback, args))

    def _send(self, args: tuple[Any, ...], report: Report) -> None:
        topic, value, key, partition, timestamp, headers = args
        _produce(
            self, topic, value, key, partition, on_delivery=report, timestamp=timestamp,
            headers=headers,
        )  # fmt: skip

    def _guard(self, callback: Report | None, args: tuple[Any, ...] | None) -> Report:
        """`callback`, called only for a report with an error or an offset. Otherwise the
        record waits in ``_again``: `args` as given to produce() (None: as the report has them),
        pinned to its partition and to the timestamp librdkafka gave it."""

        def report(err: Any, msg: Any) -> None:
            if err is None and not written(msg):
                log.warning(
                    "Kafka reported a record of %s [%d] delivered without an offset; "
                    "writing it again", msg.topic(), msg.partition(),
                )  # fmt: skip
                topic, value, key, partition, timestamp, headers = args or (
                    msg.topic(), msg.value(), msg.key(), -1, 0, None
                )  # fmt: skip
                _kind, ts = msg.timestamp()
                part = msg.partition()
                again = (
                    topic, value, key, part if part >= 0 else partition,
                    ts if ts > 0 else timestamp, headers,
                )  # fmt: skip
                self._again.append((again, report))
                return
            if callback is not None:
                callback(err, msg)

        return report

    def again(self) -> None:
        """Produce the records to write again, as far as the local queue takes them (the rest
        wait for the next call). :meth:`poll` and :meth:`flush` call it."""
        while True:
            try:
                args, report = self._again.popleft()
            except IndexError:
                return
            try:
                self._send(args, report)
            except BufferError:  # full: the next poll() or flush() goes on
                self._again.appendleft((args, report))
                return

    def poll(self, timeout: float = -1) -> int:
        """Serve delivery callbacks, then write again what they found unwritten."""
        served = int(super().poll(timeout))
        if self._again:
            self.again()
        return served

    def flush(self, timeout: float = -1) -> int:
        """Wait until every record, copies included, has its report; how many are left."""
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while True:
            self.again()
            left = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            queued = int(super().flush(left))
            if not self._again or (deadline is not None and time.monotonic() >= deadline):
                return queued + len(self._again)

    def __len__(self) -> int:
        return int(super().__len__()) + len(self._again)
