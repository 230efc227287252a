"""Kubernetes manifests (deploy/k8s) checked without a cluster.

Core kinds are validated with kubernetes-validate (the Kubernetes OpenAPI schemas, strict), the
operators' kinds (FlinkDeployment, FlinkSessionJob, Kafka, KafkaNodePool, KafkaTopic, KafkaUser,
ClickHouseInstallation) against the CRD schemas vendored in deploy/schemas/crds (strict: unknown
fields fail). The dev and prod overlays are rendered with `kubectl kustomize` where kubectl is
installed, and every rendered object is validated the same way.
"""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy_helpers import kustomize

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CRDS = ROOT / "deploy" / "schemas" / "crds"
OPERATOR_GROUPS = {"flink.apache.org", "kafka.strimzi.io", "clickhouse.altinity.com"}
K8S_VERSION = "1.32.0"
FLINK_VERSION = re.search(
    r"<flink.version>([^<]+)</flink.version>", (ROOT / "deploy" / "pom.xml").read_text()
).group(1)  # type: ignore[union-attr]
OVERLAYS = ["dev", "prod"]
# files that are kustomize machinery or patches, not complete resources
NOT_RESOURCES = {"kustomization.yaml", "kustomizeconfig.yaml", "values.yaml"}
PATCH_DIRS = {K8S / "flink-common", K8S / "overlays" / "dev", K8S / "overlays" / "prod"}


def crd_validator(obj: dict[str, Any]) -> jsonschema.protocols.Validator | None:
    """The vendored schema for an operator kind, or None for a core kind."""
    group, _, version = obj["apiVersion"].rpartition("/")
    if group not in OPERATOR_GROUPS:
        return None
    path = CRDS / f"{obj['kind'].lower()}-{group.split('.')[0]}-{version}.json"
    assert path.exists(), f"no vendored CRD schema for {obj['apiVersion']} {obj['kind']}"
    return _validator(path)


@cache
def _validator(path: Path) -> jsonschema.protocols.Validator:
    return jsonschema.Draft7Validator(json.loads(path.read_text()))


def validate(obj: dict[str, Any], where: str) -> None:
    """Raise AssertionError with every schema violation of one Kubernetes object."""
    validator = crd_validator(obj)
    if validator is None:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise AssertionError(f"{where}: {obj['kind']} {obj['metadata']['name']}: {e}") from e
        return
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
    msgs = [f"{'.'.join(map(str, e.path))}: {e.message[:200]}" for e in errors]
    assert not msgs, f"{where}: {obj['kind']} {obj['metadata']['name']}:\n" + "\n".join(msgs)


def resource_files() -> list[Path]:
    return sorted(
        p for p in K8S.rglob("*.yaml") if p.name not in NOT_RESOURCES and p.parent not in PATCH_DIRS
    )


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


#: `kubectl kustomize` of one overlay (skips when kubectl is not installed)
render = kustomize


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


# ---- raw files ------------------------------------------------------------------------------


def test_every_crd_schema_is_a_valid_json_schema() -> None:
    files = sorted(CRDS.glob("*.json"))
    kinds = {p.name.split("-")[0] for p in files}
    assert kinds >= {
        "flinkdeployment",
        "flinksessionjob",
        "kafka",
        "kafkanodepool",
        "kafkatopic",
        "kafkauser",
        "clickhouseinstallation",
    }
    for p in files:
        jsonschema.Draft7Validator.check_schema(json.loads(p.read_text()))


@pytest.mark.parametrize("path", resource_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_resource_file_is_valid(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} holds no resource"
    for doc in docs:
        validate(doc, str(path.relative_to(ROOT)))


def test_crd_schemas_reject_unknown_fields() -> None:
    """The vendored schemas are strict: a misspelt field fails (so the checks above mean something)."""
    doc = load_docs(K8S / "flink-application" / "player-stats.yaml")[0]
    doc["spec"]["job"]["upgradeMod"] = "savepoint"
    with pytest.raises(AssertionError, match="upgradeMod"):
        validate(doc, "mutated")
    topic = load_docs(K8S / "base" / "kafka" / "topics.yaml")[0]
    topic["spec"]["partitions"] = "six"
    with pytest.raises(AssertionError, match="partitions"):
        validate(topic, "mutated")


def test_core_kinds_reject_unknown_fields() -> None:
    doc = load_docs(K8S / "base" / "loader" / "loader.yaml")[0]
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(AssertionError, match="imagePullPolcy"):
        validate(doc, "mutated")


def test_kustomizations_list_existing_files() -> None:
    for kust in K8S.rglob("kustomization.yaml"):
        data = yaml.safe_load(kust.read_text())
        for entry in data.get("resources", []) + data.get("components", []):
            assert (kust.parent / entry).exists(), f"{kust}: {entry} does not exist"
        for patch in data.get("patches", []):
            if "path" in patch:
                assert (kust.parent / patch["path"]).exists(), f"{kust}: {patch['path']}"


def test_superset_values_pin_the_version_and_hold_no_secret() -> None:
    values = yaml.safe_load((K8S / "superset" / "values.yaml").read_text())
    assert values["secretEnv"]["create"] is False, "the chart's env secret has default passwords"
    assert values["envFromSecret"]
    assert values["postgresql"]["auth"]["existingSecret"]
    assert "password" not in values["postgresql"]["auth"]
    assert values["init"]["createAdmin"] is False  # the chart's admin has password "admin"
    assert "${SUPERSET_ADMIN_PASSWORD}" in values["init"]["initscript"]
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert "ARG SUPERSET_IMAGE=apache/superset:6.1.0" in dockerfile
    assert values["image"]["repository"] == "flinkpulse-superset"


# ---- rendered overlays ----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_to_valid_objects(overlay: str) -> None:
    docs = render(overlay)
    for doc in docs:
        validate(doc, f"overlays/{overlay}")
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "flinkpulse", doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_flink_deployments_are_production_shaped(overlay: str) -> None:
    """Flink 2.2 image, HA on Kubernetes, state on S3, resources, savepoint upgrades."""
    deployments = of_kind(render(overlay), "FlinkDeployment")
    assert deployments
    for fd in deployments:
        spec, conf = fd["spec"], fd["spec"]["flinkConfiguration"]
        name = fd["metadata"]["name"]
        assert spec["flinkVersion"] == "v" + "_".join(FLINK_VERSION.split(".")[:2])
        assert spec["image"].split("/")[-1].startswith(("flinkpulse-pyflink:", "pyflink:"))
        assert conf["high-availability.type"] == "kubernetes"
        for key in (
            "high-availability.storageDir",
            "execution.checkpointing.dir",
            "execution.checkpointing.savepoint-dir",
        ):
            suffix = "session" if name == "flinkpulse-session" else name
            assert conf[key].startswith("s3://") and conf[key].endswith("/" + suffix), conf[key]
        assert spec["jobManager"]["resource"]["memory"] and spec["taskManager"]["resource"]["cpu"]
        env = {e["name"]: e for e in spec["podTemplate"]["spec"]["containers"][0]["env"]}
        assert env["ENABLE_BUILT_IN_PLUGINS"]["value"] == f"flink-s3-fs-presto-{FLINK_VERSION}.jar"
        assert "valueFrom" in env["FLINKPULSE_KAFKA__SASL_PASSWORD"]
        if "job" in spec:
            assert spec["job"]["upgradeMode"] == "savepoint"
            assert (
                spec["job"]["jarURI"] == f"local:///opt/flink/opt/flink-python-{FLINK_VERSION}.jar"
            )
            assert spec["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"


def test_dev_is_the_session_variant_and_prod_application_mode() -> None:
    dev, prod = render("dev"), render("prod")
    assert [fd["metadata"]["name"] for fd in of_kind(dev, "FlinkDeployment")] == [
        "flinkpulse-session"
    ]
    assert not of_kind(prod, "FlinkSessionJob")
    for job in of_kind(dev, "FlinkSessionJob"):
        assert job["spec"]["deploymentName"] == "flinkpulse-session"
        assert job["spec"]["job"]["upgradeMode"] == "savepoint"
        assert job["spec"]["job"]["jarURI"].endswith(f"/flink-python-{FLINK_VERSION}.jar")
    assert all(fd["spec"]["jobManager"]["replicas"] == 2 for fd in of_kind(prod, "FlinkDeployment"))


def test_dev_overlay_scales_kafka_down_consistently() -> None:
    dev, prod = render("dev"), render("prod")
    assert {p["spec"]["replicas"] for p in of_kind(dev, "KafkaNodePool")} == {1}
    assert {p["spec"]["replicas"] for p in of_kind(prod, "KafkaNodePool")} == {3}
    for docs, rf in ((dev, 1), (prod, 3)):
        kafka = of_kind(docs, "Kafka")[0]["spec"]["kafka"]
        assert kafka["version"] == kafka_version()
        assert kafka["config"]["default.replication.factor"] == rf
        for topic in of_kind(docs, "KafkaTopic"):
            assert topic["spec"]["replicas"] == rf
            assert topic["spec"]["config"]["min.insync.replicas"] <= rf


def test_secrets_are_referenced_never_written() -> None:
    for overlay in OVERLAYS:
        assert not of_kind(render(overlay), "Secret"), "Secrets are created out of band"
    text = "\n".join(p.read_text() for p in K8S.rglob("*.yaml"))
    assert not re.search(r"(?i)^\s*(password|secret-key|access-key)\s*:\s*\S", text, re.M)


def kafka_version() -> str:
    return re.search(
        r"<kafka.version>([^<]+)</kafka.version>", (ROOT / "deploy" / "pom.xml").read_text()
    ).group(1)  # type: ignore[union-attr]


def test_k8s_config_points_at_the_strimzi_cluster() -> None:
    cfg = tomllib.loads((ROOT / "deploy" / "config" / "k8s.toml").read_text())
    prod = render("prod")
    kafka = of_kind(prod, "Kafka")[0]
    tls = [li for li in kafka["spec"]["kafka"]["listeners"] if li["name"] == "tls"][0]
    assert cfg["kafka"]["bootstrap_servers"].startswith(
        f"{kafka['metadata']['name']}-kafka-bootstrap."
    )
    assert cfg["kafka"]["bootstrap_servers"].endswith(f":{tls['port']}")
    assert tls["authentication"]["type"] == cfg["kafka"]["sasl_mechanism"].lower()
    users = {u["metadata"]["name"] for u in of_kind(prod, "KafkaUser")}
    assert cfg["kafka"]["sasl_username"] in users
    chi = of_kind(prod, "ClickHouseInstallation")[0]["metadata"]["name"]
    assert cfg["clickhouse"]["url"].startswith(f"http://clickhouse-{chi}.")
    services = {s["metadata"]["name"]: s for s in of_kind(prod, "Service")}
    reg = cfg["registry"]["url"].split("//")[1]
    assert reg.split(".")[0] in services
    assert int(reg.rsplit(":", 1)[1]) == services[reg.split(".")[0]]["spec"]["ports"][0]["port"]
