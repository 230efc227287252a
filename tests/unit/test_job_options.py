"""The Flink options every job gets come from the typed config."""

from __future__ import annotations

import pytest

from flink_jobs.common import flink_table_options
from flinkpulse.config import load_config


def test_source_idle_timeout_comes_from_the_config() -> None:
    """Idleness decides when a quiet partition stops holding the watermark; a job catching
    up a backlog raises it (docs/event-time.md), so it must not be a constant."""
    default = flink_table_options(load_config(overrides=[]), "web_traffic")
    assert default["table.exec.source.idle-timeout"] == "10 s"
    raised = load_config(overrides=["flink.idle_timeout_s=60"])
    assert flink_table_options(raised, "web_traffic")["table.exec.source.idle-timeout"] == "60 s"
    assert flink_table_options(raised, "web_traffic")["table.local-time-zone"] == "UTC"


def test_object_reuse_is_on_by_default_and_a_setting_or_an_extra_option_turns_it_off() -> None:
    """Chained operators pass records without copies (bench/README.md: 1.3-2x the UDF jobs);
    `flink.object_reuse` is the switch, and `extra_options` still has the last word."""
    assert (
        flink_table_options(load_config(overrides=[]), "device_stats")["pipeline.object-reuse"]
        == "true"
    )
    off = load_config(overrides=["flink.object_reuse=false"])
    assert flink_table_options(off, "device_stats")["pipeline.object-reuse"] == "false"
    extra = load_config(overrides=["flink.extra_options=pipeline.object-reuse=false"])
    assert flink_table_options(extra, "device_stats")["pipeline.object-reuse"] == "false"


def test_each_python_operator_gets_its_own_worker_unless_the_slot_is_to_share_one() -> None:
    """Flink shares one Python worker per slot while the workers draw managed memory, so the
    decoders of a many-source job queue for one process (bench/README.md: security_alerts
    1.3x with a worker each); `flink.python_worker_per_operator = false` is Flink's way."""
    key = "python.fn-execution.memory.managed"
    assert flink_table_options(load_config(overrides=[]), "security_alerts")[key] == "false"
    shared = load_config(overrides=["flink.python_worker_per_operator=false"])
    assert flink_table_options(shared, "security_alerts")[key] == "true"


def test_the_session_cluster_gives_sql_client_sessions_the_jobs_python_options() -> None:
    """A SQL client session runs without the jobs' options: the cluster's config.yaml must
    hold the same Python worker settings, from the same place (FlinkConfig.python_options)."""
    from flinkpulse.stack.flink import Flink

    cfg = load_config(
        overrides=["flink.bundle_size=5000", "flink.python_worker_per_operator=false"]
    )
    jobs = flink_table_options(cfg, "device_stats")
    cluster = Flink(cfg).flink_conf()
    python = {k: v for k, v in jobs.items() if k.startswith("python.fn-execution.")}
    assert python == cfg.flink.python_options()
    assert python["python.fn-execution.bundle.size"] == "5000"
    assert python["python.fn-execution.memory.managed"] == "true"
    assert {k: cluster[k] for k in python} == python


def test_an_option_list_in_brackets_is_refused_in_one_line_not_sent_to_flink() -> None:
    """`--set flink.extra_options=["a=b"]` is one item, `["a=b"]`: it used to reach Flink as
    an option named `["a`; lists are comma-separated."""
    import pytest

    from flinkpulse.errors import UsageError

    bad = load_config(overrides=['flink.extra_options=["pipeline.object-reuse=false"]'])
    with pytest.raises(UsageError, match=r"option name as key.*comma-separated: a=1,b=2\)$"):
        flink_table_options(bad, "device_stats")
    two = load_config(overrides=["flink.sink_properties=linger.ms=20,batch.size=1"])
    assert two.flink.pairs(two.flink.sink_properties) == {"linger.ms": "20", "batch.size": "1"}


def test_several_jobs_refuses_an_unknown_job_in_one_line_with_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`flink_jobs/several.py` (one client for several jobs) checks its --jobs before it
    builds any: a typo must not leave the jobs before it submitted."""
    from flink_jobs import several

    with pytest.raises(SystemExit) as e:
        several.main(["--jobs", "player_stats,nosuch", "--config", "x.toml"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown job(s) nosuch" in err and "player_stats" in err


def test_submitted_line_of_several_jobs_is_what_submit_jobs_reads() -> None:
    """Each job's main prints `submitted <job>: job id <id>`; `submit_jobs` maps ids by it."""
    from flinkpulse.flinkrun import _SUBMITTED

    out = "noise\nsubmitted web_traffic: job id " + "ab" * 16 + "\nJob has been submitted"
    assert [m.groups() for m in _SUBMITTED.finditer(out)] == [("web_traffic", "ab" * 16)]


def test_a_jobs_needs_keep_event_time_and_the_dedup_key_and_refuse_an_unknown_field() -> None:
    """common.Needs: the fields a job reads of a source, in the record's order, always with
    event_time and the source's dedup key (topics.DEDUP_KEYS); a field the record has not is
    refused at build time in one line, not left to a planner error."""
    from flink_jobs.common import Needs, source_needs
    from flinkpulse.errors import UsageError

    record = ["device_id", "home_id", "room", "sensor_type", "value", "unit", "event_time"]
    kept = Needs(("value", "home_id")).columns("iot.sensor-readings", record)
    assert kept == ["device_id", "home_id", "sensor_type", "value", "event_time"]
    assert Needs(("user_id",)).columns(
        "web.access-logs", ["event_id", "user_id", "event_time"]
    ) == [
        "event_id",
        "user_id",
        "event_time",
    ]
    with pytest.raises(UsageError, match="iot.sensor-readings: no field watts in its record"):
        Needs(("watts",)).columns("iot.sensor-readings", record)
    # the same choice over (name, type) pairs, types carried along; the predicate as a conjunct
    typed = [(n, f"T{i}") for i, n in enumerate(record)]
    assert Needs(("value", "home_id")).select("iot.sensor-readings", typed) == [
        ("device_id", "T0"),
        ("home_id", "T1"),
        ("sensor_type", "T3"),
        ("value", "T4"),
        ("event_time", "T6"),
    ]
    assert Needs(("value",), "value > 0").conjunct() == " AND (value > 0)"
    assert Needs(("value",)).conjunct() == ""
    needs = {"sensor_readings": Needs(("value",), "sensor_type = 'POWER'")}
    assert source_needs(load_config(overrides=[]), needs) == needs
    assert source_needs(load_config(overrides=["flink.source_needs=false"]), needs) == {}


def test_a_restore_claims_its_snapshot_only_with_the_changelog_state_backend() -> None:
    """Flink's default no_claim forces a full first checkpoint after a restore, which the
    changelog backend cannot take: the resumed job failed every checkpoint (FLINK-40476). With
    the backend on, `flink run` gets --claimMode claim; otherwise the snapshot is left alone."""
    assert load_config(overrides=[], env={}).flink.claim_mode() == "no_claim"
    on = load_config(overrides=["flink.extra_options=state.changelog.enabled=true"], env={})
    assert on.flink.claim_mode() == "claim"
    off = load_config(overrides=["flink.extra_options=state.changelog.enabled=false"], env={})
    assert off.flink.claim_mode() == "no_claim"


def test_a_restore_onto_other_operators_says_what_to_do() -> None:
    """Flink's first exception line is a generic FlinkException; the line that tells is deeper."""
    from flinkpulse.flinkrun import _first_cause

    out = (
        "org.apache.flink.util.FlinkException: Failed to execute job 'flinkpulse-player_stats'.\n"
        "Caused by: java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint "
        "file:/x. Cannot map checkpoint/savepoint state for operator a440efd1 to the new "
        "program, because the operator is not available in the new program.\n"
    )
    cause = _first_cause(out)
    assert cause.startswith("the snapshot holds the state of operators the job no longer has")
    assert "cancel the job and submit it afresh" in cause
    assert "Flink: Cannot map checkpoint/savepoint state for operator a440efd1" in cause
    assert _first_cause("java.io.IOException: disk full\n") == "IOException: disk full"


@pytest.mark.flink_local
def test_start_at_reads_the_event_topics_from_a_kafka_timestamp() -> None:
    """`--start-at MS` (submit_jobs(start_at_ms=…)): a fresh job that must not catch up older
    input reads from that Kafka timestamp; without it, from `--startup-mode` (earliest)."""
    pytest.importorskip("pyflink.table")
    from flink_jobs.common import JobContext, _source, parse_args

    cfg, args = parse_args("web_traffic", ["--start-at", "1796640000000"])
    assert args.start_at_ms == 1796640000000

    def options(ctx: JobContext) -> str:
        return str(_source(ctx, "web.access-logs").format("raw").build())

    at = options(JobContext(cfg=cfg, t_env=None, job="web_traffic", start_at_ms=args.start_at_ms))
    assert "'scan.startup.mode' = 'timestamp'" in at
    assert "'scan.startup.timestamp-millis' = '1796640000000'" in at
    default = options(JobContext(cfg=cfg, t_env=None, job="web_traffic"))
    assert "'scan.startup.mode' = 'earliest-offset'" in default
    assert "scan.bounded" not in default + at
    # a bounded replay starts at its range's start and ends at its end, whatever `--start-at`
    replay = options(
        JobContext(cfg=cfg, t_env=None, job="web_traffic", start_at_ms=5, bounded=(1000, 2000))
    )
    assert "'scan.startup.timestamp-millis' = '1000'" in replay
    assert "'scan.bounded.mode' = 'timestamp'" in replay
    assert "'scan.bounded.timestamp-millis' = '2000'" in replay
