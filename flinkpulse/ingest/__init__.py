"""Device ingestion: MQTT (Mosquitto + the bridge) and HTTP into the Kafka source topics.

Credentials of the local stack are generated once under ``<state>/secrets/`` (mode 0600):
``mqtt-ingest.password`` (broker user ``flinkpulse``) and ``ingest.token`` (the HTTP bearer
token). Settings ``ingest.mqtt_username/mqtt_password`` and ``ingest.http_token`` replace them.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from flinkpulse.config import Config

#: the broker user of the local stack (the bridge and simulated devices)
MQTT_USER = "flinkpulse"


def secrets_dir(cfg: Config) -> Path:
    return cfg.stack.state_path() / "secrets"


def _secret(path: Path) -> str:
    """The secret in `path`, created (0600, random) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def mqtt_password_file(cfg: Config) -> Path:
    return secrets_dir(cfg) / "mqtt-ingest.password"


def token_file(cfg: Config) -> Path:
    return secrets_dir(cfg) / "ingest.token"


def mqtt_credentials(cfg: Config) -> tuple[str, str]:
    """(user, password) for the MQTT broker: configured, or the local stack's generated ones."""
    if cfg.ingest.mqtt_username:
        return cfg.ingest.mqtt_username, cfg.ingest.mqtt_password
    return MQTT_USER, _secret(mqtt_password_file(cfg))


def http_token(cfg: Config) -> str:
    """The HTTP endpoint's bearer token: configured, or the local stack's generated one."""
    return cfg.ingest.http_token or _secret(token_file(cfg))


def write_status(path: Path, doc: dict[str, Any]) -> None:
    """Replace the JSON status file `stack status` reads (atomically), with the writer's pid."""
    import json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**doc, "pid": os.getpid(), "updated": time.time()}))
    os.replace(tmp, path)
