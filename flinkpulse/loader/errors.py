"""The loader's errors, told apart by type (never by searching their text).

ClickHouse errors are classified by the server's symbolic error name, which clickhouse-connect
parses once into ``DatabaseError.name``; Kafka's by ``KafkaError`` codes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flinkpulse.errors import FlinkpulseError

#: ClickHouse errors creating a temporary table that mean it never will be allowed here
NO_STAGE_ERRORS = frozenset(
    {"ACCESS_DENIED", "NOT_ENOUGH_PRIVILEGES", "READONLY", "NOT_IMPLEMENTED"}
)
#: ClickHouse errors reading system.processes that mean there is nothing to wait for
NO_PROCESSES_ERRORS = frozenset({"ACCESS_DENIED", "UNKNOWN_TABLE"})


class Stop(Exception):
    """Raised inside waits when the loader is asked to stop."""


class LoaderError(Exception):
    """A failure the loader recovers from by resuming from ClickHouse (see exactly_once)."""


def _start_over(url: str, user: str, tables: set[str]) -> str:
    """The end of a PositionAhead or TopicRecreated line: how to load the topics as they are."""
    as_user = f"-u {user} " if user else ""
    base = f"curl {as_user}'{url.rstrip('/')}/' --data-binary"
    drops = " && ".join(f"{base} 'TRUNCATE TABLE {t}'" for t in sorted(tables))
    return (
        "The loader stops rather than skip records or load them twice. To load the topics as "
        f"they are now, drop the old rows (`{drops}`) or load into another database "
        "(`--database`)"
    )


class PositionAhead(FlinkpulseError):
    """ClickHouse holds rows of a partition past that partition's end in Kafka: they came from
    an earlier topic of that name (deleted and recreated, or Kafka's data reset). Resuming
    there would skip the new topic's records, or load them over the old rows' offsets: the
    loader stops and says how to start over (not retried)."""

    def __init__(self, url: str, user: str, ahead: list[tuple[str, int, int, int, str]]) -> None:
        topic, partition, start, high, table = ahead[0]
        more = f" (and {len(ahead) - 1} more partition(s))" if len(ahead) > 1 else ""
        super().__init__(
            f"{topic}[{partition}]{more}: ClickHouse holds rows of it up to offset {start - 1} "
            f"({table}), but the partition ends at offset {high} in Kafka: the topic was "
            "recreated, or Kafka's data reset, after those rows were loaded. "
            + _start_over(url, user, {t for *_, t in ahead})
        )


class TopicRecreated(FlinkpulseError):
    """ClickHouse holds rows of a topic whose Kafka topic ID changed since they were loaded
    (deleted and recreated, or Kafka's data reset): its offsets started over, so resuming from
    the rows would skip the new topic's first records (not retried)."""

    def __init__(self, url: str, user: str, changed: list[tuple[str, str, str, str]]) -> None:
        topic, table, was, now = changed[0]
        more = f" (and {len(changed) - 1} more topic(s))" if len(changed) > 1 else ""
        super().__init__(
            f"{topic}{more}: ClickHouse holds rows of it ({table}) loaded from the topic with ID "
            f"{was}, but Kafka's topic of that name has ID {now}: the topic was recreated, or "
            "Kafka's data reset, after those rows were loaded. "
            + _start_over(url, user, {t for _, t, *_ in changed})
        )


class TableMissing(FlinkpulseError):
    """A table the loader fills does not exist: the user must migrate (not retried)."""

    def __init__(self, database: str, table: str) -> None:
        super().__init__(
            f"table {database}.{table} does not exist — run `flinkpulse clickhouse migrate`"
        )


class TopicUnavailable(LoaderError):
    """A topic the loader consumes is missing from Kafka's metadata."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"Kafka topic {topic} is not available")


class DeadLettersUnacknowledged(LoaderError):
    """Kafka did not acknowledge dead letters: their batch must not be inserted."""

    def __init__(self, left: int) -> None:
        super().__init__(f"{left} dead letters not acknowledged by Kafka")


class InsertsStillRunning(LoaderError):
    """An insert of ours from before a crash still runs in ClickHouse after the deadline."""

    def __init__(self, n: int) -> None:
        super().__init__(f"{n} earlier insert(s) still running in ClickHouse")


def clickhouse_error_name(e: BaseException) -> str | None:
    """ClickHouse's symbolic error name of `e` (e.g. ``ACCESS_DENIED``), None if it has none."""
    name: Any = getattr(e, "name", None)
    return name if isinstance(name, str) else None


def first_line(e: BaseException | None) -> str:
    """The first line of an error's text (its type name if it has none), for one log line."""
    text = str(e).strip() if e is not None else ""
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


@dataclass
class Control:
    """Signals between the main thread and the insert thread: stop asked, an insert failed."""

    stop: threading.Event = field(default_factory=threading.Event)
    failed: threading.Event = field(default_factory=threading.Event)
    #: the failure that set `failed` (logged when the loader resumes)
    error: BaseException | None = None

    def fail(self, e: BaseException) -> None:
        """Everything in memory is void: the main thread resumes from ClickHouse."""
        self.error = e
        self.failed.set()

    def recovered(self) -> BaseException | None:
        """Clear the failure; the error it had."""
        err, self.error = self.error, None
        self.failed.clear()
        return err

    def sleep(self, seconds: float) -> None:
        """Wait, or raise Stop as soon as a stop is asked."""
        if self.stop.wait(seconds):
            raise Stop
