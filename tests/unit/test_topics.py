"""flinkpulse.topics: the one home of the Kafka topology and its admin helpers."""


def test_a_delivery_report_without_an_offset_is_not_written() -> None:
    """topics.written: only a report with an offset means the record is in its partition
    (librdkafka reports a DUPLICATE_SEQUENCE_NUMBER answer as delivered, offset None)."""
    from flinkpulse.topics import written

    class Report:
        def __init__(self, offset: int | None) -> None:
            self._offset = offset

        def offset(self) -> int | None:
            return self._offset

    assert [written(Report(o)) for o in (0, 41, None, -1001)] == [True, True, False, False]
