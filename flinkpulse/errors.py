"""User-facing errors: printed as one readable line by the CLI, never as a traceback."""

from __future__ import annotations


class FlinkpulseError(Exception):
    """An error whose message is meant for the user as-is (one line, says what to do)."""

    exit_code = 1


class UsageError(FlinkpulseError):
    """A bad argument or configuration value."""

    exit_code = 2


class ServiceUnreachable(FlinkpulseError):
    """A service the command needs is not answering."""

    def __init__(self, name: str, address: str, hint: str = "run `flinkpulse stack up`") -> None:
        super().__init__(f"{name} is not reachable at {address} — {hint}")
        self.name = name
        self.address = address
