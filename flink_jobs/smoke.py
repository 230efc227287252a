"""smoke: the smallest end-to-end Flink job — Kafka JSON in, one Python UDF, Kafka JSON out.

It proves a cluster can run flinkpulse jobs (connector jars, Python workers, `udfs/` import):
each input row {"player_id", "kills", "deaths"} becomes {"player_id", "kd_ratio"}.

    flink run -py flink_jobs/smoke.py -- --input smoke.in --output smoke.out
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flinkpulse.config import Config


def build(t_env: Any, cfg: Config, input_topic: str, output_topic: str) -> Any:
    """Register source, sink and the kd_ratio UDF; return the INSERT's Table."""
    from pyflink.table import DataTypes, Schema, TableDescriptor
    from pyflink.table.udf import udf

    from udfs.gaming import kd_ratio

    t_env.create_temporary_function("kd_ratio", udf(kd_ratio, result_type=DataTypes.DOUBLE()))

    def kafka(topic: str, schema: Any) -> Any:
        return (
            TableDescriptor.for_connector("kafka")
            .schema(schema)
            .option("topic", topic)
            .option("properties.bootstrap.servers", cfg.kafka.bootstrap_servers)
            .format("json")
        )

    t_env.create_temporary_table(
        "smoke_in",
        kafka(
            input_topic,
            Schema.new_builder()
            .column("player_id", DataTypes.STRING())
            .column("kills", DataTypes.INT())
            .column("deaths", DataTypes.INT())
            .build(),
        )
        .option("properties.group.id", "flinkpulse-smoke")
        .option("scan.startup.mode", "earliest-offset")
        .build(),
    )
    t_env.create_temporary_table(
        "smoke_out",
        kafka(
            output_topic,
            Schema.new_builder()
            .column("player_id", DataTypes.STRING())
            .column("kd_ratio", DataTypes.DOUBLE())
            .build(),
        ).build(),
    )
    return t_env.sql_query("SELECT player_id, kd_ratio(kills, deaths) AS kd_ratio FROM smoke_in")


def main(argv: list[str] | None = None) -> None:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    from flink_jobs.common import connector_jars
    from flinkpulse.config import load_config

    p = argparse.ArgumentParser(prog="flink_jobs/smoke.py")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--config")
    args, _ = p.parse_known_args(argv)
    cfg = load_config(args.config)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    jars = connector_jars(cfg)
    if jars:
        t_env.get_config().set("pipeline.jars", ";".join(j.as_uri() for j in jars))
    t_env.get_config().set("pipeline.name", f"flinkpulse-smoke-{args.input}")
    table = build(t_env, cfg, args.input, args.output)
    table.execute_insert("smoke_out")


if __name__ == "__main__":
    main(sys.argv[1:])
