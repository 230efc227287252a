"""Locating Java and the Maven-resolved jars."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError


def java_bin() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise FlinkpulseError(
            "Java is not installed (need Java 17) — install openjdk-17-jre-headless"
        )
    return found


def jars_dir(cfg: Config, kind: str) -> Path:
    """`.flinkpulse/jars/<kind>` as filled by `make setup` (mvn -f deploy/pom.xml)."""
    d = cfg.stack.jars_path() / kind
    if not d.is_dir() or not any(d.glob("*.jar")):
        raise FlinkpulseError(
            f"no {kind} jars in {d} — run `make setup` (needs Maven: mvn -f deploy/pom.xml)"
        )
    return d


def flink_connector_jars(cfg: Config) -> list[Path]:
    return sorted(jars_dir(cfg, "flink").glob("*.jar"))
