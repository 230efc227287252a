"""Submitting flinkpulse jobs with Flink's own CLI: `flink run -d -py flink_jobs/<job>.py` with the
repository's Python packages shipped as one zip (-pyfs), the effective config as a TOML file, and
the environment Flink's client scripts need; a new streaming job goes to the local stack's warm
client instead when it runs (flinkpulse.submitter). Watching and stopping jobs is the REST
client's (flinkpulse.flinkrest).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from flinkpulse.config import Config, write_config_file
from flinkpulse.errors import FlinkpulseError, UsageError
from flinkpulse.flinkrest import FlinkRest, job_name
from flinkpulse.paths import ROOT, pyflink_home

#: what a Python worker needs from this repository, shipped with every job (-pyfs): the
#: packages the jobs import (tests/unit/test_core_imports.py walks their imports) and the data
#: they read
SHIPPED = ["flinkpulse", "flink_jobs", "udfs", "avro_schemas", "sql"]


def shipped_files() -> list[Path]:
    """The files of SHIPPED (no bytecode)."""
    return [
        p
        for d in SHIPPED
        for p in (ROOT / d).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",)
    ]


def source_zip_path(cfg: Config) -> Path:
    """Where `source_zip` writes the zip."""
    return cfg.stack.state_path() / "ship" / "flinkpulse-src.zip"


def source_zip(cfg: Config) -> Path:
    """Zip the Python packages and data the workers need (rebuilt when sources change)."""
    out = source_zip_path(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = shipped_files()
    newest = max((p.stat().st_mtime for p in files), default=0)
    if out.exists() and out.stat().st_mtime >= newest:
        return out
    # a temporary name of its own: two submissions at once (two terminals, or threads) each
    # build one and the last rename wins, where a shared name lost one of them the file
    tmp = out.with_name(f"{out.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for p in files:
                z.write(p, p.relative_to(ROOT))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def write_config(cfg: Config, name: str) -> Path:
    """The effective config as TOML, handed to the job's main() with --config."""
    return write_config_file(cfg, cfg.stack.state_path() / "ship" / f"{name}.toml")


def client_opt_dir(cfg: Config) -> Path:
    """The wheel's opt/ plus the jars it lacks (SQL gateway), for the CLI and SQL client."""
    opt = cfg.stack.state_path() / "flink" / "opt"
    opt.mkdir(parents=True, exist_ok=True)
    extra = cfg.stack.jars_path() / "flink-opt"
    jars = [*sorted((pyflink_home() / "opt").glob("*.jar")), *sorted(extra.glob("*.jar"))]
    for jar in jars:
        link = opt / jar.name
        if not link.exists():
            with contextlib.suppress(FileExistsError):  # another process made it just now
                link.symlink_to(jar)
    return opt


def flink_env(cfg: Config) -> dict[str, str]:
    """Environment for Flink's client scripts: our config dir, opt dir and interpreter."""
    env = dict(os.environ)
    conf = cfg.stack.state_path() / "flink" / "conf"
    if conf.is_dir():
        env["FLINK_CONF_DIR"] = str(conf)
    env["FLINK_OPT_DIR"] = str(client_opt_dir(cfg))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYFLINK_CLIENT_EXECUTABLE", sys.executable)
    return env


def submit(
    cfg: Config,
    job: str,
    savepoint: str | None = None,
    extra_args: list[str] | None = None,
    wait_running: bool = True,
    name: str | None = None,
    warm: bool | None = None,
    start_at_ms: int | None = None,
) -> str:
    """`flink run -d -py flink_jobs/<job>.py` against cfg.flink.jobmanager; returns the job id.
    `name` is the Flink job name the job gives itself, when not the streaming one (a backfill).
    `warm`: whether the stack's warm client may build it (default: a job without extra
    arguments; a bench variant goes through `flink run`, as its figures were measured).
    `start_at_ms`: read the event topics from that Kafka timestamp on (the job's `--start-at`),
    recorded in the ledger so that a fresh `resume` starts there again."""
    script = ROOT / "flink_jobs" / f"{job}.py"
    if not script.exists():
        from flink_jobs import JOBS

        raise UsageError(f"unknown job {job!r} (jobs: {', '.join([*JOBS, 'archive'])})")
    name = name or job_name(cfg, job)
    # one submission of a name at a time on this machine: the check below and `flink run`
    # must not interleave with another process's (two copies of one job would both run)
    with exclusive(cfg.stack.state_path() / "run" / f"submit-{name}.lock"):
        warm = not extra_args if warm is None else warm
        return _submit_locked(
            cfg, job, name, script, savepoint, extra_args, wait_running, warm, start_at_ms
        )


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock` across processes, and remove the file when done: one
    lock file per job name would otherwise stay behind for every prefix ever submitted.

    Removing a lock file is safe only if a waiter that then gets the lock on the removed file
    notices: it must find `lock` to be the file it holds, and otherwise tries again."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fh = lock.open("a")
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(fh.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        fh.close()  # the holder before us removed it: lock the file that is there now
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # still holding it: a waiter on it will try again
        fh.close()


def holds_ctrl_c() -> bool:
    """Whether `interrupt_after` holds a Ctrl-C here: Python runs signal handlers on the main
    thread only. `_run_client` puts `flink run` in a session of its own exactly then."""
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def interrupt_after(what: str) -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt; a second one
    raises at once. A job the block submits is then recorded before the command stops: the
    warm client keeps building a job its caller left, and `jobs resume` cannot find the
    checkpoints of a job nobody recorded (jobstate)."""
    if not holds_ctrl_c():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if caught:
            raise KeyboardInterrupt
        caught.append(signum)
        print(f"flinkpulse: {what}; Ctrl-C again to stop waiting", file=sys.stderr, flush=True)

    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, hold)
        yield
    except BaseException as e:
        if caught and not isinstance(e, KeyboardInterrupt):
            # the user's stop still wins (a caller that goes on after an error must not swallow
            # it), after the error that ended the block is told
            print(f"flinkpulse: error: {e}", file=sys.stderr, flush=True)
            raise KeyboardInterrupt from e
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _submit_locked(
    cfg: Config,
    job: str,
    name: str,
    script: Path,
    savepoint: str | None,
    extra_args: list[str] | None,
    wait_running: bool,
    warm: bool,
    start_at_ms: int | None,
) -> str:
    rest = FlinkRest(cfg)
    _check_can_run(cfg, rest, {job: name})
    conf_file = write_config(cfg, name)
    from flinkpulse import jobstate

    with interrupt_after(f"finishing the submission of {job}, to record it"):
        res, out, cmd = _flink_run(
            cfg,
            script,
            ["--config", str(conf_file), *start_at_args(start_at_ms), *(extra_args or [])],
            savepoint,
            warm,
        )
        job_id = submitted_job_id(out)
        if res != 0 or not job_id:
            raise FlinkpulseError(f"submitting {job} failed: {_failure(cfg, job, cmd, out)}")
        jobstate.record_submit(
            cfg, job, name, job_id, conf_file, start_at_ms, restored=bool(savepoint)
        )
    if wait_running:
        rest.wait_running_tasks(job_id)
    return job_id


#: what flink_jobs/several.py (and each job's main) prints for a job it submitted
_SUBMITTED = re.compile(r"submitted (\w+): job id ([0-9a-f]{32})")
#: what Flink's client prints for a job it submitted
_FLINK_JOB_ID = re.compile(r"JobID\W+([0-9a-f]{32})")


def start_at_args(start_at_ms: int | None) -> list[str]:
    """The job arguments that make it read its event topics from `start_at_ms` on (none: from
    its startup mode, the earliest offset)."""
    return [] if start_at_ms is None else ["--start-at", str(start_at_ms)]


def submitted_job_id(out: str) -> str:
    """The id of the job a `flink run` output says it submitted, or "" if it names none.

    A job's main (flink_jobs.common.run_job) prints `submitted <job>: job id <id>`, which is
    taken first (the warm client's output has nothing else); else Flink's client line `Job has
    been submitted with JobID <id>` gives it (a main that failed after submitting)."""
    ours = _SUBMITTED.search(out)
    if ours:
        return ours.group(2)
    flinks = _FLINK_JOB_ID.search(out)
    return flinks.group(1) if flinks else ""


def submit_jobs(
    cfg: Config, jobs: list[str], wait_running: bool = True, start_at_ms: int | None = None
) -> dict[str, str]:
    """Submit several streaming jobs with ONE `flink run` (flink_jobs/several.py); returns
    job -> job id. The client JVM starts and warms its SQL planner once instead of once a job:
    measured on 2 cores, the four jobs took 170 s one by one and 66 s together. If a job fails
    to build, those submitted before it keep running, and the error names them. A job that is
    not one of the analytics jobs (flink_jobs.JOBS, e.g. the archive) is submitted on its own.
    `start_at_ms`: the jobs read their event topics from that Kafka timestamp on, not from the
    earliest offset (a fresh start that must not catch up older input)."""
    from flink_jobs import JOBS

    together = [j for j in jobs if j in JOBS]
    alone = [j for j in jobs if j not in together] if len(together) > 1 else jobs
    ids = {
        job: submit(cfg, job, wait_running=wait_running, start_at_ms=start_at_ms) for job in alone
    }
    if len(together) > 1:
        ids.update(_submit_together(cfg, together, wait_running, start_at_ms))
    return {job: ids[job] for job in jobs}


def start_missing(
    cfg: Config, jobs: list[str], start_at_ms: int | None = None
) -> list[tuple[str, str, bool]]:
    """Start those of `jobs` not running yet, together (submit_jobs, from `start_at_ms` if
    given); returns, in `jobs`' order, (job, job id, whether it was already running). What
    `jobs submit all` and the demo do: a job already running is kept, not an error."""
    rest = FlinkRest(cfg)
    running = {job: rest.running(job_name(cfg, job)) for job in jobs}
    missing = [job for job in jobs if not running[job]]
    started = submit_jobs(cfg, missing, start_at_ms=start_at_ms) if missing else {}
    return [
        (job, started[job], False) if job in started else (job, running[job][0]["jid"], True)
        for job in jobs
    ]


def _submit_together(
    cfg: Config, jobs: list[str], wait_running: bool, start_at_ms: int | None = None
) -> dict[str, str]:
    names = {job: job_name(cfg, job) for job in jobs}
    with contextlib.ExitStack() as held:
        # sorted: two processes taking overlapping sets of locks never wait on each other
        for name in sorted(names.values()):
            held.enter_context(exclusive(cfg.stack.state_path() / "run" / f"submit-{name}.lock"))
        rest = FlinkRest(cfg)
        _check_can_run(cfg, rest, names)
        confs = {job: write_config(cfg, name) for job, name in names.items()}
        args = ["--jobs", ",".join(jobs), "--config", str(confs[jobs[0]])]
        args += start_at_args(start_at_ms)
        from flinkpulse import jobstate

        with interrupt_after(f"finishing the submission of {', '.join(jobs)}, to record them"):
            res, out, cmd = _flink_run(cfg, ROOT / "flink_jobs" / "several.py", args, None, True)
            ids = {m.group(1): m.group(2) for m in _SUBMITTED.finditer(out) if m.group(1) in names}
            for job, job_id in ids.items():
                jobstate.record_submit(cfg, job, names[job], job_id, confs[job], start_at_ms)
            missing = [j for j in jobs if j not in ids]
            if res != 0 or missing:
                ran = f"; {', '.join(ids)} were submitted and run" if ids else ""
                reason = _failure(cfg, missing[0] if missing else jobs[-1], cmd, out)
                raise FlinkpulseError(f"submitting {', '.join(missing)} failed: {reason}{ran}")
    if wait_running:
        for job_id in ids.values():
            rest.wait_running_tasks(job_id)
    return ids


#: how long a submission waits for enough free slots before it refuses
SLOT_WAIT_S = 10.0


def _check_can_run(cfg: Config, rest: FlinkRest, names: dict[str, str]) -> None:
    """Refuse to start a second copy of a job (job -> its Flink job name), or jobs the
    cluster has no free slots for."""
    for job, name in names.items():
        if rest.running(name):
            raise FlinkpulseError(
                f"{name} is already running — `flinkpulse jobs cancel {job}` first"
            )
    need = cfg.flink.parallelism * len(names)
    # the slots of a job cancelled just before are freed a moment later: wait a little
    deadline = time.monotonic() + SLOT_WAIT_S
    while (free := rest.overview().get("slots-available", 0)) < need:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if free < need:
        what = next(iter(names.values())) if len(names) == 1 else f"{len(names)} jobs"
        raise FlinkpulseError(
            f"no free task slot for {what} ({free} free, {need} needed) — "
            "cancel a job (`flinkpulse jobs list`) or raise stack.flink_slots"
        )


def jobmanager_address(url: str) -> str:
    """`host:port` of a JobManager URL, as `flink run -m` takes it."""
    return url.removeprefix("http://").removeprefix("https://").rstrip("/")


def client_args(jobmanager: str, source_zip: Path) -> list[str]:
    """The options of `flink run` for a job of ours on the cluster at `jobmanager`: detached,
    this interpreter for the client, the sources shipped (the warm client's too). No
    `-pyexec`: the Python workers run on the cluster's `python.executable`, which knows its
    own interpreter (the stack's forks them from a warm one: flinkpulse.stack.udf_fork)."""
    return [
        "-d", "-m", jobmanager_address(jobmanager),
        "-pyclientexec", sys.executable, "-pyfs", str(source_zip),
    ]  # fmt: skip


def _flink_run(
    cfg: Config, script: Path, args: list[str], savepoint: str | None, warm: bool = False
) -> tuple[int, str, list[str]]:
    """`flink run -d -py script args` against cfg's cluster, from `savepoint` if given: (exit
    code, output, command). `warm`: a job of ours (new, resumed or bounded) that the stack's
    warm client builds when it runs and takes it (flinkpulse.submitter: the same client, without
    starting one; the job's own `--restore` stands for `-s`)."""
    zip_ = source_zip(cfg)  # what the client ships (-pyfs), either client: up to date
    mode = cfg.flink.claim_mode()
    if savepoint and mode == "claim":
        from flinkpulse import jobstate

        savepoint = jobstate.claimable(cfg, savepoint)
    if warm and cfg.stack.flink_submitter and script.parent == ROOT / "flink_jobs":
        from flinkpulse import submitter

        module = f"flink_jobs.{script.stem}"
        job_args = [*args, "--restore", savepoint, "--claim-mode", mode] if savepoint else args
        done = submitter.submit(cfg.stack.state_path(), cfg.flink.jobmanager, module, job_args)
        if done is not None:
            return done[0], done[1], [submitter.PROC, "-py", str(script), *job_args]
    cmd = [str(pyflink_home() / "bin" / "flink"), "run", *client_args(cfg.flink.jobmanager, zip_)]
    if savepoint:
        cmd += ["-s", savepoint, "--claimMode", mode]
    cmd += ["-py", str(script), *args]
    rc, out = _run_client(cmd, flink_env(cfg))
    return rc, out, cmd


def _run_client(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a `flink run` to its end: (exit code, output). In a session of its own, so that a
    Ctrl-C at the terminal reaches only us (interrupt_after lets it finish and be recorded);
    stopped with its Python driver if we are (a second Ctrl-C)."""
    # where nothing holds a Ctrl-C for it (off the main thread) the terminal's SIGINT must
    # still reach the client, as it always did
    own_session = holds_ctrl_c()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        start_new_session=own_session,
    )  # fmt: skip
    try:
        out, err = proc.communicate()
    except BaseException:
        if own_session:
            # no further Ctrl-C may cut this short: the terminal cannot stop the client itself
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the leader's children too
                proc.communicate()
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        else:
            proc.kill()
            proc.communicate()
        raise
    return proc.returncode, out + err


def _failure(cfg: Config, job: str, cmd: list[str], out: str) -> str:
    """Keep a failed submission's full output in logs/submit-<job>.log; its telling line."""
    log = cfg.stack.state_path() / "logs" / f"submit-{job}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(" ".join(cmd) + "\n\n" + out)
    return f"{_first_cause(out)} (full output: {log})"


def run_bounded(
    cfg: Config, job: str, extra_args: list[str], name: str | None = None, timeout: float = 1800
) -> str:
    """Submit a bounded run of `job` (replay or backfill) and wait until it FINISHED; returns
    the job id. A failure raises with Flink's innermost cause."""
    job_id = submit(cfg, job, extra_args=extra_args, wait_running=False, name=name, warm=True)
    rest = FlinkRest(cfg)
    state = rest.wait_state(job_id, ("FINISHED", "FAILED", "CANCELED"), timeout)
    if state != "FINISHED":
        raise FlinkpulseError(f"{job} ({job_id}) ended as {state}: {rest.exception(job_id)}")
    return job_id


def resume(cfg: Config, job: str) -> tuple[str, str | None]:
    """Submit `job` from its newest retained checkpoint/savepoint (fresh if it has none), with
    the settings that choose its operators as it was submitted (`jobstate.submitted_plan`), and
    then delete its earlier runs' retained checkpoints (`jobstate.prune`); returns (job id, the
    state it restored or None)."""
    from flinkpulse import jobstate

    name = job_name(cfg, job)
    state = jobstate.latest_state(cfg, name)
    if state:
        cfg, kept = jobstate.submitted_plan(cfg, name)
        if kept:
            print(
                f"flinkpulse: {job} resumes with {', '.join(kept)}, as it was submitted: its "
                "snapshot holds the state of those operators (cancel and submit it to change them)",
                file=sys.stderr,
                flush=True,
            )
    # a fresh start reads from where the job's last submission started (`--start-at`), if set
    start_at = None if state else jobstate.submitted_start(cfg, name)
    job_id = submit(cfg, job, savepoint=state, start_at_ms=start_at)
    if state and cfg.flink.claim_mode() == "no_claim":
        # the newest state is restored: the earlier runs' checkpoints are never read again
        jobstate.prune(cfg, name, job_id, state)
    return job_id, state


#: failures whose line in Flink's output does not say what to do: (what the line holds, what to do)
_KNOWN_CAUSES = (
    (
        "Cannot map checkpoint/savepoint state",
        "the snapshot holds the state of operators the job no longer has (a flinkpulse upgrade "
        "changed its SQL, or the snapshot is another job's): cancel the job and submit it afresh "
        "(docs/jobs.md)",
    ),
)


def _first_cause(out: str) -> str:
    """The most telling line of a Java/Python failure, instead of the whole trace."""
    for needle, what_to_do in _KNOWN_CAUSES:
        line = next((ln for ln in out.splitlines() if needle in ln), None)
        if line is not None:
            return f"{what_to_do}; Flink: {line[line.index(needle) :][:200]}"
    generic = (
        "Python process exits",
        "ProgramAbortException",
        "Py4JJavaError",
        "ProgramInvocation",
    )
    pat = re.compile(r"(\w+(Exception|Error)): (.+)")
    for line in out.splitlines():
        m = pat.search(line)
        if m and not any(g in line for g in generic):
            return f"{m.group(1).rsplit('.', 1)[-1]}: {m.group(3)}"[:300]
    tail = [ln for ln in out.strip().splitlines() if ln.strip()]
    return tail[-1][:300] if tail else "no output"
