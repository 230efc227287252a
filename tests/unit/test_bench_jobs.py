"""Issue 17: a bounded job run is split into start-up and the steady rate after warm-up."""

from __future__ import annotations

from pathlib import Path

from flinkpulse.bench.jobs import lever_cfg, split_startup
from flinkpulse.config import load_config, to_toml


def test_steady_rate_counts_from_the_first_sample_past_warm_up() -> None:
    # submitted at t=100; nothing read for 8 s; then 10k events/s; finished at t=118
    samples = [(100.0 + i, 0) for i in range(9)]
    samples += [(108.0 + i, 10_000 * i) for i in range(1, 10)]
    got = split_startup(samples, t_submit=100.0, t_end=118.0, events=100_000)
    assert got["startup_s"] == 9.0  # first sample with a record read
    # warm-up ends at the first sample with >= 10 % read: (109, 10_000)
    assert got["steady_events_per_s"] == 10_000
    assert got["steady_s"] == 9.0


def test_the_end_of_input_flush_is_not_steady_state() -> None:
    # every event read by t=110, the job's windows fire and it ends at t=130
    samples = [(100.0, 0), (101.0, 20_000), (105.0, 60_000), (110.0, 100_000)]
    got = split_startup(samples, t_submit=100.0, t_end=130.0, events=100_000)
    assert got["steady_events_per_s"] == round(80_000 / 9.0)


def test_a_run_that_is_all_start_up_has_no_steady_rate() -> None:
    samples = [(100.0, 0), (101.0, 0), (102.0, 90_000), (103.0, 100_000)]
    got = split_startup(samples, t_submit=100.0, t_end=103.0, events=100_000)
    assert got["startup_s"] == 2.0
    assert got["steady_events_per_s"] is None
    assert split_startup([(100.0, 0)], 100.0, 101.0, 10)["startup_s"] is None


def test_lever_options_reach_the_job_through_its_shipped_config(tmp_path: Path) -> None:
    """The submitted job reads the config back from TOML: list settings must survive it."""
    cfg = lever_cfg(load_config(env={}), "twin+object_reuse+fetch_batch")
    path = tmp_path / "job.toml"
    path.write_text(to_toml(cfg.to_dict()))
    back = load_config(str(path), env={}).flink
    assert back.pairs(back.extra_options) == {"pipeline.object-reuse": "true"}
    assert back.pairs(back.source_properties)["max.poll.records"] == "5000"
    assert load_config(str(path), env={}).flink.extra_options == cfg.flink.extra_options


def test_sink_and_state_levers_survive_the_shipped_config(tmp_path: Path) -> None:
    """`sink_batching` reaches every sink's producer, `rocksdb` and `changelog` the job's
    options."""
    cfg = lever_cfg(load_config(env={}), "udf+sink_batching")
    path = tmp_path / "job.toml"
    path.write_text(to_toml(cfg.to_dict()))
    back = load_config(str(path), env={}).flink
    assert back.pairs(back.sink_properties) == {
        "linger.ms": "20",
        "batch.size": "262144",
        "compression.type": "lz4",
    }
    rocks = lever_cfg(load_config(env={}), "twin+rocksdb").flink
    assert rocks.pairs(rocks.extra_options) == {
        "state.backend.type": "rocksdb",
        "execution.checkpointing.incremental": "true",
    }
    log = lever_cfg(load_config(env={}), "twin+changelog").flink
    assert log.pairs(log.extra_options) == {"state.changelog.enabled": "true"}


def test_the_local_cluster_keeps_a_jobs_state_changes_in_files(tmp_path: Path) -> None:
    """`changelog` needs the cluster's changelog storage to be files, not Flink's default
    "memory", which sends the changes with each checkpoint acknowledgement (over 10 MB)."""
    from flinkpulse.stack.flink import Flink

    base = load_config(env={})
    cfg = base.derive(stack={"state_dir": str(tmp_path)})
    conf = Flink(cfg).flink_conf()
    assert conf["state.changelog.storage"] == "filesystem"
    assert conf["state.changelog.dstl.dfs.base-path"] == f"file://{tmp_path}/flink/changelog"


def test_decode_and_dedup_levers_survive_the_shipped_config(tmp_path: Path) -> None:
    """`vectorized_decode` and `dedup_watermark` reach the job; thread mode always decodes per record;
    an unknown dedup state is refused by its setting's name."""
    import pytest

    from flink_jobs.common import JobContext, deduplicate
    from flinkpulse.errors import UsageError

    assert load_config(env={}).flink.vectorized_decode is False
    cfg = lever_cfg(load_config(env={}), "udf+vectorized_decode+dedup_watermark")
    path = tmp_path / "job.toml"
    path.write_text(to_toml(cfg.to_dict()))
    back = load_config(str(path), env={})
    assert (back.flink.vectorized_decode, back.flink.dedup_state) == (True, "watermark")
    assert not JobContext(cfg=load_config(env={}), t_env=None, job="x").vectorized_decode
    assert JobContext(cfg=back, t_env=None, job="x").vectorized_decode
    thread = lever_cfg(lever_cfg(load_config(env={}), "udf+vectorized_decode"), "udf_thread_mode")
    assert not JobContext(cfg=thread, t_env=None, job="x").vectorized_decode
    with pytest.raises(
        UsageError, match="flink.dedup_state: expected one of auto, ttl, watermark, got 'forever'"
    ):
        deduplicate(None, "src", "view", ["event_id"], ["event_id"], "forever")
