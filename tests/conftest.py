"""Shared fixtures.

One local stack per test session: a component already running (e.g. `flinkpulse stack up`
before `pytest`, or a service given by address through the environment) is reused; otherwise
the fixture starts it and stops it at the end of the session. Every test gets its own topic
prefix / database so tests never see each other's data.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator

import pytest

from flinkpulse import stack
from flinkpulse.config import Config, load_config

#: tests record their measured outcomes; docs/RELIABILITY.md is written at session end
pytest_plugins = ["tests.reliability_report"]


@pytest.fixture(scope="session")
def base_cfg() -> Config:
    return load_config()


@pytest.fixture(scope="session")
def ensure_stack(base_cfg: Config) -> Iterator[Callable[..., Config]]:
    """`ensure_stack("kafka", "flink")` starts what is not running yet; returns the config."""
    started: list[str] = []

    def ensure(*names: str) -> Config:
        for name in names:
            comp = stack.component(base_cfg, name)
            if comp.running() and comp.healthy():
                continue
            # only what this session started from nothing is stopped at its end; a component
            # that was up but unhealthy (someone else's) is repaired and left running
            fresh = not comp.running()
            stack.up(base_cfg, [name], log=False)
            if fresh:
                started.append(name)
        return base_cfg

    yield ensure
    if started:
        stack.down(base_cfg, started, log=False)


@pytest.fixture
def prefix() -> str:
    """A unique topic/database prefix for one test."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cfg(base_cfg: Config, prefix: str) -> Config:
    """A per-test copy of the config whose topics are all prefixed with `prefix.`."""
    c = copy.deepcopy(base_cfg)
    c.kafka.topic_prefix = f"{prefix}."
    return c
