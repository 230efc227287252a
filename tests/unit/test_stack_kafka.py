"""The Kafka component formats its storage for any cluster id, with the real StorageTool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flinkpulse.config import load_config
from flinkpulse.stack.kafka import Kafka, new_cluster_id

#: the jars `make setup` resolved, wherever the default config keeps them
JARS = load_config(env={}).stack.jars_path()


def test_new_cluster_ids_never_start_with_a_dash() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)


@pytest.mark.skipif(
    not any((JARS / "kafka").glob("*.jar")), reason="no Kafka jars: run `make setup`"
)
def test_storage_formats_with_an_id_that_looks_like_an_option(tmp_path: Path) -> None:
    # One random id in 64 starts with "-": CI once failed with "--cluster-id: expected one
    # argument" when the id was passed as a separate argument.
    cfg = load_config(env={}).derive(stack={"state_dir": str(tmp_path), "jars_dir": str(JARS)})
    kafka = Kafka(cfg)
    kafka.dir.mkdir(parents=True)
    (kafka.dir / "log4j2.properties").write_text("")
    kafka.props_file.write_text(kafka.server_properties())
    res = subprocess.run(
        kafka.format_command("-Uo5ZJ1iQDyVfP4xoZv1bg"), capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    meta = (kafka.dir / "data" / "meta.properties").read_text()
    assert "cluster.id=-Uo5ZJ1iQDyVfP4xoZv1bg" in meta.splitlines()
