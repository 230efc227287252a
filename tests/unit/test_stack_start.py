"""`stack up` starts components side by side, each after those it needs (real processes in a
temporary state directory, no stack)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from flinkpulse import stack
from flinkpulse.config import Config, load_config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.stack.base import Component, Proc

pytestmark = pytest.mark.unit

#: a process that says it is ready after `delay` seconds, then waits
SERVE = "import pathlib, sys, time; time.sleep(float(sys.argv[2])); pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"


class _Fake(Component):
    """Ready once its process has touched its file; records when `start` began."""

    delay = 1.5
    exits = False

    def __init__(self, cfg: Config, name: str, needs: tuple[str, ...] = ()) -> None:
        self.name, self.needs = name, needs
        super().__init__(cfg)
        self.began = 0.0

    def procs(self) -> list[Proc]:
        code = "raise SystemExit(1)" if self.exits else SERVE
        return [Proc(self.name, [sys.executable, "-c", code, str(self.mark), str(self.delay)])]

    @property
    def mark(self) -> Path:
        return self.dir / "ready"

    def start(self) -> None:
        self.began = time.monotonic()
        self.mark.unlink(missing_ok=True)
        super().start()

    def healthy(self) -> bool:
        return self.mark.exists()


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return load_config(overrides=[f"stack.state_dir={tmp_path}"])


def test_independent_components_start_at_once_and_a_dependent_one_after_its_need(
    cfg: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka, flink = _Fake(cfg, "kafka"), _Fake(cfg, "flink")
    registry = _Fake(cfg, "registry", needs=("kafka", "clickhouse"))  # clickhouse: not started
    comps = [kafka, registry, flink]
    t0 = time.monotonic()
    try:
        stack._start(comps, log=True)
        took = time.monotonic() - t0
        assert flink.began - kafka.began < 1.0  # side by side, not after kafka's 1.5 s
        assert registry.began - t0 >= kafka.delay  # after kafka was ready
        assert kafka.delay * 2 <= took < kafka.delay * 3 + 2, took  # two starts in a row, not three
    finally:
        for c in comps:
            c.stop()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "  starting kafka, registry, flink ..."
    assert sorted(line.split()[0] for line in out[1:]) == ["flink", "kafka", "registry"]
    assert all(" ready at " in line for line in out[1:])


def test_a_failed_start_is_raised_and_what_needs_it_never_starts(
    cfg: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka, registry, flink = (
        _Fake(cfg, "kafka"),
        _Fake(cfg, "registry", needs=("kafka",)),
        _Fake(cfg, "flink"),
    )
    kafka.exits = True
    try:
        with pytest.raises(FlinkpulseError, match=r"^kafka died during start"):
            stack._start([kafka, registry, flink], log=True)
        assert registry.began == 0.0 and not registry.running()
        assert flink.healthy()  # what does not need kafka started anyway
    finally:
        for c in (kafka, registry, flink):
            c.stop()
    out = capsys.readouterr().out
    assert "  kafka       failed" in out and "  registry    failed" in out
