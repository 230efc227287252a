"""Submitting and controlling flinkpulse jobs on a Flink session cluster (REST + `flink run`)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError, ServiceUnreachable, UsageError
from flinkpulse.paths import ROOT, pyflink_home

#: what a Python worker needs from this repository, shipped with every job (-pyfs)
SHIPPED = ["flinkpulse", "flink_jobs", "udfs", "producers", "avro_schemas", "sql"]


class FlinkRest:
    """A thin client of the JobManager's REST API."""

    def __init__(self, cfg: Config) -> None:
        hp = cfg.flink.jobmanager
        self.base = hp if hp.startswith("http") else f"http://{hp}"

    def call(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = "; ".join(json.loads(detail).get("errors", [detail]))[:300]
            raise FlinkpulseError(
                f"Flink REST {method} {path} failed ({e.code}): {detail}"
            ) from None
        except (urllib.error.URLError, OSError):
            raise ServiceUnreachable("Flink", self.base) from None
        return json.loads(raw) if raw else None

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/jobs/overview")["jobs"])

    def running(self, name: str) -> list[dict[str, Any]]:
        live = ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING", "RECONCILING")
        return [j for j in self.jobs() if j["name"] == name and j["state"] in live]

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.call("GET", f"/jobs/{job_id}")["state"]
            if state in states:
                return str(state)
            time.sleep(0.5)
        raise FlinkpulseError(
            f"job {job_id} is {state}, not {'/'.join(states)} after {timeout:.0f}s"
        )

    def wait_running_tasks(self, job_id: str, timeout: float = 120) -> None:
        """Until every vertex of the job is RUNNING (the job can take and emit data)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.call("GET", f"/jobs/{job_id}")
            if info["state"] in ("FAILED", "CANCELED", "FINISHED"):
                raise FlinkpulseError(
                    f"job {job_id} ended as {info['state']}: {self.exception(job_id)}"
                )
            if info["state"] == "RUNNING" and all(
                v["status"] in ("RUNNING", "FINISHED") for v in info["vertices"]
            ):
                return
            time.sleep(0.5)
        raise FlinkpulseError(f"job {job_id} tasks not running after {timeout:.0f}s")

    def exception(self, job_id: str) -> str:
        try:
            ex = self.call("GET", f"/jobs/{job_id}/exceptions")
        except FlinkpulseError:
            return ""
        root = (ex.get("exceptionHistory") or {}).get("entries") or []
        text = root[0].get("stacktrace", "") if root else ex.get("root-exception", "") or ""
        lines = text.strip().splitlines()
        causes = [ln.strip().removeprefix("Caused by: ") for ln in lines if "Caused by:" in ln]
        # the innermost cause says what went wrong; the outer lines only where
        return causes[-1] if causes else (lines[0] if lines else "")

    def savepoint(self, job_id: str, target: str | None, stop: bool, timeout: float = 180) -> str:
        body: dict[str, Any] = {"cancel-job": False} if not stop else {"drain": False}
        if target:
            body["targetDirectory"] = target
        path = f"/jobs/{job_id}/stop" if stop else f"/jobs/{job_id}/savepoints"
        trigger = self.call("POST", path, body)["request-id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.call("GET", f"/jobs/{job_id}/savepoints/{trigger}")
            if st["status"]["id"] == "COMPLETED":
                op = st.get("operation") or {}
                if "failure-cause" in op:
                    cause = op["failure-cause"].get("stack-trace", "").splitlines()
                    raise FlinkpulseError(f"savepoint failed: {cause[0] if cause else op}")
                return str(op["location"])
            time.sleep(0.5)
        raise FlinkpulseError(f"savepoint of job {job_id} did not complete in {timeout:.0f}s")

    def cancel(self, job_id: str) -> None:
        self.call("PATCH", f"/jobs/{job_id}?mode=cancel")


def job_name(cfg: Config, job: str) -> str:
    """The Flink job name of a flinkpulse job (one per job and topic prefix)."""
    return f"flinkpulse-{cfg.kafka.topic_prefix}{job}"


def source_zip(cfg: Config) -> Path:
    """Zip the Python packages and data the workers need (rebuilt when sources change)."""
    out = cfg.stack.state_path() / "ship" / "flinkpulse-src.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    files = [
        p
        for d in SHIPPED
        for p in (ROOT / d).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",)
    ]
    newest = max((p.stat().st_mtime for p in files), default=0)
    if out.exists() and out.stat().st_mtime >= newest:
        return out
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for p in files:
            z.write(p, p.relative_to(ROOT))
    tmp.replace(out)
    return out


def write_config(cfg: Config, name: str) -> Path:
    """The effective config as TOML, handed to the job's main() with --config."""
    path = cfg.stack.state_path() / "ship" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(cfg.to_dict()))
    os.chmod(path, 0o600)  # may carry Kafka credentials given by env
    return path


def to_toml(data: dict[str, Any]) -> str:
    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return json.dumps(str(v))

    out: list[str] = []
    for section, values in data.items():
        if section == "jobs":
            for job, params in values.items():
                out.append(f"[jobs.{job}]")
                out += [f"{k} = {val(v)}" for k, v in params.items()]
            continue
        out.append(f"[{section}]")
        out += [f"{k} = {val(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n"


def client_opt_dir(cfg: Config) -> Path:
    """The wheel's opt/ plus the jars it lacks (SQL gateway), for the CLI and SQL client."""
    opt = cfg.stack.state_path() / "flink" / "opt"
    opt.mkdir(parents=True, exist_ok=True)
    extra = cfg.stack.jars_path() / "flink-opt"
    jars = [*sorted((pyflink_home() / "opt").glob("*.jar")), *sorted(extra.glob("*.jar"))]
    for jar in jars:
        link = opt / jar.name
        if not link.exists():
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
) -> str:
    """`flink run -d -py flink_jobs/<job>.py` against cfg.flink.jobmanager; returns the job id."""
    script = ROOT / "flink_jobs" / f"{job}.py"
    if not script.exists():
        from flink_jobs import JOBS

        raise UsageError(f"unknown job {job!r} (jobs: {', '.join(JOBS)})")
    name = job_name(cfg, job)
    # one submission of a name at a time on this machine: the check below and `flink run`
    # must not interleave with another process's (two copies of one job would both run)
    lock = cfg.stack.state_path() / "run" / f"submit-{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        return _submit_locked(cfg, job, name, script, savepoint, extra_args, wait_running)


def _submit_locked(
    cfg: Config,
    job: str,
    name: str,
    script: Path,
    savepoint: str | None,
    extra_args: list[str] | None,
    wait_running: bool,
) -> str:
    rest = FlinkRest(cfg)
    if rest.running(name):
        raise FlinkpulseError(f"{name} is already running — `flinkpulse jobs cancel {job}` first")
    free = rest.call("GET", "/overview").get("slots-available", 0)
    if free < cfg.flink.parallelism:
        raise FlinkpulseError(
            f"no free task slot for {name} ({free} free, {cfg.flink.parallelism} needed) — "
            "cancel a job (`flinkpulse jobs list`) or raise stack.flink_slots"
        )
    conf_file = write_config(cfg, name)
    cmd = [
        str(pyflink_home() / "bin" / "flink"),
        "run",
        "-d",
        "-m",
        cfg.flink.jobmanager.removeprefix("http://"),
        "-pyexec",
        sys.executable,
        "-pyclientexec",
        sys.executable,
        "-pyfs",
        str(source_zip(cfg)),
    ]
    if savepoint:
        cmd += ["-s", savepoint]
    cmd += ["-py", str(script), "--config", str(conf_file), *(extra_args or [])]
    res = subprocess.run(cmd, capture_output=True, text=True, env=flink_env(cfg), cwd=ROOT)
    out = res.stdout + res.stderr
    job_id = ""
    for line in out.splitlines():
        if "JobID" in line or "job id" in line.lower():
            job_id = line.strip().split()[-1]
    if res.returncode != 0 or not job_id:
        log = cfg.stack.state_path() / "logs" / f"submit-{job}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(" ".join(cmd) + "\n\n" + out)
        reason = _first_cause(out)
        raise FlinkpulseError(f"submitting {job} failed: {reason} (full output: {log})")
    from flinkpulse import jobstate

    jobstate.record_submit(cfg, job, name, job_id, conf_file)
    if wait_running:
        rest.wait_running_tasks(job_id)
    return job_id


def resume(cfg: Config, job: str) -> tuple[str, str | None]:
    """Submit `job` from its newest retained checkpoint/savepoint (fresh if it has none);
    returns (job id, the state it restored or None)."""
    from flinkpulse import jobstate

    state = jobstate.latest_state(cfg, job_name(cfg, job))
    return submit(cfg, job, savepoint=state), state


def stop_all_with_savepoints(cfg: Config, timeout: float = 90, log: bool = True) -> list[str]:
    """Stop every running flinkpulse job this stack submitted with a savepoint (recorded in
    the ledger); returns their names. A job whose savepoint fails keeps its checkpoints."""
    from flinkpulse import jobstate

    rest = FlinkRest(cfg)
    try:
        live = [j for j in rest.jobs() if j["state"] == "RUNNING"]
    except ServiceUnreachable:
        return []
    known = {e["job_id"]: e["name"] for e in jobstate.entries(cfg) if "job_id" in e}
    stopped = []
    for j in live:
        name = known.get(j["jid"])
        if name is None:
            continue
        try:
            loc = rest.savepoint(j["jid"], None, stop=True, timeout=timeout)
            jobstate.record_savepoint(cfg, name, loc)
            if log:
                print(f"  {'':<11} {name} stopped with savepoint {loc}", flush=True)
        except FlinkpulseError as e:
            if log:
                print(
                    f"  {'':<11} {name}: no savepoint ({e}); its last checkpoint stays", flush=True
                )
        stopped.append(name)
    return stopped


def _first_cause(out: str) -> str:
    """The most telling line of a Java/Python failure, instead of the whole trace."""
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
