"""The schema registry: flinkpulse's Confluent-compatible service, state in Kafka (`_schemas`)."""

from __future__ import annotations

import json
import sys

from flinkpulse.stack.base import Component, Proc


class Registry(Component):
    name = "registry"
    needs = ("kafka",)
    settings = (
        "stack.host",
        "stack.registry_port",
        "registry.topic",
        "kafka.bootstrap_servers",
        "kafka.security_protocol",
        "kafka.sasl_*",
        "kafka.ssl_*",
    )
    start_timeout = 60.0

    def ports(self) -> list[int]:
        return [self.cfg.stack.registry_port]

    def address(self) -> str:
        return f"http://{self.cfg.stack.host}:{self.cfg.stack.registry_port}"

    def procs(self) -> list[Proc]:
        from flinkpulse.registry.__main__ import CONF_ENV

        conf = self.cfg.kafka.client_conf()
        bootstrap = conf.pop("bootstrap.servers")
        argv = [
            sys.executable,
            "-m",
            "flinkpulse.registry",
            "--host",
            self.cfg.stack.host,
            "--port",
            str(self.cfg.stack.registry_port),
            "--bootstrap",
            bootstrap,
            "--topic",
            self.cfg.registry.topic,
            "--quiet",
        ]
        return [Proc("registry", argv, env={CONF_ENV: json.dumps(conf)})]

    def healthy(self) -> bool:
        import requests

        try:
            r = requests.get(f"{self.address()}/subjects", timeout=2)
        except requests.RequestException:
            return False
        return r.status_code == 200

    def extra_status(self) -> str:
        import requests

        try:
            n = len(requests.get(f"{self.address()}/subjects", timeout=2).json())
        except (requests.RequestException, ValueError):
            return ""
        return f"subjects: {n}, topic: {self.cfg.registry.topic}"
