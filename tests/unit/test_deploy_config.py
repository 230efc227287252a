"""One job configuration everywhere: local, compose and Kubernetes name the same jobs, topics and
tables, and those are the ones DESIGN.md names.

Each deployment's configuration is rendered the way it runs: deploy/config/<target>.toml through
flinkpulse.config.load_config with that deployment's environment (compose service environment,
the FlinkDeployment/loader pod env; secrets stand in as placeholders). Topics are read from what
each deployment creates (compose kafka-init, Strimzi KafkaTopics), jobs from what it submits.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from flinkpulse.config import Config, load_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DESIGN_CANDIDATES = [ROOT.parent / "shared" / "DESIGN.md", ROOT / "docs" / "DESIGN.md"]
IMAGE_ROOT = "/opt/flinkpulse/"  # where the images put the repository tree
RESULT_TOPICS = {
    "results.player-stats",
    "results.team-stats",
    "results.leaderboard",
    "results.device-stats",
    "results.energy-usage",
    "results.web-traffic",
    "results.client-activity",
}


# ---- what DESIGN.md names ------------------------------------------------------------------


@cache
def design() -> str:
    for p in DESIGN_CANDIDATES:
        if p.exists():
            return p.read_text()
    pytest.skip("DESIGN.md (../shared/DESIGN.md) is not beside the repository")


def design_table(heading: str) -> list[list[str]]:
    """Rows of the first markdown table after a `## heading`, cells stripped of backticks."""
    section = design().split(f"## {heading}", 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def design_jobs() -> dict[str, set[str]]:
    """job -> ClickHouse tables it sinks to."""
    jobs = {}
    for cells in design_table("Jobs"):
        job = cells[0].strip("`")
        jobs[job] = set(re.findall(r"`([a-z_]+)`", cells[2]))
    return jobs


def design_source_topics() -> set[str]:
    topics = {c[0].strip("`") for c in design_table("Topics and records")}
    return {t for t in topics if "<" not in t and t != "alerts"}


def expected_topics() -> set[str]:
    sources = design_source_topics()
    return sources | {"alerts", "_schemas"} | RESULT_TOPICS | {f"dlq.{t}" for t in sources}


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


@cache
def k8s(overlay: str) -> tuple[dict[str, Any], ...]:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl (with built-in kustomize) is not installed")
    out = subprocess.run(
        [exe, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


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


def test_every_deployment_renders_the_same_jobs_topics_and_tables() -> None:
    configs = all_configs()
    assert len(configs) >= 1 + 5 + 2 * 3
    reference = configs["local"].jobs
    for where, cfg in configs.items():
        assert cfg.jobs == reference, f"{where} differs from local"


def test_jobs_and_tables_are_the_ones_in_design_md() -> None:
    jobs = render_local().jobs
    design = design_jobs()
    assert set(jobs) == set(design)
    for job, tables in design.items():
        assert set(jobs[job]["tables"]) == tables, job
    sources = {t for j in jobs.values() for t in j["sources"]}
    assert sources == design_source_topics()
    results = {t for j in jobs.values() for t in j["results"]}
    assert results == RESULT_TOPICS | {"alerts"}


def test_compose_creates_every_topic_and_submits_every_job() -> None:
    services = compose()["services"]
    specs = services["kafka-init"]["environment"]["TOPICS"].split()
    created = {s.split(":")[0] for s in specs}
    assert created == expected_topics()
    schemas = [s for s in specs if s.startswith("_schemas:")][0]
    assert "cleanup.policy=compact" in schemas
    assert set(services["flink-jobs"]["environment"]["JOBS"].split()) == set(design_jobs())
    registry = services["schema-registry"]["environment"]["SCHEMA_REGISTRY_KAFKASTORE_TOPIC"]
    assert registry == "_schemas"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_k8s_creates_every_topic_and_runs_every_job(overlay: str) -> None:
    docs = k8s(overlay)
    topics = {
        d["spec"].get("topicName", d["metadata"]["name"]): d
        for d in docs
        if d["kind"] == "KafkaTopic"
    }
    assert set(topics) == expected_topics()
    assert topics["_schemas"]["spec"]["config"]["cleanup.policy"] == "compact"
    for name, topic in topics.items():
        assert topic["spec"]["partitions"] >= 1, name
        assert "cleanup.policy" in topic["spec"]["config"], name
        assert "retention.ms" in topic["spec"]["config"], name
    kinds = {"dev": "FlinkSessionJob", "prod": "FlinkDeployment"}
    job_specs = [d["spec"]["job"] for d in docs if d["kind"] == kinds[overlay]]
    scripts = {a for js in job_specs for a in js["args"] if a.endswith(".py")}
    assert scripts == {f"{IMAGE_ROOT}flink_jobs/{job}.py" for job in design_jobs()}


def test_topic_settings_agree_between_compose_and_k8s() -> None:
    compose_specs = {
        s.split(":")[0]: dict(c.split("=") for c in s.split(":")[2].split(","))
        for s in compose()["services"]["kafka-init"]["environment"]["TOPICS"].split()
    }
    k8s_topics = {
        d["spec"].get("topicName", d["metadata"]["name"]): d["spec"]["config"]
        for d in k8s("prod")
        if d["kind"] == "KafkaTopic"
    }
    for topic, conf in compose_specs.items():
        for key, value in conf.items():
            assert str(k8s_topics[topic][key]) == value, f"{topic} {key}"


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


def test_job_modules_exist_for_every_job() -> None:
    missing = [j for j in design_jobs() if not (ROOT / "flink_jobs" / f"{j}.py").exists()]
    if missing:
        pytest.skip(f"job modules not written yet: {missing}")


def test_clickhouse_ddl_creates_every_table() -> None:
    ddl = "\n".join(p.read_text() for p in sorted((ROOT / "sql" / "clickhouse").glob("*.sql")))
    if not ddl:
        pytest.skip("sql/clickhouse/ has no DDL yet")
    created = set(
        re.findall(r"(?i)CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:[\w{}]+\.)?`?(\w+)", ddl)
    )
    wanted = {t for tables in design_jobs().values() for t in tables}
    assert wanted <= created, wanted - created
