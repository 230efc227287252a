"""The configuration is built once and never changes: frozen sections, changed copies by
`derive`, and the shortcut flags `--topic-prefix` / `--jobmanager` declared once for every
entry point (before or after the subcommand)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from flinkpulse.cli import build_parser
from flinkpulse.config import Config, config_from_args, load_config, write_config_file
from flinkpulse.stack import settings_drift
from flinkpulse.stack.base import Component, Proc

pytestmark = pytest.mark.unit

ENV: dict[str, str] = {}  # no FLINKPULSE_* of the test process: defaults only


def test_config_and_sections_are_frozen() -> None:
    cfg = load_config(env=ENV)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.kafka.topic_prefix = "x."  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.kafka = cfg.kafka  # type: ignore[misc]
    assert isinstance(cfg.stack.components, tuple)
    assert load_config(overrides=["stack.components=kafka, flink"], env=ENV).stack.components == (
        "kafka",
        "flink",
    )


def test_derive_changes_a_copy_only() -> None:
    cfg = load_config(overrides=["jobs.web_traffic.session_gap_s=60"], env=ENV)
    d = cfg.derive(
        kafka={"topic_prefix": "t1.", "partitions": 2},
        clickhouse={"database": "t1"},
        jobs={"web_traffic": {"top_n": 5}, "device_stats": {"window_s": 30}},
    )
    assert (d.kafka.topic("web.access-logs"), d.kafka.partitions) == ("t1.web.access-logs", 2)
    assert d.clickhouse.database == "t1"
    assert d.jobs == {
        "web_traffic": {"session_gap_s": 60, "top_n": 5},
        "device_stats": {"window_s": 30},
    }
    # the original is untouched, and unchanged sections are shared, not copied
    assert (cfg.kafka.topic_prefix, cfg.kafka.partitions, cfg.clickhouse.database) == (
        "",
        4,
        "flinkpulse",
    )
    assert cfg.jobs == {"web_traffic": {"session_gap_s": 60}}
    assert d.stack is cfg.stack
    assert cfg.with_prefix("p.").kafka.topic_prefix == "p."
    with pytest.raises(TypeError):
        cfg.derive(kafka={"topic_prefx": "typo."})
    with pytest.raises(TypeError):
        cfg.derive(kafkaa={"topic_prefix": "typo."})


def test_finalize_fills_addresses_from_the_stack_ports() -> None:
    cfg = Config().derive(stack={"kafka_port": 19092, "flink_rest_port": 18081}).finalize()
    assert (cfg.kafka.bootstrap_servers, cfg.flink.jobmanager) == (
        "127.0.0.1:19092",
        "127.0.0.1:18081",
    )
    given = load_config(env={"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"})
    assert given.kafka.bootstrap_servers == "kafka:9092"


@pytest.mark.parametrize(
    "argv",
    [
        ["--topic-prefix", "t.", "--jobmanager", "jm:8081", "jobs", "submit", "all"],
        ["jobs", "submit", "all", "--topic-prefix", "t.", "--jobmanager", "jm:8081"],
        ["--topic-prefix", "t.", "jobs", "submit", "all", "--jobmanager=jm:8081"],
        [
            "--set",
            "kafka.topic_prefix=z.",
            "sql",
            "--topic-prefix",
            "t.",
            "--jobmanager",
            "jm:8081",
        ],
    ],
)
def test_shortcut_flags_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args, env=ENV)
    assert (cfg.kafka.topic_prefix, cfg.flink.jobmanager) == ("t.", "jm:8081")


def test_a_shortcut_after_the_subcommand_does_not_hide_one_before_it() -> None:
    args = build_parser().parse_args(["--topic-prefix", "t.", "archive", "views"])
    cfg = config_from_args(args, env=ENV)
    assert (cfg.kafka.topic_prefix, cfg.flink.jobmanager) == ("t.", "127.0.0.1:8081")
    plain = config_from_args(build_parser().parse_args(["stack", "status"]), env=ENV)
    assert plain.kafka.topic_prefix == ""


def test_a_job_main_takes_the_same_flags() -> None:
    from flink_jobs.common import parse_args

    cfg, args = parse_args("web_traffic", ["--topic-prefix", "j.", "--set", "flink.parallelism=3"])
    assert (cfg.kafka.topic_prefix, cfg.flink.parallelism) == ("j.", 3)


def test_a_job_main_takes_what_flink_run_s_would_restore() -> None:
    """`--restore`/`--claim-mode`: the warm client's stand-in for `flink run -s/--claimMode`."""
    from flink_jobs.common import parse_args

    _, args = parse_args("web_traffic", ["--restore", "/s/chk-3", "--claim-mode", "claim"])
    assert (args.restore, args.claim_mode) == ("/s/chk-3", "claim")
    _, plain = parse_args("web_traffic", [])
    assert (plain.restore, plain.claim_mode) == (None, "no_claim")
    with pytest.raises(SystemExit) as e:
        parse_args("web_traffic", ["--restore", "/s", "--claim-mode", "legacy"])
    assert e.value.code == 2


def test_the_config_file_a_started_process_gets_reads_back_the_same(tmp_path: Path) -> None:
    """What jobs and the stack's processes are handed (`write_config_file`): every setting,
    lists and job parameters included, owner-only (it may carry credentials from the env)."""
    cfg = load_config(
        overrides=[
            "kafka.topic_prefix=t.",
            "stack.components=kafka, loader",
            "flink.checkpoint_interval_s=2.5",
            "flink.dedup=false",
            "jobs.web_traffic.session_gap_s=30",
            "clickhouse.password=not-in-the-repo",
        ],
        env=ENV,
    )
    path = write_config_file(cfg, tmp_path / "c" / "config.toml")
    assert load_config(path, env={}) == cfg
    assert path.stat().st_mode & 0o777 == 0o600


class _Probe(Component):
    """A stack component whose one process writes the config it loads, then waits."""

    name = "probe"
    reads_config = True

    def procs(self) -> list[Proc]:
        code = (
            "import json, sys, time; from flinkpulse.config import load_config; "
            "open(sys.argv[1], 'w').write(json.dumps(load_config().to_dict())); time.sleep(60)"
        )
        return [Proc(self.name, [sys.executable, "-c", code, str(self.dir / "seen.json")])]

    def healthy(self) -> bool:
        return (self.dir / "seen.json").exists()


def test_stack_processes_read_the_config_the_stack_was_started_with(tmp_path: Path) -> None:
    """Flags, --set and --config reach the loader, bridges and servers `stack up` starts: they
    run in their component's directory (no ./flinkpulse.toml) and see no flags of their own, so
    `--topic-prefix t. stack up` used to start a loader of the unprefixed topics."""
    # the test process's environment too: the child sees it, as the parent did
    cfg = load_config(
        overrides=[f"stack.state_dir={tmp_path}", "kafka.topic_prefix=t.", "jobs.x.y=1"]
    )
    comp = _Probe(cfg)
    comp.start()
    try:
        comp.wait_ready(30)
        seen = json.loads((comp.dir / "seen.json").read_text())
        assert seen == json.loads(json.dumps(cfg.to_dict()))
        assert seen["kafka"]["topic_prefix"] == "t."
        assert comp.started_config() == cfg
        # `stack up` with other settings names what the running one was started with
        assert settings_drift(comp.started_config(), cfg) == []
        assert settings_drift(comp.started_config(), cfg.with_prefix("u.")) == [
            "kafka.topic_prefix='t.' (now 'u.')"
        ]
        # only the sections the component's processes use count (the ClickHouse server's
        # process reads none, a loader does not care about Flink's parallelism...)
        other = cfg.derive(flink={"parallelism": 2})
        assert settings_drift(comp.started_config(), other, ("kafka", "loader")) == []
    finally:
        comp.stop()
    assert comp.started_config() is None  # not running: nothing to compare with
    assert settings_drift(None, cfg) == []


class _Jvm(Component):
    """A component whose processes read no flinkpulse config (as Kafka's or Flink's JVMs):
    two processes that only wait."""

    name = "jvm"
    settings = ("stack.host", "stack.flink_*")

    def procs(self) -> list[Proc]:
        sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
        return [Proc(f"{self.name}-1", sleep), Proc(f"{self.name}-2", sleep)]

    def healthy(self) -> bool:
        return self.complete()


def test_a_component_that_reads_no_config_keeps_what_it_was_started_with(tmp_path: Path) -> None:
    """`stack up` compares a running JVM component with the config it was started with, among
    its own settings: `stack.flink_slots` shows for Flink, Kafka's port does not. A partial
    restart (one process died) keeps the snapshot: the survivor still runs the old settings."""
    import os
    import signal

    from flinkpulse.stack.flink import Flink
    from flinkpulse.stack.kafka import Kafka

    cfg = load_config(overrides=[f"stack.state_dir={tmp_path}", "stack.flink_slots=2"])
    comp = _Jvm(cfg)
    comp.start()
    try:
        comp.wait_ready(30)
        assert comp.started_config() == cfg
        port = cfg.stack.kafka_port
        other = cfg.derive(stack={"flink_slots": 3, "kafka_port": port + 1})
        assert settings_drift(comp.started_config(), other, comp.settings) == [
            "stack.flink_slots=2 (now 3)"
        ]
        assert settings_drift(comp.started_config(), other, Flink.settings) == [
            "stack.flink_slots=2 (now 3)"
        ]
        assert settings_drift(comp.started_config(), other, Kafka.settings) == [
            f"stack.kafka_port={port} (now {port + 1})"
        ]
        os.kill(comp.pids()["jvm-2"], signal.SIGKILL)
        _Jvm(other).start()
        assert settings_drift(comp.started_config(), other, comp.settings) == [
            "stack.flink_slots=2 (now 3)"
        ]
    finally:
        comp.stop()
    assert comp.started_config() is None


def test_every_component_s_settings_name_real_settings_and_its_snapshot_is_its_own() -> None:
    """Each pattern of a component's `settings` matches a setting (a typo would hide drift), and
    no component uses the snapshot's path for a file of its own (Superset's `config_file`, its
    superset_config.py, once was that name)."""
    import fnmatch

    from flinkpulse.stack import COMPONENTS, component, setting_globs

    cfg = load_config()
    keys = [f"{sec}.{k}" for sec, vals in cfg.to_dict().items() if sec != "jobs" for k in vals]
    for name in COMPONENTS:
        comp = component(cfg, name)
        for pattern, glob in zip(comp.settings, setting_globs(comp.settings), strict=True):
            assert fnmatch.filter(keys, glob), (name, pattern)
        assert type(comp).settings_file is Component.settings_file, name
        assert comp.settings_file == comp.dir / "config.toml"


def test_cli_docs_name_every_environment_alias() -> None:
    """docs/cli.md names every plain environment variable the config reads (config._ENV_ALIASES)."""
    from flinkpulse.config import _ENV_ALIASES
    from flinkpulse.paths import ROOT

    text = (ROOT / "docs" / "cli.md").read_text()
    assert [v for v in _ENV_ALIASES if f"`{v}`" not in text] == []


def test_the_environment_names_that_set_the_config() -> None:
    """What the warm job client drops from the environment `stack up` ran in: a job's config
    is its --config file (flinkpulse.submitter); the stack's own markers stay."""
    from flinkpulse.config import sets_config
    from flinkpulse.stack.base import COMPONENT_ENV, OWNER_ENV

    for name in ("KAFKA_BOOTSTRAP_SERVERS", "FLINKPULSE_KAFKA__TOPIC_PREFIX", "FLINKPULSE_CONFIG"):
        assert sets_config(name), name
    for name in (OWNER_ENV, COMPONENT_ENV, "PATH", "FLINK_CONF_DIR", "SUBMIT_ARGS"):
        assert not sets_config(name), name
