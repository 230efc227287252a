"""One topology everywhere: every deployment names the topics of flinkpulse.topics.TOPOLOGY and
the jobs of flink_jobs/, with the same settings.

Each deployment's configuration is rendered the way it runs: deploy/config/<target>.toml through
flinkpulse.config.load_config with that deployment's environment (compose service environment,
the FlinkDeployment/loader pod env; secrets stand in as placeholders). Topics are read from what
each deployment creates (compose kafka-init, Strimzi KafkaTopics), jobs from what it submits, and
both are compared with the code: the topology module and the job modules (no list is written
here, and nothing outside the repository is read).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from flinkpulse import topics
from flinkpulse.config import Config, load_config
from flinkpulse.topics import TOPICS, TOPOLOGY
from tests.deploy_helpers import kustomize

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
IMAGE_ROOT = "/opt/flinkpulse/"  # where the images put the repository tree
CLICKHOUSE_DDL = ROOT / "sql" / "clickhouse"


# ---- what the code names: the job modules and the topology ------------------------------------


def job_modules() -> list[str]:
    """flink_jobs/<job>.py modules that are pipeline jobs (they declare JOB and OUTPUTS)."""
    out = []
    for p in sorted((ROOT / "flink_jobs").glob("*.py")):
        text = p.read_text()
        if re.search(r"^JOB = ", text, re.M) and re.search(r"^OUTPUTS\b", text, re.M):
            out.append(p.stem)
    return out


@cache
def job_specs() -> dict[str, dict[str, Any]]:
    """job -> {"sources": [(topic, owns dlq./late.)], "outputs": [result view], "immediate":
    {view}}, as build() wires them (build() gets a recorder as its wire: nothing touches Flink;
    its immediate views are checked as `wire` checks them)."""
    import importlib

    from flink_jobs.common import JobContext, immediate_views

    specs = {}
    for name in job_modules():
        mod = importlib.import_module(f"flink_jobs.{name}")
        seen: dict[str, Any] = {}

        def record(
            ctx: Any,
            sources: Any,
            sql_file: str,
            params: Any,
            outputs: Any,
            seen: Any = seen,
            needs: Any = None,
            immediate: Any = (),
        ) -> Any:
            seen.update(
                sources=[(s[0], s[3]) for s in sources],
                outputs=list(outputs),
                sql=sql_file,
                immediate=immediate_views(sources, immediate),
            )
            return ctx

        cfg = render_local()
        mod.build(None, cfg, JobContext(cfg=cfg, t_env=None, job=mod.JOB), wire=record)
        assert name == mod.JOB and seen["outputs"] == list(mod.OUTPUTS), name
        specs[name] = seen
    return specs


def job_tables() -> dict[str, set[str]]:
    """job -> ClickHouse tables its results land in (result view -> topic -> table)."""
    return {
        job: {TOPICS[topics.RESULTS[v][0]].table or "" for v in spec["outputs"]}
        for job, spec in job_specs().items()
    }


def deployed_topics(partitions: int) -> dict[str, tuple[int, dict[str, str]]]:
    """topic -> (partitions, config) a sized deployment with `partitions` must create."""
    return {t.name: (t.partitions or partitions, t.deployed_config()) for t in TOPOLOGY}


# ---- rendering each deployment's configuration ----------------------------------------------


def placeholder_env(env: dict[str, Any]) -> dict[str, str]:
    """A deployment's env as the process would see it; secrets become a placeholder."""
    out = {}
    for k, v in env.items():
        out[k] = "<secret>" if (v is None or "${" in str(v)) else str(v)
    return out


def from_image(path: str) -> Path:
    assert path.startswith(IMAGE_ROOT), path
    return ROOT / path[len(IMAGE_ROOT) :]


def render_local() -> Config:
    return load_config(ROOT / "deploy" / "config" / "local.toml", env={})


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "deploy" / "docker" / "docker-compose.yml").read_text())


def render_compose(service: str) -> Config:
    env = placeholder_env(compose()["services"][service]["environment"])
    return load_config(from_image(env.pop("FLINKPULSE_CONFIG")), env=env)


#: `kubectl kustomize` of one overlay (skips when kubectl is not installed)
k8s = kustomize


def pod_env(container: dict[str, Any]) -> dict[str, Any]:
    """Literal values; a value from a Secret or field ref becomes None (see placeholder_env)."""
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def k8s_workloads(overlay: str) -> dict[str, dict[str, Any]]:
    """name -> main container of every FlinkDeployment and Deployment that runs flinkpulse code."""
    out = {}
    for doc in k8s(overlay):
        if doc["kind"] == "FlinkDeployment":
            out[doc["metadata"]["name"]] = doc["spec"]["podTemplate"]["spec"]["containers"][0]
        elif doc["kind"] == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            if "flinkpulse" in container["image"]:
                out[doc["metadata"]["name"]] = container
    return out


def render_k8s(overlay: str, workload: str) -> Config:
    env = placeholder_env(pod_env(k8s_workloads(overlay)[workload]))
    return load_config(from_image(env.pop("FLINKPULSE_CONFIG")), env=env)


def all_configs() -> dict[str, Config]:
    configs = {"local": render_local()}
    for svc in ("jobmanager", "taskmanager", "flink-jobs", "loader", "schemas"):
        configs[f"compose:{svc}"] = render_compose(svc)
    for overlay in ("dev", "prod"):
        for name in k8s_workloads(overlay):
            configs[f"k8s/{overlay}:{name}"] = render_k8s(overlay, name)
    return configs


# ---- the checks ---------------------------------------------------------------------------------


def test_every_deployment_renders_the_same_job_settings() -> None:
    configs = all_configs()
    assert len(configs) >= 1 + 5 + 2 * 3
    reference = configs["local"].jobs
    for where, cfg in configs.items():
        assert cfg.jobs == reference, f"{where} differs from local"


def test_no_config_file_repeats_the_topology() -> None:
    """Sources, results and tables of a job come from its module and flinkpulse.topics only."""
    for target in ("local", "compose", "k8s"):
        cfg = load_config(ROOT / "deploy" / "config" / f"{target}.toml", env={})
        for job, settings in cfg.jobs.items():
            assert not {"sources", "results", "tables"} & set(settings), f"{target}: jobs.{job}"


def test_jobs_read_and_write_the_topology() -> None:
    specs = job_specs()
    assert specs, "no job module found in flink_jobs/"
    read = [t for spec in specs.values() for t, _owner in spec["sources"]]
    inputs = [*topics.SOURCE_TOPICS, *topics.VERSIONED]
    assert set(read) == set(inputs), "every source, rules and reference topic is read, none else"
    owners = [t for spec in specs.values() for t, owner in spec["sources"] if owner]
    assert sorted(owners) == sorted(inputs), "one job owns each dlq./late. topic"
    written = [v for spec in specs.values() for v in spec["outputs"]]
    assert sorted(written) == sorted(topics.RESULTS), "every result view has one writer"
    for job, spec in specs.items():
        assert (ROOT / "sql" / "flink" / spec["sql"]).exists(), job


def test_topology_is_consistent() -> None:
    names = [t.name for t in TOPOLOGY]
    assert len(names) == len(set(names))
    for t in TOPOLOGY:
        assert t.kind in {
            "source",
            "result",
            "alerts",
            "config",
            "reference",
            "dlq",
            "late",
            "dup",
            "registry",
        }, t.name
        assert t.created_by in {"jobs", "loader", "registry"}, t.name
        if t.kind in {"source", "result", "alerts", "config", "reference"}:
            assert t.key, f"{t.name} has no key"
        if t.kind in {"dlq", "late", "dup"}:
            assert t.name.split(".", 1)[1] in TOPICS, f"{t.name} shadows no topic"
    for src in topics.SOURCE_TOPICS:
        assert dict(TOPICS[src].config) == topics.SOURCE_TOPIC_CONFIG, src
        assert {f"dlq.{src}", f"late.{src}", f"dup.{src}"} <= set(TOPICS), src
    for view, (topic, key) in topics.RESULTS.items():
        assert TOPICS[topic].table == view and TOPICS[topic].key == key
        assert f"dlq.{topic}" in TOPICS, "the loader dead-letters to dlq.<result topic>"
    assert TOPICS[topics.SCHEMAS_TOPIC].config["cleanup.policy"] == "compact"
    for name, spec in topics.VERSIONED.items():
        # read whole as a versioned table: compacted, kept forever, its record keyed as declared
        t = TOPICS[name]
        assert (t.kind, t.config["cleanup.policy"], t.retention_ms) in {
            ("config", "compact", -1), ("reference", "compact", -1)
        }, name  # fmt: skip
        assert (t.record, t.key) == (spec.record, spec.key), name
        assert f"dlq.{name}" in TOPICS, name
    assert set(topics.all_topics()) == {t.name for t in TOPOLOGY if t.created_by == "jobs"}


def test_producers_use_the_topology_records_and_keys() -> None:
    from flinkpulse.schemas import TOPIC_KEYS, TOPIC_RECORDS

    for topic, record in TOPIC_RECORDS.items():
        assert TOPICS[topic].record == record, topic
        assert TOPICS[topic].key == TOPIC_KEYS[topic], topic
    assert set(TOPIC_RECORDS) == {t.name for t in TOPOLOGY if t.record}


def test_sized_deployments_use_their_partition_count() -> None:
    for target in ("compose", "k8s"):
        cfg = load_config(ROOT / "deploy" / "config" / f"{target}.toml", env={})
        assert cfg.kafka.partitions == topics.DEPLOYED_PARTITIONS, target


def compose_topic_specs() -> dict[str, tuple[int, dict[str, str]]]:
    out = {}
    for spec in compose()["services"]["kafka-init"]["environment"]["TOPICS"].split():
        name, partitions, configs = spec.split(":")
        out[name] = (int(partitions), dict(c.split("=", 1) for c in configs.split(",")))
    return out


def test_compose_creates_the_topology_and_submits_every_job() -> None:
    services = compose()["services"]
    partitions = render_compose("loader").kafka.partitions
    assert compose_topic_specs() == deployed_topics(partitions)
    kafka_env = services["kafka"]["environment"]
    assert str(kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    assert set(services["flink-jobs"]["environment"]["JOBS"].split()) == set(job_specs())
    registry = services["schema-registry"]["environment"]["SCHEMA_REGISTRY_KAFKASTORE_TOPIC"]
    assert registry == topics.SCHEMAS_TOPIC


def strimzi_topics(docs: Any) -> dict[str, tuple[int, dict[str, str]]]:
    """topic -> (partitions, config with values as strings) of every KafkaTopic."""
    return {
        d["spec"].get("topicName", d["metadata"]["name"]): (
            d["spec"]["partitions"],
            {k: str(v) for k, v in d["spec"]["config"].items()},
        )
        for d in docs
        if d and d["kind"] == "KafkaTopic"
    }


def assert_strimzi_topology(found: dict[str, tuple[int, dict[str, str]]], min_isr: int) -> None:
    wanted = deployed_topics(topics.DEPLOYED_PARTITIONS)
    assert set(found) == set(wanted)
    for name, (partitions, config) in wanted.items():
        assert found[name][0] == partitions, name
        assert found[name][1] == {**config, "min.insync.replicas": str(min_isr)}, name


def test_k8s_base_creates_the_topology() -> None:
    """Read from the base manifest itself: no kubectl needed."""
    path = ROOT / "deploy" / "k8s" / "base" / "kafka" / "topics.yaml"
    assert_strimzi_topology(strimzi_topics(yaml.safe_load_all(path.read_text())), 2)
    k8s_cfg = load_config(ROOT / "deploy" / "config" / "k8s.toml", env={})
    assert k8s_cfg.kafka.partitions == topics.DEPLOYED_PARTITIONS


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_k8s_creates_the_topology_and_runs_every_job(overlay: str) -> None:
    docs = k8s(overlay)
    assert_strimzi_topology(strimzi_topics(docs), {"dev": 1, "prod": 2}[overlay])
    kinds = {"dev": "FlinkSessionJob", "prod": "FlinkDeployment"}
    job_specs_ = [d["spec"]["job"] for d in docs if d["kind"] == kinds[overlay]]
    scripts = {a for js in job_specs_ for a in js["args"] if a.endswith(".py")}
    assert scripts == {f"{IMAGE_ROOT}flink_jobs/{job}.py" for job in job_specs()}


def test_sql_client_catalog_reads_every_source_topic() -> None:
    """sql/flink/catalog.sql as `flinkpulse sql` renders it: one table per source topic, with
    the prefix applied and the topic's record as the reader schema."""
    from flinkpulse.commands.sql import render_catalog

    cfg = render_local()
    cfg = cfg.with_prefix("pfx.")
    text = render_catalog(cfg)
    blocks = re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", text, re.S)
    assert blocks
    seen = {}
    for table, body in blocks:
        topic = re.search(r"'topic' = '([^']+)'", body)
        schema = re.search(r"'avro-confluent.schema' = '(.+)'", body)
        assert topic and schema, table
        assert topic.group(1).startswith("pfx."), table
        rec = json.loads(schema.group(1).replace("''", "'"))
        seen[topic.group(1)[len("pfx.") :]] = f"{rec['namespace']}.{rec['name']}"
    assert seen == {t: TOPICS[t].record for t in topics.SOURCE_TOPICS}


def clickhouse_objects() -> tuple[set[str], set[str]]:
    """(tables, views) sql/clickhouse creates."""
    ddl = "\n".join(p.read_text() for p in sorted(CLICKHOUSE_DDL.glob("*.sql")))
    name = r"(?:IF\s+NOT\s+EXISTS\s+)?(?:[\w{}]+\.)?`?(\w+)"
    tables = set(re.findall(rf"(?i)CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+{name}", ddl))
    views = set(
        re.findall(rf"(?i)CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?VIEW\s+{name}", ddl)
    )
    return tables, views


def test_clickhouse_ddl_creates_every_topology_table() -> None:
    tables, _views = clickhouse_objects()
    wanted = {t.table for t in TOPOLOGY if t.table}
    assert wanted <= tables, wanted - tables
    # the jobs' results fill the tables of result topics; reference topics' tables are the
    # loader's copy of what the producers write
    results = {t.table for t in TOPOLOGY if t.table and t.kind in {"result", "alerts"}}
    assert {t for ts in job_tables().values() for t in ts} == results
    assert wanted - results == {"device_assignments"}


def test_superset_datasets_read_topology_tables() -> None:
    """Every Superset dataset reads a topology table or a ClickHouse view/rollup over them, and
    every topology table is read by some dataset (directly or through a view)."""
    tables, views = clickhouse_objects()
    topology_tables = {t.table for t in TOPOLOGY if t.table}
    derived = (tables | views) - topology_tables
    read: set[str] = set()
    for path in sorted((ROOT / "deploy" / "superset" / "datasets").rglob("*.yaml")):
        ds = yaml.safe_load(path.read_text())
        if ds.get("sql"):
            names = set(re.findall(r"(?i)\b(?:FROM|JOIN)\s+(?:[\w{}]+\.)?(\w+)", ds["sql"]))
        else:
            names = {ds["table_name"]}
        assert names and names <= topology_tables | derived, f"{path.name}: {names}"
        read |= names
    ddl = "\n".join(p.read_text() for p in sorted(CLICKHOUSE_DDL.glob("*.sql")))
    via_views = {
        t
        for t in topology_tables
        if re.search(rf"(?i)\b(?:FROM|JOIN)\s+(?:[\w{{}}]+\.)?{t}\b", ddl)
    }
    assert topology_tables <= read | via_views, topology_tables - read - via_views


def test_connection_settings_come_from_each_deployment() -> None:
    local = render_local()
    assert local.kafka.bootstrap_servers == "127.0.0.1:9092"
    c = render_compose("loader")
    svc = compose()["services"]
    assert c.kafka.bootstrap_servers.split(":")[0] in svc
    assert c.kafka.bootstrap_servers in svc["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert c.registry.url.split("//")[1].split(":")[0] in svc
    assert c.clickhouse.url.split("//")[1].split(":")[0] in svc
    assert c.clickhouse.password == "<secret>"
    k = render_k8s("prod", "loader")
    assert k.kafka.security_protocol == "SASL_SSL" and k.kafka.sasl_mechanism.startswith("SCRAM")
    assert k.kafka.sasl_password == "<secret>" and k.clickhouse.password == "<secret>"
    mounts = {m["mountPath"] for m in k8s_workloads("prod")["loader"]["volumeMounts"]}
    assert str(Path(k.kafka.ssl_ca_location).parent) in mounts
    assert "sasl.jaas.config" in " ".join(k.kafka.java_properties())


def test_no_secret_is_written_in_a_config_file() -> None:
    for target in ("local", "compose", "k8s"):
        cfg = load_config(ROOT / "deploy" / "config" / f"{target}.toml", env={})
        assert cfg.kafka.sasl_password == "" and cfg.clickhouse.password == "", target


def test_a_jobs_immediate_views_must_be_its_decoded_sources() -> None:
    """Under flink.dedup_state=auto a misspelt `immediate` view would silently wait for the
    watermark: every shipped job names real ones, and a wrong name stops the build."""
    from flink_jobs.common import immediate_views

    named = {job: spec["immediate"] for job, spec in job_specs().items()}
    assert named["security_alerts"] == {"security_events_in"}
    assert not any(v for job, v in named.items() if job != "security_alerts"), named
    sources = [("iot.security-events", "security_events_in", None, True)]
    with pytest.raises(ValueError, match="security_event_in, not a decoded source view"):
        immediate_views(sources, ("security_event_in",))
    # a versioned (compacted) topic is never deduplicated, so it cannot be immediate
    rules = [*sources, ("config.rules", "rule_changes", None, True)]
    with pytest.raises(ValueError, match="rule_changes"):
        immediate_views(rules, ("rule_changes",))


#: our images, as the manifests name them: `flinkpulse-app:TAG` or `...:${FLINKPULSE_VERSION:-TAG}`
OUR_IMAGE = re.compile(
    r"flinkpulse-(?:app|pyflink|superset):(?:\$\{FLINKPULSE_VERSION:-)?([\w.-]+)"
)


def test_our_images_carry_the_package_version() -> None:
    """One version: `flinkpulse --version`, the package metadata (pyproject reads
    flinkpulse.__version__) and every tag of our images in deploy/ agree, so bumping
    `__version__` is all a release changes."""
    import tomllib

    from flinkpulse import __version__
    from flinkpulse.cli import version_text

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "flinkpulse.__version__"}
    assert version_text().startswith(f"flinkpulse {__version__} (Python 3.11")
    tags = {}
    for path in sorted((ROOT / "deploy").rglob("*")):
        if path.suffix in {".yaml", ".yml"} or path.name == "Dockerfile":
            text = path.read_text()
            tags |= {f"{path.relative_to(ROOT)}: {m[0]}": m[1] for m in OUR_IMAGE.finditer(text)}
            if path.name == "kustomization.yaml":
                for img in yaml.safe_load(text).get("images", []):
                    if img["name"].startswith("flinkpulse-"):
                        tags[f"{path.relative_to(ROOT)}: {img['name']}"] = str(img["newTag"])
    values = yaml.safe_load((ROOT / "deploy/k8s/superset/values.yaml").read_text())["image"]
    tags[f"superset values: {values['repository']}"] = str(values["tag"])
    assert len(tags) >= 12, tags
    assert {k: v for k, v in tags.items() if v != __version__} == {}
