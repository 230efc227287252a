"""Flink's own `avro-confluent` format (the Java Confluent client) against our registry:
a job reads records our producer wrote (GET /schemas/ids/{id}) and writes results whose schema
Flink registers itself (POST /subjects/{s}/versions)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from flinkpulse.config import Config
from flinkpulse.schemas import latest_schema
from producers import streams
from producers.base import TimeConfig
from producers.kafka import AvroKafkaProducer

pytestmark = [pytest.mark.integration, pytest.mark.flink_local]

COLUMNS = """event_id STRING NOT NULL, match_id STRING NOT NULL, player_id STRING NOT NULL,
    team STRING NOT NULL, event_type STRING NOT NULL, target_player_id STRING,
    damage DOUBLE NOT NULL, headshot BOOLEAN NOT NULL, weapon STRING NOT NULL,
    event_time TIMESTAMP(3) NOT NULL, platform STRING"""


def test_flink_avro_confluent_reads_and_registers(ensure_stack: Any, cfg: Config) -> None:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    from flinkpulse.stack.java import jars_dir

    ensure_stack("kafka", "registry")
    n = 300
    stats = AvroKafkaProducer(cfg, ["gaming.player-events"]).run(
        streams.stream("gaming", 1, TimeConfig(start_ms=int(time.time() * 1000) - 1_800_000)),
        count=n,
    )
    assert stats.delivered == n
    src, dst = cfg.kafka.topic("gaming.player-events"), cfg.kafka.topic("kills-per-player")
    reader = json.dumps(latest_schema("PlayerEvent")).replace("'", "''")
    kafka = (
        f"'connector' = 'kafka', 'properties.bootstrap.servers' = '{cfg.kafka.bootstrap_servers}'"
    )
    avro = f"'value.format' = 'avro-confluent', 'value.avro-confluent.url' = '{cfg.registry.url}'"
    jars = sorted(Path(jars_dir(cfg, "flink")).glob("*.jar"))
    t = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t.get_config().set("pipeline.jars", ";".join(j.resolve().as_uri() for j in jars))
    t.get_config().set("parallelism.default", "1")
    t.execute_sql(
        f"CREATE TABLE src ({COLUMNS}) WITH ({kafka}, 'topic' = '{src}', "
        "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', "
        f"{avro}, 'value.avro-confluent.schema' = '{reader}')"
    )
    t.execute_sql(
        f"CREATE TABLE dst (player_id STRING, events BIGINT) WITH ({kafka}, 'topic' = '{dst}', "
        f"{avro}, 'value.avro-confluent.subject' = '{dst}-value')"
    )
    t.execute_sql("INSERT INTO dst SELECT player_id, COUNT(*) FROM src GROUP BY player_id").wait()
    with t.execute_sql("SELECT COUNT(*), COUNT(platform) FROM src").collect() as rows:
        assert [tuple(r) for r in rows] == [(n, n)]
    latest = requests.get(f"{cfg.registry.url}/subjects/{dst}-value/versions/latest", timeout=5)
    fields = [f["name"] for f in json.loads(latest.json()["schema"])["fields"]]
    assert fields == ["player_id", "events"]
