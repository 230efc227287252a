"""Flink session cluster (JobManager + TaskManager) from the apache-flink wheel's distribution.

We run `bin/jobmanager.sh start-foreground` and `bin/taskmanager.sh start-foreground` ourselves
(rather than start-cluster.sh) so each JVM has our PID file, our log and our config directory.
Python UDF workers run on the project's interpreter, which has flinkpulse, udfs/ and pemja.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from typing import Any

from flinkpulse.paths import ROOT, pyflink_home, site_packages, venv_bin, venv_python
from flinkpulse.stack.base import Component, Proc

# JDK 17 module flags the Flink distribution ships in its default config.
_JAVA_OPENS = " ".join(
    [
        "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
        "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED",
        "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
        "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED",
        "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
        "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED",
        "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    ]
    + [
        f"--add-opens=java.base/{p}=ALL-UNNAMED"
        for p in (
            "java.lang",
            "java.net",
            "java.io",
            "java.nio",
            "sun.nio.ch",
            "java.lang.reflect",
            "java.text",
            "java.time",
            "java.util",
            "java.util.concurrent",
            "java.util.concurrent.atomic",
            "java.util.concurrent.locks",
        )
    ]
)


class Flink(Component):
    name = "flink"
    start_timeout = 120.0

    @property
    def conf_dir(self):  # type: ignore[no-untyped-def]
        return self.dir / "conf"

    def ports(self) -> list[int]:
        return [self.cfg.stack.flink_rest_port, self.cfg.stack.flink_rpc_port]

    def address(self) -> str:
        return f"http://{self.cfg.stack.host}:{self.cfg.stack.flink_rest_port}"

    def flink_conf(self) -> dict[str, object]:
        """The cluster's config.yaml (flat keys; Flink 2 reads them as nested YAML)."""
        s = self.cfg.stack
        f = self.cfg.flink
        h = s.host
        return {
            "env.java.opts.all": _JAVA_OPENS + " -XX:+UseSerialGC",
            "jobmanager.rpc.address": h,
            "jobmanager.rpc.port": s.flink_rpc_port,
            "jobmanager.bind-host": h,
            "jobmanager.memory.process.size": s.flink_jm_memory,
            "jobmanager.execution.failover-strategy": "region",
            "taskmanager.bind-host": h,
            "taskmanager.host": h,
            "taskmanager.numberOfTaskSlots": s.flink_slots,
            "taskmanager.memory.process.size": s.flink_tm_memory,
            "taskmanager.memory.managed.fraction": 0.25,
            # every job loads the connector jars into its own classloader: room for many jobs
            "taskmanager.memory.jvm-metaspace.size": "1024m",
            "jobmanager.memory.jvm-metaspace.size": "512m",
            "classloader.check-leaked-classloader": "false",
            "parallelism.default": f.parallelism,
            "rest.address": h,
            "rest.bind-address": h,
            "rest.port": s.flink_rest_port,
            "blob.server.port": "0",
            "execution.checkpointing.dir": f"file://{self.dir / 'checkpoints'}",
            "execution.checkpointing.savepoint-dir": f"file://{self.dir / 'savepoints'}",
            "execution.checkpointing.num-retained": 2,
            # kept when a job is cancelled or the cluster stops: `flinkpulse jobs resume` and
            # `stack up` restart jobs from them (jobstate.py; there is no HA in a session cluster)
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "state.backend.type": "hashmap",
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.initial-backoff": "1 s",
            "restart-strategy.exponential-delay.max-backoff": "10 s",
            "heartbeat.timeout": 20000,
            "python.executable": str(venv_python()),
            "python.client.executable": str(venv_python()),
            # thread mode embeds the interpreter via pemja: it must find site-packages
            "python.pythonpath": f"{ROOT}:{site_packages()}",
            "python.fn-execution.bundle.size": f.bundle_size,
            "python.fn-execution.bundle.time": f.bundle_time_ms,
            "python.fn-execution.arrow.batch.size": f.arrow_batch_size,
            "web.submit.enable": "true",
            "web.cancel.enable": "true",
        }

    def prepare(self) -> None:
        home = pyflink_home()
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for name in (
            "log4j-console.properties",
            "log4j-cli.properties",
            "log4j.properties",
            "logback-console.xml",
            "logback.xml",
        ):
            src = home / "conf" / name
            if src.exists():
                shutil.copy(src, self.conf_dir / name)
        lines = [
            f"{k}: {json.dumps(v) if isinstance(v, str) else v}"
            for k, v in self.flink_conf().items()
        ]
        (self.conf_dir / "config.yaml").write_text("\n".join(lines) + "\n")
        for d in ("log", "run", "checkpoints", "savepoints", "tmp"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        # Our own lib dir: the wheel's lib/ plus opt/flink-python (Python UDF operators run in
        # the cluster's classloader, as in the official PyFlink images). The wheel stays untouched.
        lib = self.dir / "lib"
        if lib.exists():
            shutil.rmtree(lib)
        lib.mkdir()
        for jar in [
            *sorted((home / "lib").glob("*.jar")),
            *sorted((home / "opt").glob("flink-python*.jar")),
        ]:
            (lib / jar.name).symlink_to(jar)

    def env(self) -> dict[str, str]:
        return {
            "FLINK_HOME": str(pyflink_home()),
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LIB_DIR": str(self.dir / "lib"),
            "FLINK_LOG_DIR": str(self.dir / "log"),
            "FLINK_PID_DIR": str(self.dir / "run"),
            # venv first on PATH: Python workers and pemja (thread mode) resolve from it
            "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
        }

    def procs(self) -> list[Proc]:
        bin_ = pyflink_home() / "bin"
        env = self.env()
        return [
            Proc(
                "flink-jobmanager", ["bash", str(bin_ / "jobmanager.sh"), "start-foreground"], env
            ),
            Proc(
                "flink-taskmanager", ["bash", str(bin_ / "taskmanager.sh"), "start-foreground"], env
            ),
        ]

    def overview(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.address() + "/overview", timeout=3) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except Exception:
            return None

    def healthy(self) -> bool:
        ov = self.overview()
        return bool(ov and int(ov.get("taskmanagers", 0)) >= 1)

    def ready(self) -> bool:
        ov = self.overview()
        return bool(
            ov and int(ov.get("taskmanagers", 0)) >= 1 and int(ov.get("slots-available", 0)) > 0
        )

    def extra_status(self) -> str:
        ov = self.overview() or {}
        return f"jobs running: {ov.get('jobs-running', '?')}, slots free: {ov.get('slots-available', '?')}"
