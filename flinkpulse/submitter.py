"""A warm job client next to the local Flink cluster (process ``flink-submitter`` of the stack's
`flink` component): `flinkpulse jobs submit` and the tests hand it the jobs that `flink run -py`
would build, and it builds and submits them in one long-lived PyFlink client.

Why: every `flink run` starts a client JVM and a Python interpreter and warms the SQL planner
again, ~13 s before its first job and 5–11 s a job after that on 2 cores (bench/README.md,
"Start-up outside the jobs"). Kept running, the client builds a job in 3–5 s.

It is the same client: `flink run -d -m <jobmanager> -pyclientexec -pyfs <source zip>`
starts its JVM with Flink's PythonGatewayServer (PyFlink's own launcher, ``SUBMIT_ARGS``), so
a job's `main(argv)` runs in the same context environment as under `flink run -py`, and the
same line `submitted <job>: job id <id>` tells its job id. The jobs of `jobs submit`, `jobs
resume`, a replay and a backfill come here (a resume passes the job `--restore PATH
--claim-mode MODE`, which set the restore on that job's environment alone, where `flink run`
has `-s`); a bench variant does not. Anything it refuses — code changed since it started
(it then starts afresh), another cluster, no gateway — goes through `flink run` as before
(`flinkrun._flink_run`).

Protocol: one JSON line per connection on a Unix socket (``<state>/run/flink-submitter.sock``),
answered by one JSON line: ``{"module", "args", "jobmanager"}`` -> ``{"rc", "out"}`` or
``{"refused": why}``; ``{"ping": true}`` -> ``{"ok": true}``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import shlex
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from flinkpulse import paths
from flinkpulse.config import sets_config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.flinkrun import client_args, jobmanager_address, shipped_files

#: process name in the `flink` component (its pid file, log file and socket are named after it)
PROC = "flink-submitter"
#: longest wait for one job's build and submission (a cold planner on a loaded machine)
REPLY_TIMEOUT_S = 900.0
#: longest wait for the gateway JVM to start
GATEWAY_START_S = 120.0


def socket_path(state: Path) -> Path:
    """Where the submitter of the stack whose state directory is `state` listens (a short
    stand-in when that path is too long for a socket: paths.socket_path)."""
    return paths.socket_path(state / "run" / f"{PROC}.sock")


def submit_args(jobmanager: str, source_zip: Path) -> str:
    """PyFlink's ``SUBMIT_ARGS`` for a client JVM that submits to `jobmanager` as `flink run
    -d -py` does (flinkrun.client_args)."""
    return shlex.join(["remote", *client_args(jobmanager, source_zip)])


# -- client -------------------------------------------------------------------------------------


def _ask(path: Path, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """Send one request; its answer, or None if nobody listens. Raises FlinkpulseError when
    the submitter stops after it took the request (a job may have been submitted)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2.0)
        try:
            s.connect(str(path))
            s.sendall(json.dumps(request).encode() + b"\n")
        except OSError:
            return None
        s.settimeout(timeout)
        buf = b""
        with contextlib.suppress(OSError):
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    finally:
        s.close()
    if not buf.endswith(b"\n"):
        raise FlinkpulseError(
            f"the job submitter ({path}) stopped while it built {request.get('module')}: "
            "see `flinkpulse jobs list` before submitting it again"
        )
    answer: dict[str, Any] = json.loads(buf)
    return answer


def submit(state: Path, jobmanager: str, module: str, args: list[str]) -> tuple[int, str] | None:
    """Run `module`'s main(args) (a job of flink_jobs/) in the stack's warm client: (exit code,
    its output), or None when there is no submitter or it refused (then use `flink run`)."""
    path = socket_path(state)
    if not path.exists():
        return None
    request = {"module": module, "args": args, "jobmanager": jobmanager_address(jobmanager)}
    answer = _ask(path, request, REPLY_TIMEOUT_S)
    if answer is None or "refused" in answer:
        return None
    return int(answer["rc"]), str(answer["out"])


def alive(state: Path) -> bool:
    """Whether the stack's submitter answers."""
    path = socket_path(state)
    try:
        return path.exists() and (_ask(path, {"ping": True}, 5.0) or {}).get("ok") is True
    except FlinkpulseError:
        return False


# -- server -------------------------------------------------------------------------------------


def source_fingerprint() -> str:
    """The code a job's client runs (flinkrun.SHIPPED), as each file's path, size and
    modification time: any edit, new, removed or renamed file changes it."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(shipped_files()):
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Server:
    """Serves one request at a time; the gateway JVM starts in the background."""

    def __init__(self, path: Path, jobmanager: str, package: str = "flink_jobs") -> None:
        self.path = path
        #: the only modules it runs: the jobs'
        self.package = package
        self.jobmanager = jobmanager_address(jobmanager)
        self.started_code = source_fingerprint()
        self.gateway_ready = threading.Event()
        self.gateway_error: str | None = None
        self.gateway: Any = None  # the `flink run` process of the gateway JVM

    def start_gateway(self) -> None:
        """PyFlink's gateway through `flink run` (``SUBMIT_ARGS`` in our environment), its
        stderr drained into our log (PyFlink's launcher pipes it and never reads it)."""
        try:
            from pyflink.pyflink_gateway_server import launch_gateway_server_process

            info_dir = Path(tempfile.mkdtemp(prefix="flinkpulse-gateway-"))
            info = info_dir / "conn"
            env = {**os.environ, "_PYFLINK_CONN_INFO_PATH": str(info)}
            args = ["-c", "org.apache.flink.client.python.PythonGatewayServer"]
            proc = launch_gateway_server_process(env, args + shlex.split(env["SUBMIT_ARGS"]))
            self.gateway = proc
            threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
            deadline = time.monotonic() + GATEWAY_START_S
            while proc.poll() is None and not info.is_file() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not info.is_file():
                proc.kill()
                raise RuntimeError(f"no gateway JVM within {GATEWAY_START_S:.0f} s ({proc.wait()})")
            time.sleep(0.1)  # the launcher writes 4 bytes: let them land
            port = struct.unpack("!I", info.read_bytes()[:4])[0]
            info.unlink()
            info_dir.rmdir()
            os.environ["PYFLINK_GATEWAY_PORT"] = str(port)
            from pyflink.java_gateway import get_gateway

            get_gateway()
            print(f"gateway ready (port {port}, flink run -m {self.jobmanager})", flush=True)
        except Exception as e:  # noqa: BLE001 - every request is refused: `flink run` instead
            self.gateway_error = f"{type(e).__name__}: {e}"
            print(f"gateway failed: {self.gateway_error}", flush=True)
        finally:
            self.gateway_ready.set()

    def gateway_alive(self) -> bool:
        """The gateway JVM runs and answers (a process just killed is not reaped yet, so its
        exit alone is not enough: ask it something)."""
        if self.gateway is None:
            return True  # no JVM of ours (tests of the protocol)
        if self.gateway.poll() is not None:
            return False
        try:
            from pyflink.java_gateway import get_gateway

            get_gateway().jvm.java.lang.System.currentTimeMillis()
        except Exception:  # noqa: BLE001 - py4j's network errors: the JVM is gone
            return False
        return True

    def handle(self, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """(answer, whether to stop serving afterwards)."""
        if request.get("ping"):
            return {"ok": True}, False
        if request.get("jobmanager") != self.jobmanager:
            return {"refused": f"this submitter serves {self.jobmanager}"}, False
        if source_fingerprint() != self.started_code:
            # its modules were imported before the change: `flink run` builds this job with
            # the new code, and the submitter starts afresh (main)
            return {"refused": "the code changed since the submitter started"}, True
        module, args = str(request["module"]), [str(a) for a in request["args"]]
        if not module.startswith(f"{self.package}."):
            return {"refused": f"{module} is not a module of {self.package}"}, False
        self.gateway_ready.wait(GATEWAY_START_S + 30)
        if not self.gateway_ready.is_set():
            return {"refused": "no gateway yet"}, False
        if self.gateway_error:  # `flink run` for this job; the next start tries again
            return {"refused": f"no gateway ({self.gateway_error})"}, True
        if not self.gateway_alive():
            # its JVM died (killed, out of memory): `flink run` for this job, then afresh
            return {"refused": "the gateway JVM is gone"}, True
        t0 = time.monotonic()
        print(f"{module} {shlex.join(args)}: building", flush=True)
        rc, out = run_main(module, args)
        print(f"{module} {shlex.join(args)}: exit {rc} in {time.monotonic() - t0:.1f}s", flush=True)
        return {"rc": rc, "out": out}, False

    def serve(self, gateway: bool = True) -> None:
        """Answer requests until the code changes (`gateway` False: no JVM, for tests of the
        protocol)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o077)  # the socket is ours alone from the start
        try:
            s.bind(str(self.path))
        finally:
            os.umask(umask)
        s.listen(16)
        if gateway:
            threading.Thread(target=self.start_gateway, daemon=True).start()
        else:
            self.gateway_ready.set()
        try:
            while True:
                conn, _ = s.accept()
                with conn:
                    stop = self._one(conn)
                if stop:
                    print("starting afresh (code changed, or no gateway JVM)", flush=True)
                    self._refuse_queued(s)
                    return
        finally:
            s.close()
            self.path.unlink(missing_ok=True)

    def _refuse_queued(self, s: socket.socket) -> None:
        """Refuse the requests already waiting, so their callers use `flink run` (closed
        unanswered, they would not know whether their job was submitted)."""
        self.path.unlink(missing_ok=True)  # no new ones
        s.settimeout(0.2)
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.sendall(json.dumps({"refused": "starting afresh"}).encode() + b"\n")

    def _one(self, conn: socket.socket) -> bool:
        buf = b""
        conn.settimeout(10)
        try:
            while not buf.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return False
                buf += chunk
            answer, stop = self.handle(json.loads(buf))
        except Exception as e:  # noqa: BLE001 - a bad request must not stop the submitter
            answer, stop = {"refused": f"bad request: {type(e).__name__}: {e}"}, False
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(answer).encode() + b"\n")
        return stop


def run_main(module: str, args: list[str]) -> tuple[int, str]:
    """`module`.main(args) with its output captured, as `flink run -py` would run it: (exit
    code, output)."""
    out = io.StringIO()
    rc = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            importlib.import_module(module).main(args)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if e.code is not None and not isinstance(e.code, int):
                print(e.code)
        except Exception:  # noqa: BLE001 - reported to the caller as `flink run` would
            rc = 1
            traceback.print_exc()
    return rc, out.getvalue()


def _drain(stream: Any) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flinkpulse.submitter")
    p.add_argument("--socket", required=True, type=Path)
    p.add_argument("--jobmanager", required=True, help="host:port of the cluster's REST API")
    args = p.parse_args(argv)
    # a job's config is its --config file, the caller's whole effective config: the settings
    # in the environment `stack up` ran with must not override it (`flink run` runs in the
    # caller's environment, which the file already reflects)
    for name in [n for n in os.environ if sets_config(n)]:
        del os.environ[name]
    server = Server(args.socket, args.jobmanager)
    server.serve()
    # the code changed or the gateway JVM is gone: the same process (pid, log) afresh, after
    # its JVM (which would notice only at its next call back into Python)
    if server.gateway is not None:
        server.gateway.kill()
        server.gateway.wait(30)
    time.sleep(2.0 if server.gateway_error is None else 10.0)  # no tight loop of failures
    os.execv(
        sys.executable, [sys.executable, "-m", "flinkpulse.submitter", *(argv or sys.argv[1:])]
    )


if __name__ == "__main__":
    main()
