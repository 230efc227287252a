"""Python UDF workers fork from a warm interpreter instead of importing Beam and PyFlink anew.

A process-mode worker spends ~1.7 s of CPU importing `apache_beam` and `pyflink.fn_execution`
before it connects; a job starts several at once, on a TaskManager that is deploying its tasks
at the same time. Each TaskManager therefore has a *fork server* that has done those imports,
and the TaskManagers' ``python.executable`` is a launcher script (``Flink.launcher``) that runs
this file as a *client*:

- The stack starts a TaskManager through ``host``: the process forks the server, then execs the
  TaskManager, keeping its pid. So the server and the workers it forks are in the TaskManager's
  session and process group: the kernel shares CPU between sessions (autogroups), so a worker
  competes as part of its TaskManager, as one the JVM started itself would (and as in a
  container), not in a session of all workers of all TaskManagers (bench/README.md). The
  server dies with its TaskManager (PR_SET_PDEATHSIG). The TaskManager's environment names its
  server's socket (``SOCKET_ENV``), which the launcher asks.
- PyFlink's runner script starts ``<launcher> -m pyflink.fn_execution.beam.beam_boot <args>``.
- The client sends its arguments, working directory and environment, and its stdin, stdout and
  stderr (SCM_RIGHTS) to the server, which forks a child. The child takes those descriptors,
  directory, environment and ``sys.path`` (its ``PYTHONPATH`` entries first, as a fresh
  interpreter would) and runs ``beam_boot`` as ``__main__``. Modules imported in the server are
  shared; nothing of the job's own code (``udfs``, ``flink_jobs``, the shipped files) is.
- The client stays as the child's stand-in for the TaskManager: it forwards SIGTERM, SIGINT,
  SIGHUP and SIGQUIT to the child, and exits with the child's status.

The guards of flinkpulse.stack.udf_guard hold for a forked worker too: the client dies with the
runner shell (PR_SET_PDEATHSIG); the child exits when the client is gone (its socket reads EOF)
and when the TaskManager is gone (its stdin, the JVM's pipe, reads EOF).

Anything else the launcher is asked to run (``-c``, another module, no server listening, a
server that does not answer) is the real interpreter: the client execs it with the same
arguments and environment. So a stack without the server, or a TaskManager that asks its
interpreter something (thread mode), behaves as before. Environment variables that act as an
interpreter starts (``PYTHONHASHSEED``, ``PYTHONOPTIMIZE`` ...) are the server's for a forked
worker. The server's ``registry`` directory names each live child by pid, holding its client's
pid (``Flink.python_workers`` maps a client to its worker with it).

This file imports nothing but the standard library, and the client runs it with ``-I -S``:
a client starts in ~20 ms.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from pathlib import Path

#: the module PyFlink's runner script starts (flinkpulse.stack.udf_guard.BOOT_MODULE)
BOOT_MODULE = "pyflink.fn_execution.beam.beam_boot"
#: what the server imports before it forks: the worker's own start-up (beam_boot, Beam's SDK
#: harness) and the operations and coders every table UDF worker loads
PRELOAD = (
    BOOT_MODULE,
    "pyflink.fn_execution.beam.beam_sdk_worker_main",
    "pyflink.fn_execution.beam.beam_operations",
    "pyflink.fn_execution.beam.beam_coders",
    "pyflink.fn_execution.table.operations",
    "pyflink.fn_execution.coders",
    "cloudpickle",
)
#: exit status of a worker whose TaskManager or client is gone (128 + SIGHUP, like a hung-up
#: terminal)
EXIT_CODE = 129
#: prctl option from <linux/prctl.h>
PR_SET_PDEATHSIG = 1
#: the environment variable naming the socket of the TaskManager's own fork server (``host``
#: sets it; the launcher's baked-in socket otherwise)
SOCKET_ENV = "FLINKPULSE_UDF_FORK_SOCKET"
#: signals the client passes on to its worker
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
_HEADER = struct.Struct("!I")


# -- client -------------------------------------------------------------------------------------


def connect(sock_path: str, python: str, args: list[str]) -> int:
    """Run ``python <args>``: forked from the server when `args` run a module (``-m``) and the
    server forks it, else by exec'ing `python` (this process becomes the interpreter)."""
    if len(args) < 2 or args[0] != "-m":
        _exec(python, args)
    die_with_parent()
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(sock_path)
        payload = json.dumps({"argv": args, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        data = _HEADER.pack(len(payload)) + payload
        sent = socket.send_fds(conn, [data], [0, 1, 2])
        conn.sendall(data[sent:])
        reader = conn.makefile("rb")
        first = reader.readline().decode().split()
    except OSError as e:
        _note(f"the fork server at {sock_path} is not reachable ({e}): a fresh interpreter")
        _exec(python, args)
    if len(first) != 2 or first[0] != "pid":
        _note(f"the fork server did not fork ({' '.join(first) or 'no answer'}): a fresh one")
        _exec(python, args)
    child = int(first[1])

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    while True:
        try:
            line = reader.readline().decode().split()
        except InterruptedError:
            continue
        break
    if len(line) != 2 or line[0] != "exit":
        return EXIT_CODE  # the server went away before its child
    code = int(line[1])
    if code < 0:  # the worker died of a signal: so does its stand-in
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


def write_launcher(path: Path, python: str, sock_path: str) -> None:
    """Write the `python.executable` that runs this file's client: a worker forked by the
    server at `sock_path`, anything else `python` itself."""
    import shlex

    path.parent.mkdir(parents=True, exist_ok=True)
    script = shlex.join(["exec", python, "-I", "-S", str(Path(__file__).resolve()), "connect"])
    # the socket of the TaskManager's own server (host), else `sock_path`
    sock = f'"${{{SOCKET_ENV}:-{sock_path}}}"'
    path.write_text(
        f"#!/bin/sh\n# flinkpulse: a Python UDF worker forks from a warm interpreter "
        f'(flinkpulse/stack/udf_fork.py)\n{script} {sock} {shlex.quote(python)} "$@"\n'
    )
    path.chmod(0o755)


def _exec(python: str, args: list[str]) -> None:
    os.execv(python, [python, *args])


def _note(msg: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, f"flinkpulse: {msg}\n".encode())


def die_with_parent(parent: int | None = None) -> None:
    """SIGKILL this process when its parent (PyFlink's runner shell, a TaskManager; `parent`,
    else the current one) exits, and exit at once if it is gone already (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid() if parent is None else parent
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0 and os.getppid() != parent:
        os._exit(EXIT_CODE)  # the parent was gone before the signal was armed


# -- server -------------------------------------------------------------------------------------


def serve(sock_path: str, registry: str, modules: tuple[str, ...] = (BOOT_MODULE,)) -> None:
    """Import PRELOAD, then fork a worker for each client that runs one of `modules` with
    ``-m``, until SIGTERM (a client asking for another module runs a fresh interpreter)."""
    started = time.monotonic()
    # a fresh interpreter's path without this script's directory (it holds modules named
    # kafka, java ...) and without the server's own PYTHONPATH (its TaskManager's, under
    # host): a child puts its working directory and its PYTHONPATH in front
    drop = {str(Path(__file__).resolve().parent)}
    drop |= {
        str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    }
    sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) not in drop]
    base = list(sys.path)
    for name in PRELOAD:
        __import__(name)
    gc.freeze()  # what the imports made stays shared with the children (no copy on collection)
    reg = Path(registry)
    reg.mkdir(parents=True, exist_ok=True)
    for stale in reg.iterdir():
        stale.unlink(missing_ok=True)
    Path(sock_path).unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    os.chmod(sock_path, 0o600)  # whoever connects chooses a child's PYTHONPATH: this user only
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, socket.socket] = {}
    print(
        f"flinkpulse udf-fork: listening at {sock_path}, {len(sys.modules)} modules imported "
        f"in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    while True:
        try:
            ready, _, _ = select.select([listener.fileno(), wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        _reap(children, reg)
        if listener.fileno() in ready:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                _fork(conn, base, children, reg, (listener.fileno(), wake_r, wake_w), modules)
            except Exception as e:  # a bad request: the client runs a fresh interpreter
                print(f"flinkpulse udf-fork: request refused: {e!r}", flush=True)
                with contextlib.suppress(OSError):
                    conn.sendall(f"error {type(e).__name__}\n".encode())
                conn.close()


def _reap(children: dict[int, socket.socket], reg: Path) -> None:
    """Tell each exited child's client its status."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        (reg / str(pid)).unlink(missing_ok=True)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            conn.close()


def _fork(
    conn: socket.socket,
    base: list[str],
    children: dict[int, socket.socket],
    reg: Path,
    server_fds: tuple[int, ...],
    modules: tuple[str, ...],
) -> None:
    conn.settimeout(10)
    msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    try:
        if len(fds) != 3 or len(msg) < _HEADER.size:
            raise ValueError(f"expected 3 descriptors and a header, got {len(fds)}, {len(msg)} B")
        (size,) = _HEADER.unpack_from(msg)
        body = bytearray(msg[_HEADER.size :])
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                raise ValueError("the request ended early")
            body += chunk
        request = json.loads(bytes(body))
        if request["argv"][1] not in modules:
            raise ValueError(f"not a module it forks: {request['argv'][1]}")
        client_pid = struct.unpack(
            "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        )[0]
        conn.settimeout(None)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            _child(
                conn, fds, request, base, [*server_fds, *(c.fileno() for c in children.values())]
            )
    finally:
        for fd in fds:
            os.close(fd)
    children[pid] = conn
    (reg / str(pid)).write_text(f"{client_pid}\n")
    conn.sendall(f"pid {pid}\n".encode())


def _child(
    conn: socket.socket, fds: list[int], request: dict, base: list[str], close: list[int]
) -> None:
    """Become the worker the client asked for; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        # a fresh interpreter's dispositions (the server's SIGTERM exits it cleanly)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in close:
            with contextlib.suppress(OSError):
                os.close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        env = request["env"]
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(env)
        args = request["argv"]
        entries = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [os.getcwd(), *entries, *base]
        sys.argv = [args[1], *args[2:]]
        import threading

        threading.Thread(
            target=exit_on_eof, args=(os.dup(conn.fileno()), "client is gone"), daemon=True
        ).start()
        if _is_fifo(0):
            threading.Thread(
                target=exit_on_eof,
                args=(os.dup(0), "TaskManager is gone (stdin closed)"),
                daemon=True,
            ).start()
        import runpy

        try:
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = _exit_code(e)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _exit_code(e: SystemExit) -> int:
    """The status an interpreter exits with for `e` (None 0, an int itself, anything else 1)."""
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


def _is_fifo(fd: int) -> bool:
    import stat

    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def exit_on_eof(fd: int, what: str) -> None:
    """Block until the other end of `fd` closes, then end this worker."""
    while True:
        try:
            if not os.read(fd, 65536):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    os.write(2, f"flinkpulse: the {what}: Python worker exits\n".encode())
    os._exit(EXIT_CODE)


def host(
    sock_path: str, registry: str, program: list[str], modules: tuple[str, ...] = (BOOT_MODULE,)
) -> None:
    """Become `program` (a TaskManager's start script, which execs the JVM: same pid), with a
    fork server at `sock_path` as this process's child: in its session and process group, and
    gone with it. `program` and its children get ``SOCKET_ENV``; never returns."""
    leader = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() == 0:  # pragma: no cover - runs in the child until the TaskManager ends
        code = 1
        try:
            die_with_parent(leader)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            serve(sock_path, registry, modules)
            code = 0
        except SystemExit as e:
            code = _exit_code(e)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.environ[SOCKET_ENV] = sock_path
    os.execvp(program[0], program)


USAGE = (
    "usage: udf_fork.py serve SOCKET REGISTRY [MODULE...] | connect SOCKET PYTHON [ARGS...] "
    "| host SOCKET REGISTRY [MODULE...] -- PROGRAM [ARGS...]"
)


def main(argv: list[str]) -> int:
    """``serve``, ``connect`` or ``host`` (USAGE)."""
    if len(argv) >= 3 and argv[0] == "serve":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        serve(argv[1], argv[2], tuple(argv[3:]) or (BOOT_MODULE,))
        return 0
    if len(argv) >= 3 and argv[0] == "connect":
        return connect(argv[1], argv[2], argv[3:])
    if len(argv) >= 5 and argv[0] == "host" and "--" in argv[3:-1]:
        end = argv.index("--", 3)
        host(argv[1], argv[2], argv[end + 1 :], tuple(argv[3:end]) or (BOOT_MODULE,))
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
