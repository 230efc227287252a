"""Flink session cluster (JobManager + N TaskManagers) from the apache-flink wheel's distribution.

We run `bin/jobmanager.sh start-foreground` and `bin/taskmanager.sh start-foreground` ourselves
(rather than start-cluster.sh) so each JVM has our PID file, our log and our config directory.
TaskManager i (``stack.taskmanagers``, default 1) is process ``flink-taskmanager-<i>`` with
resource id of the same name, so a test or a user maps Flink's view of a TaskManager to its PID.
Python UDF workers run on the project's interpreter, which has flinkpulse, udfs/ and pemja; in
process mode each one exits when its TaskManager's JVM is gone (flinkpulse.stack.udf_guard).

Beam's gRPC servers for process-mode workers listen on the wildcard address, not loopback: the
Java side builds them with ``ServerFactory.createDefault()`` -> ``NettyServerBuilder.forPort``
(Beam's ``ProcessEnvironmentFactory.Provider`` offers no other server factory and PyFlink no
option for it). They are ephemeral ports of the TaskManager JVM; firewall them
(docs/reliability-and-security.md) or use ``python.execution-mode: thread``, which opens no port.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any

from flinkpulse.errors import UsageError
from flinkpulse.paths import (
    ROOT,
    pyflink_home,
    site_packages,
    socket_path,
    venv_bin,
    venv_python,
)
from flinkpulse.stack import udf_fork
from flinkpulse.stack.base import Component, Proc, ancestors, cmdline
from flinkpulse.stack.udf_guard import BOOT_MODULE

#: holds the sitecustomize that arms flinkpulse.stack.udf_guard in Python UDF workers
UDF_SITE = ROOT / "flinkpulse" / "stack" / "udf_site"

#: the fork servers of Python UDF workers (``stack.flink_udf_fork``), one per TaskManager:
#: run/<UDF_FORK>-<n>.sock and its registry run/<UDF_FORK>-<n>/
UDF_FORK = "flink-udf-fork"

#: ``stack.flink_tm_gc`` -> the JVM flag that selects that collector
GC_FLAGS = {"serial": "-XX:+UseSerialGC", "parallel": "-XX:+UseParallelGC", "g1": "-XX:+UseG1GC"}


def tm_gc_flag(gc: str) -> str:
    """The TaskManager's collector flag; a UsageError names the choices for an unknown one."""
    if gc not in GC_FLAGS:
        raise UsageError(f"stack.flink_tm_gc: expected one of {', '.join(GC_FLAGS)}, got {gc!r}")
    return GC_FLAGS[gc]


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
    #: its config.yaml comes from these (the jobs' own flink.* settings travel with each job)
    settings = ("stack.host", "stack.flink_*", "stack.taskmanagers")
    start_timeout = 120.0

    @property
    def conf_dir(self):  # type: ignore[no-untyped-def]
        return self.dir / "conf"

    @property
    def tmp_dir(self) -> Path:
        """Flink's io.tmp.dirs: TaskManager working directories `tm_<resource id>`, spill
        files, the JobManager's BLOB store."""
        return self.dir / "tmp"

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
            # one collector flag per JVM: the JVM refuses two. SerialGC for the JobManager and
            # the clients, whose heaps are small; the TaskManagers' is a setting
            "env.java.opts.all": _JAVA_OPENS,
            # the JobManager schedules and coordinates but carries no records: C1 alone halves
            # its CPU while jobs are deployed. Measured with 4 jobs submitted on 2 cores:
            # `stack up flink` 23 -> 10 s, `jobs submit all` 54-56 -> 46-48 s (docs/jobs.md).
            # The TaskManagers keep C2: their compiled code is the records' hot path
            "env.java.opts.jobmanager": "-XX:TieredStopAtLevel=1 " + GC_FLAGS["serial"],
            "env.java.opts.taskmanager": tm_gc_flag(s.flink_tm_gc),
            # the CLI and SQL client are short-lived JVMs that mostly plan SQL once: C1 alone
            # compiles enough of the planner and leaves the cores to the cluster. Measured:
            # `flink run` of a job 23-27 s -> 17-21 s, its CPU time about halved
            "env.java.opts.client": "-XX:TieredStopAtLevel=1 " + GC_FLAGS["serial"],
            "jobmanager.rpc.address": h,
            "jobmanager.rpc.port": s.flink_rpc_port,
            "jobmanager.bind-host": h,
            "jobmanager.memory.process.size": s.flink_jm_memory,
            "jobmanager.execution.failover-strategy": "region",
            "taskmanager.bind-host": h,
            "taskmanager.host": h,
            "taskmanager.numberOfTaskSlots": s.flink_slots,
            # per TaskManager; with several, a job's subtasks are spread over them (as on a
            # real cluster, so one TaskManager's loss is a partial failure of the job)
            "taskmanager.memory.process.size": s.flink_tm_memory,
            "taskmanager.load-balance.mode": "SLOTS",
            "taskmanager.memory.managed.fraction": s.flink_managed_fraction,
            # every job loads the connector jars into its own classloader: room for as many
            # jobs as slots (1024m at the default 12 slots; less for smaller TaskManagers)
            "taskmanager.memory.jvm-metaspace.size": f"{min(1024, 256 + 64 * s.flink_slots)}m",
            "jobmanager.memory.jvm-metaspace.size": "512m",
            "classloader.check-leaked-classloader": "false",
            "parallelism.default": f.parallelism,
            "rest.address": h,
            "rest.bind-address": h,
            "rest.port": s.flink_rest_port,
            "blob.server.port": "0",
            # Flink's scratch space (each TaskManager's working directory with its BLOB cache,
            # spill files, the JobManager's BLOB store) in this stack's own directory: under
            # /tmp, TaskManager `flink-taskmanager-1`'s was the same directory for every stack
            # on the machine, and it only grew (prepare() empties it for a TaskManager it starts)
            "io.tmp.dirs": str(self.tmp_dir),
            # a TaskManager drops a finished job's jars and Python files after this (default
            # 1 h): a session cluster that runs many short jobs (the tests) kept GBs of them, and
            # a TaskManager start verifies every cached file (67 s for 21 GB, over `up`'s timeout)
            "blob.service.cleanup.interval": 60,
            "execution.checkpointing.dir": f"file://{self.dir / 'checkpoints'}",
            "execution.checkpointing.savepoint-dir": f"file://{self.dir / 'savepoints'}",
            "execution.checkpointing.num-retained": 2,
            # kept when a job is cancelled or the cluster stops: `flinkpulse jobs resume` and
            # `stack up` restart jobs from them (jobstate.py; there is no HA in a session cluster)
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "state.backend.type": "hashmap",
            # for a job that turns on `state.changelog.enabled` (the bench lever `changelog`):
            # its state changes go to files here. The default storage, "memory", sends them
            # with every checkpoint acknowledgement, which outgrew Pekko's 10 MB frame and lost
            # the TaskManager (bench/README.md, 2026-12-02)
            "state.changelog.storage": "filesystem",
            "state.changelog.dstl.dfs.base-path": f"file://{self.dir / 'changelog'}",
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.initial-backoff": "1 s",
            "restart-strategy.exponential-delay.max-backoff": "10 s",
            # Flink's default (50 s). A dead TaskManager is noticed at once by the tasks that
            # exchange data with it, and by the failing heartbeat calls
            # (heartbeat.rpc-failure-threshold); the timeout is for one that is alive but
            # silent, and a loaded 2-core machine stalled one for 11 s: at 20 s that failed
            # every job on it over to a restart it did not need (docs/event-time.md)
            "heartbeat.timeout": 50000,
            # the launcher forks workers from the TaskManager's fork server; the venv's
            # interpreter otherwise
            "python.executable": str(self.launcher if s.flink_udf_fork else venv_python()),
            "python.client.executable": str(venv_python()),
            # thread mode embeds the interpreter via pemja: it must find site-packages
            "python.pythonpath": f"{ROOT}:{site_packages()}",
            # the jobs set the same (flink_jobs/common.py); here for whatever runs without the
            # jobs' options (SQL client sessions)
            **f.python_options(),
            # REST metrics at most 1 s old (default 10 s): `flinkpulse bench` samples each job's
            # progress every second to split start-up from the steady rate. Set here for every
            # local cluster, not by the bench: it is the JobManager's setting (its REST metric
            # cache) and the bench runs on the cluster `stack up` started, which it cannot
            # reconfigure without a restart. Costs nothing when unused: the JobManager fetches
            # metrics only when a REST request asks for them, at most once per interval.
            "metrics.fetcher.update-interval": 1000,
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
        for d in [
            *(self.dir / n for n in ("log", "run", "checkpoints", "savepoints")),
            self.tmp_dir,
        ]:
            d.mkdir(parents=True, exist_ok=True)
        self.clear_scratch()
        self.write_launcher()
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

    def clear_scratch(self) -> list[Path]:
        """Empty the scratch space of the processes about to start (every process of it when
        none runs, else the TaskManagers that do not): a TaskManager's working directory is
        named after its resource id, so a restarted one would find its predecessor's cached
        BLOBs and verify each of them before it registers. Nothing there outlives a process:
        checkpoints and savepoints are elsewhere, local recovery is off. Returns what it removed."""
        live = self.pids()
        if not live:
            gone = sorted(self.tmp_dir.iterdir()) if self.tmp_dir.is_dir() else []
        else:
            gone = [self.tmp_dir / f"tm_{n}" for n in self.taskmanagers() if n not in live]
        removed = []
        for p in gone:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
                removed.append(p)
        return removed

    def env(self) -> dict[str, str]:
        return {
            "FLINK_HOME": str(pyflink_home()),
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LIB_DIR": str(self.dir / "lib"),
            "FLINK_LOG_DIR": str(self.dir / "log"),
            "FLINK_PID_DIR": str(self.dir / "run"),
            # venv first on PATH: Python workers and pemja (thread mode) resolve from it
            "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
            # Python workers inherit it: UDF_SITE first, so their sitecustomize is ours
            "PYTHONPATH": f"{UDF_SITE}{os.pathsep}{ROOT}",
        }

    def taskmanagers(self) -> list[str]:
        """Process names (and Flink resource ids) of the TaskManagers."""
        return [f"flink-taskmanager-{i}" for i in range(1, max(1, self.cfg.stack.taskmanagers) + 1)]

    def taskmanager_pids(self) -> dict[str, int]:
        """The live TaskManager JVMs of this stack, by process name (its script execs the JVM,
        so the recorded pid is the JVM's)."""
        return {n: pid for n, pid in self.pids().items() if n in self.taskmanagers()}

    def python_workers(self) -> dict[int, str | None]:
        """Process-mode Python UDF workers (beam_boot) of this stack -> the TaskManager they run
        under, None for an orphan."""
        tms = {pid: name for name, pid in self.taskmanager_pids().items()}
        out: dict[int, str | None] = {}
        ours = self.descendants()
        for pid in ours:
            if BOOT_MODULE in cmdline(pid):
                out[pid] = next((tms[a] for a in ancestors(pid) if a in tms), None)
        # a worker forked by its TaskManager's fork server stands in for its client, the
        # launcher process under the TaskManager (the server's registry maps one to the other)
        for tm in self.taskmanagers():
            reg = self.udf_fork_registry(tm)
            for f in sorted(reg.iterdir()) if reg.is_dir() else []:
                try:
                    child, client = int(f.name), int(f.read_text())
                except (OSError, ValueError):
                    continue
                if child in ours:
                    out[child] = out.pop(client, None)
        return out

    def procs(self) -> list[Proc]:
        bin_ = pyflink_home() / "bin"
        env = self.env()
        jm = Proc(
            "flink-jobmanager", ["bash", str(bin_ / "jobmanager.sh"), "start-foreground"], env
        )
        tms = [
            Proc(
                name,
                [
                    *self.udf_fork_host(name),
                    "bash",
                    str(bin_ / "taskmanager.sh"),
                    "start-foreground",
                    "-D",
                    f"taskmanager.resource-id={name}",
                ],
                # its own pid file and log file names in Flink's run/ and log/ directories
                {**env, "FLINK_IDENT_STRING": name.removeprefix("flink-")},
            )  # fmt: skip
            for name in self.taskmanagers()
        ]
        procs = [jm, *tms]
        if self.cfg.stack.flink_submitter:
            procs.append(self.submitter_proc())
        return procs

    @property
    def launcher(self) -> Path:
        """The TaskManagers' python.executable with `stack.flink_udf_fork` (prepare() writes
        it): forks a worker from its TaskManager's fork server, or execs the venv's
        interpreter."""
        return self.dir / "bin" / "python"

    def udf_fork_socket(self, tm: str) -> Path:
        """The socket of TaskManager `tm`'s fork server (a short stand-in when that path is too
        long for a socket: paths.socket_path)."""
        return socket_path(self.state / "run" / f"{UDF_FORK}-{tm.rsplit('-', 1)[-1]}.sock")

    def udf_fork_registry(self, tm: str) -> Path:
        """The live children of `tm`'s fork server, each file named by pid holding its
        client's pid."""
        return self.state / "run" / f"{UDF_FORK}-{tm.rsplit('-', 1)[-1]}"

    def udf_fork_host(self, tm: str) -> list[str]:
        """The command prefix that starts TaskManager `tm` with its fork server as its child
        (flinkpulse.stack.udf_fork.host), [] with `stack.flink_udf_fork` off. No `-I`: its
        workers inherit the server's interpreter flags, and an isolated one would start its
        own subprocesses isolated (multiprocessing passes the flags on)."""
        if not self.cfg.stack.flink_udf_fork:
            return []
        return [
            str(venv_python()), str(udf_fork.__file__), "host",
            str(self.udf_fork_socket(tm)), str(self.udf_fork_registry(tm)), "--",
        ]  # fmt: skip

    def write_launcher(self) -> None:
        # the TaskManager's environment names its own server's socket; the first one's otherwise
        first = self.udf_fork_socket(self.taskmanagers()[0])
        udf_fork.write_launcher(self.launcher, str(venv_python()), str(first))

    def submitter_proc(self) -> Proc:
        """The warm job client (flinkpulse.submitter): a `flink run` client of this cluster
        that stays up, with `flink run`'s environment (flinkrun.flink_env)."""
        from flinkpulse import submitter
        from flinkpulse.flinkrun import flink_env, jobmanager_address, source_zip_path

        address = jobmanager_address(self.address())
        argv = [
            sys.executable, "-m", "flinkpulse.submitter",
            "--socket", str(submitter.socket_path(self.state)), "--jobmanager", address,
        ]  # fmt: skip
        env = {
            **flink_env(self.cfg),
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LOG_DIR": str(self.dir / "log"),
            "FLINK_IDENT_STRING": "submitter",
            # the one-shot clients' options (env.java.opts.client: C1 only) and a bounded
            # heap, as it stays up. C2 as well was slower here: the four jobs took 25.5, 17.6
            # and 16.6 s in three rounds, with C1 only 21.3 and 12.8 s (its compiler threads
            # compete with the cluster for 2 cores)
            "FLINK_ENV_JAVA_OPTS_CLI": f"-XX:TieredStopAtLevel=1 -Xmx1g {GC_FLAGS['serial']}",
            # the client builds the zip before each request (flinkrun._flink_run)
            "SUBMIT_ARGS": submitter.submit_args(address, source_zip_path(self.cfg)),
        }
        return Proc(submitter.PROC, argv, env)

    def overview(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.address() + "/overview", timeout=3) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except Exception:
            return None

    def healthy(self) -> bool:
        """The JobManager answers and all N TaskManagers are registered."""
        ov = self.overview()
        return bool(ov and int(ov.get("taskmanagers", 0)) >= len(self.taskmanagers()))

    def ready(self) -> bool:
        ov = self.overview()
        return bool(
            ov
            and int(ov.get("taskmanagers", 0)) >= len(self.taskmanagers())
            and int(ov.get("slots-available", 0)) > 0
        )

    def extra_status(self) -> str:
        ov = self.overview() or {}
        return (
            f"taskmanagers: {ov.get('taskmanagers', '?')}, jobs running: "
            f"{ov.get('jobs-running', '?')}, slots free: {ov.get('slots-available', '?')}"
        )
