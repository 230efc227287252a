"""flinkpulse.producer: a record is written only when Kafka gives it an offset."""

from __future__ import annotations

from typing import Any

from flinkpulse.producer import Producer, written


class Report:
    """A delivery report as librdkafka hands it to a callback."""

    def __init__(self, offset: int | None, partition: int = 2) -> None:
        self._offset, self._partition = offset, partition

    def offset(self) -> int | None:
        return self._offset

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self._partition

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_796_040_000_123)

    def headers(self) -> list[tuple[str, bytes]]:
        return [("error", b"why")]


def test_a_delivery_report_without_an_offset_is_not_written() -> None:
    """Only a report with an offset means the record is in its partition (librdkafka reports a
    DUPLICATE_SEQUENCE_NUMBER answer as delivered, offset None)."""
    assert [written(Report(o)) for o in (0, 41, None, -1001)] == [True, True, False, False]


def test_an_unwritten_record_is_produced_again_and_its_callback_waits() -> None:
    """The callback hears nothing of the offset-less report. The record waits to be written
    again as it was given (its partition and timestamp as librdkafka reported them); flush()
    writes it and waits for its report: with no broker here it times out, and that failure is
    what the callback hears."""
    heard: list[Any] = []
    p = Producer({"bootstrap.servers": "127.0.0.1:9", "message.timeout.ms": 300, "log_level": 0})
    args = ("t", b"v", b"k", -1, 0, [("error", b"why")])
    report = p._guard(
        lambda err, m: heard.append((err is None, m.topic(), m.key(), m.value())), args
    )

    report(None, Report(None))
    assert heard == []
    assert [a for a, _report in p._again] == [("t", b"v", b"k", 2, 1_796_040_000_123, args[5])]
    assert len(p) >= 1  # outstanding, not lost
    assert p.flush(10) == 0 and len(p._again) == 0
    assert heard == [(False, "t", b"k", b"v")]

    heard.clear()
    report(None, Report(7))
    assert heard == [(True, "t", b"k", b"v")]


def test_a_record_without_headers_is_written_again_as_its_report_has_it() -> None:
    """produce() without headers keeps no arguments (one guard per callback, not a closure per
    record): the copy is built from the report, which carries all else of the record."""
    p = Producer({"bootstrap.servers": "127.0.0.1:9", "log_level": 0})

    def cb(err: Any, msg: Any) -> None: ...

    p.produce("t", b"v", b"k", on_delivery=cb)
    p.produce("t", b"w", b"k", on_delivery=cb)
    guard = p._guarded
    assert guard[0] is cb and p._guarded is guard  # reused for the second record

    guard[1](None, Report(None))
    assert [a for a, _report in p._again] == [("t", b"v", b"k", 2, 1_796_040_000_123, None)]
