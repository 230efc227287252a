"""The pluggable component model of the local stack.

A component owns one or more OS processes (a :class:`Proc` each), started in their own session
so that `stack down` can stop the whole process group. Each process has a PID file and a log
file under the stack's state directory; a PID counts as ours only while its environment carries
that state directory (so a recycled PID is never killed). Every descendant inherits that
environment plus the component's name, so processes a component's processes start themselves
(Flink's Python UDF workers) are found, and reaped, even after their parent died.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flinkpulse.config import CONFIG_ENV, Config, load_config, write_config_file
from flinkpulse.errors import FlinkpulseError, UsageError


@dataclass
class Proc:
    """One process of a component: its command, environment and working directory."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


class Component:
    """Base class: subclasses set ``name``, and implement ``procs``, ``ports`` and ``healthy``."""

    name: str = ""
    #: seconds `up` waits for readiness before giving up
    start_timeout: float = 90.0
    #: the components it talks to as it starts: `up` starts it once those of them it starts too
    #: are ready, and the rest at once
    needs: tuple[str, ...] = ()
    #: its processes run flinkpulse's own code, which loads the config: `start` hands them the
    #: one this component was built with, as a file (`settings_file`, named by $FLINKPULSE_CONFIG).
    #: Without it they saw neither the flags nor the --config of `stack up`, nor
    #: ./flinkpulse.toml (they run in the component's directory): `--topic-prefix X stack up`
    #: started a loader of the unprefixed topics
    reads_config: bool = False
    #: the settings that shape its processes, as `section` (all of it), `section.key` or a
    #: glob such as `stack.flink_*` (every setting when empty): `stack up` names those that
    #: differ between the running component and the config it was asked to start with
    settings: tuple[str, ...] = ()

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = cfg.stack.state_path()
        self.dir = self.state / self.name

    # -- to implement -------------------------------------------------------------------------
    def procs(self) -> list[Proc]:
        raise NotImplementedError

    def ports(self) -> list[int]:
        """Ports this component binds (checked before start)."""
        return []

    def address(self) -> str:
        return ""

    def healthy(self) -> bool:
        raise NotImplementedError

    def ready(self) -> bool:
        """Ready to serve after a fresh start; defaults to healthy."""
        return self.healthy()

    def prepare(self) -> None:
        """Write configuration, format storage... before the first process starts."""

    def after_start(self) -> None:
        """Runs once the component is ready (create topics, users, print passwords...)."""

    def extra_status(self) -> str:
        """A short free-text column for `stack status` (e.g. loader lag)."""
        return ""

    def failure(self) -> str:
        """Why a process of the component stopped, when it said so (e.g. the loader's error);
        `stack status` shows it for a component some of whose processes are gone."""
        return ""

    # -- files --------------------------------------------------------------------------------
    def log_file(self, proc: str | None = None) -> Path:
        return self.state / "logs" / f"{proc or self.name}.log"

    @property
    def settings_file(self) -> Path:
        """The flinkpulse config it was last started with (what its processes read, when
        `reads_config`)."""
        return self.dir / "config.toml"

    def started_config(self) -> Config | None:
        """The config its running processes were started with, or None (not running, or
        started by a flinkpulse that kept none)."""
        if not self.running() or not self.settings_file.exists():
            return None
        try:
            return load_config(self.settings_file, env={})
        except UsageError:  # written by another flinkpulse version: unknown
            return None

    def pid_file(self, proc: str) -> Path:
        return self.state / "run" / f"{proc}.pid"

    # -- process control ----------------------------------------------------------------------
    def pids(self) -> dict[str, int]:
        """Live processes of ours, by process name."""
        out: dict[str, int] = {}
        run = self.state / "run"
        for pf in sorted(run.glob("*.pid")) if run.exists() else []:
            proc = pf.stem
            if proc != self.name and not proc.startswith(self.name + "-"):
                continue
            try:
                pid = int(pf.read_text().split()[0])
            except (ValueError, IndexError, OSError):
                continue
            if is_ours(pid, self.state):
                out[proc] = pid
        return out

    def running(self) -> bool:
        return bool(self.pids())

    def missing(self) -> list[str]:
        """The component's processes that are not alive (`up` restarts them)."""
        live = self.pids()
        return [p.name for p in self.procs() if p.name not in live]

    def complete(self) -> bool:
        """Every process of the component is alive."""
        return not self.missing()

    def make_room(self, live: dict[str, int]) -> None:
        """Before a start: reap the orphans of an earlier run, and, if none of its processes
        is `live`, refuse a port another process holds."""
        self.reap_orphans()
        if not live:
            for port in self.ports():
                check_port_free(self.cfg.stack.host, port, self.name)

    def start(self) -> None:
        """Start every process that is not already running (idempotent)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.state / "logs").mkdir(parents=True, exist_ok=True)
        (self.state / "run").mkdir(parents=True, exist_ok=True)
        live = self.pids()
        procs = self.procs()
        if all(p.name in live for p in procs):
            return
        self.make_room(live)
        self.prepare()
        procs = self.procs()  # again: argv and env may use what prepare() wrote (secrets)
        given = {}
        if self.reads_config:
            given = {CONFIG_ENV: str(write_config_file(self.cfg, self.settings_file))}
        elif not live:
            # what it was started with, for `stack up` to compare (stack.settings_drift); a
            # partial restart keeps it: the processes still alive run with the old settings
            write_config_file(self.cfg, self.settings_file)
        for p in procs:
            if p.name in live:
                continue
            log = self.log_file(p.name)
            env = {
                **os.environ,
                **given,
                **p.env,
                OWNER_ENV: str(self.state),
                COMPONENT_ENV: self.name,
            }
            with open(log, "ab") as fh:
                fh.write(f"\n--- flinkpulse: starting {p.name} at {time.ctime()} ---\n".encode())
                fh.flush()
                try:
                    child = subprocess.Popen(
                        p.argv,
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=env,
                        cwd=p.cwd or self.dir,
                        start_new_session=True,
                    )
                except FileNotFoundError:
                    raise FlinkpulseError(
                        f"{self.name}: cannot run {p.argv[0]!r} — is it installed and on PATH?"
                    ) from None
            self.pid_file(p.name).write_text(f"{child.pid}\n")

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        strikes = 0
        while time.monotonic() < deadline:
            if self.ready():
                return
            expected = {p.name for p in self.procs()}
            dead = expected - set(self.pids())
            # seen missing on three polls in a row: a launcher script that execs the JVM (Flink's
            # taskmanager.sh) has an unreadable /proc/<pid>/environ for a moment during the exec
            strikes = strikes + 1 if dead else 0
            if strikes >= 3:
                name = sorted(dead)[0]
                raise FlinkpulseError(
                    f"{self.name} died during start; last lines of {self.log_file(name)}:\n"
                    + tail(self.log_file(name), 15)
                )
            time.sleep(0.5)
        raise FlinkpulseError(
            f"{self.name} did not become ready within {timeout or self.start_timeout:.0f}s; "
            f"see {self.log_file(self.procs()[0].name)}"
        )

    def descendants(self) -> list[int]:
        """Every live process this component started, directly or not (its marker is inherited)."""
        return [
            pid
            for pid, env in _marked(self.state).items()
            if f"{COMPONENT_ENV}={self.name}".encode() in env
        ]

    def orphans(self) -> list[int]:
        """Descendants whose process of ours is gone (e.g. the UDF workers of a killed TaskManager)."""
        roots = set(self.pids().values())
        return [pid for pid in self.descendants() if not roots & ancestors(pid)]

    def reap_orphans(self) -> list[int]:
        """SIGKILL the orphans (`stack up` does this before it starts a replacement)."""
        gone = self.orphans()
        for pid in gone:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in gone:
            _wait_gone(pid, 10)
        return gone

    def stop(self, grace: float = 20.0) -> list[int]:
        """SIGTERM each process group of ours and every other descendant (orphans included),
        then SIGKILL what is left after `grace` seconds."""
        pids = self.pids()
        strays = [p for p in self.descendants() if p not in pids.values()]
        for pid in pids.values():
            _signal_group(pid, signal.SIGTERM)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        everything = [*pids.values(), *strays]
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in everything):
            time.sleep(0.2)
        for pid in pids.values():
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
        self.reap_orphans()  # the groups are gone: whatever is left has no parent of ours
        for pid in everything:
            _wait_gone(pid, 10)
        for proc in pids:
            self.pid_file(proc).unlink(missing_ok=True)
        return list(pids.values())

    def kill(self, proc: str | None = None, group: bool = True) -> None:
        """kill -9 (fault tests): the named process, or all of this component's; with its
        process group, or (``group=False``) the process alone, as the OOM killer does."""
        for name, pid in self.pids().items():
            if proc is None or name == proc:
                if group:
                    _signal_group(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 10)


# -- helpers ----------------------------------------------------------------------------------


#: set in the environment of every process the stack starts (survives exec, unlike argv)
OWNER_ENV = "FLINKPULSE_OWNED_BY"
#: the component that started it (inherited by its children, e.g. Python UDF workers)
COMPONENT_ENV = "FLINKPULSE_COMPONENT"


def is_ours(pid: int, state_dir: Path) -> bool:
    """True if `pid` is alive and was started by the stack that owns `state_dir`."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return _alive(pid) and f"{OWNER_ENV}={state_dir}".encode() in environ


def _marked(state_dir: Path) -> dict[int, list[bytes]]:
    """Live processes whose environment carries `state_dir` as owner -> their environment."""
    mark = f"{OWNER_ENV}={state_dir}".encode()
    out: dict[int, list[bytes]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            env = (p / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if mark in env and _alive(int(p.name)):
            out[int(p.name)] = env
    return out


def ancestors(pid: int) -> set[int]:
    """`pid` and its ancestors up to init."""
    out: set[int] = set()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return out


def cmdline(pid: int) -> str:
    """The command line of `pid`, arguments joined by spaces ("" once it is gone)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return st.rsplit(")", 1)[-1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def port_owner(port: int) -> str:
    """Best-effort 'pid 123 (java)' of the process listening on `port`, from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    if not inodes:
        return ""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    comm = (proc / "comm").read_text().strip()
                    return f"pid {proc.name} ({comm})"
        except OSError:
            continue
    return ""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def check_port_free(host: str, port: int, component: str) -> None:
    if port and port_in_use(host, port):
        owner = port_owner(port)
        by = f" by {owner}" if owner else ""
        raise FlinkpulseError(
            f"port {port} ({component}) on {host} is already in use{by} — stop that process "
            f"or choose another port (e.g. FLINKPULSE_STACK__{component.upper()}_PORT)"
        )


def tail(path: Path, n: int = 20) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()
