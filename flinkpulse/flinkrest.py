"""Watching and controlling flinkpulse jobs on a Flink session cluster through its REST API.

Submitting runs Flink's own `flink run` CLI: that is flinkpulse.flinkrun (``submit``,
``resume``, ``flink_env``, ``source_zip``).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError, ServiceUnreachable

#: the states of a job that has not ended (it holds slots, or will again)
LIVE_STATES = ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING", "RECONCILING")

#: how long a one-shot read (the job list, the overview) keeps asking a busy JobManager
BUSY_RETRY_S = 30.0


#: a job whose tasks failed to restore their state this many times in a row with one cause is
#: reported by `wait_running_tasks` instead of waited for (Flink would retry forever)
RESTORE_TRIES = 3
#: how often that wait reads the job's exception history while the job restarts
RESTORE_LOOK_S = 2.0
#: what a task's stack trace says when it could not restore its operators' state: the backend
#: could not read the snapshot, or an operator that registers its state in `open()` found it of
#: another type than the snapshot holds (a query edited so that its plan keeps its shape and a
#: state's type changes: Flink 2.2 maps the state to the operator and then refuses it)
STATE_MIGRATION = "org.apache.flink.util.StateMigrationException"
RESTORE_FAILED = ("Exception while creating StreamOperatorStateContext", STATE_MIGRATION)
#: added to the report of a restore that failed on a state of another type
STATE_TYPES_CHANGED = (
    "The job's state no longer has the types its snapshot holds: its SQL, or a setting that "
    "shapes it, changed since the snapshot was taken. "
)
#: a Java object's identity in a message (`RowDataSerializer@38bd102a`): new on every try
_IDENTITY = re.compile(r"(?<=[\w$])@[0-9a-f]{1,8}\b")


def _innermost(trace: str) -> str:
    """The innermost "Caused by" of a Java stack trace (what went wrong), else its first line."""
    lines = trace.strip().splitlines()
    causes = [ln.strip().removeprefix("Caused by: ") for ln in lines if "Caused by:" in ln]
    return causes[-1] if causes else (lines[0] if lines else "")


class FlinkBusy(FlinkpulseError):
    """The JobManager accepted the request but did not answer in time (a loaded machine)."""


class FlinkRest:
    """A thin client of the JobManager's REST API."""

    def __init__(
        self, cfg: Config, timeout: float = 10, busy_retry_s: float = BUSY_RETRY_S
    ) -> None:
        hp = cfg.flink.jobmanager
        self.base = hp if hp.startswith("http") else f"http://{hp}"
        self.timeout = timeout  # of one request
        self.busy_retry_s = busy_retry_s  # how long a one-shot read asks a busy JobManager

    def call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        timeout = self.timeout if timeout is None else timeout
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
        except (urllib.error.URLError, OSError) as e:
            # a read timeout is a JobManager that took the connection but is busy (a CI run
            # lost a wait on a loaded host that way), not one that is not there
            if isinstance(e, TimeoutError) or isinstance(getattr(e, "reason", None), TimeoutError):
                raise FlinkBusy(
                    f"Flink at {self.base} did not answer {method} {path} within {timeout:.0f}s"
                ) from None
            raise ServiceUnreachable("Flink", self.base) from None
        return json.loads(raw) if raw else None

    def overview(self) -> dict[str, Any]:
        """The cluster overview (slots, TaskManagers), asked again while the JobManager is busy."""
        return dict(self._poll("/overview", time.monotonic() + self.busy_retry_s))

    def _poll(self, path: str, deadline: float) -> Any:
        """GET `path` for a wait loop: a busy JobManager is asked again until `deadline`."""
        while True:
            try:
                return self.call("GET", path)
            except FlinkBusy:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the cluster knows; a busy JobManager is asked again for `busy_retry_s`
        (the submission checks call this, and a loaded host's JobManager may take a while)."""
        return list(self._poll("/jobs/overview", time.monotonic() + self.busy_retry_s)["jobs"])

    def live(self) -> list[dict[str, Any]]:
        """Every job that has not ended (LIVE_STATES)."""
        return [j for j in self.jobs() if j["state"] in LIVE_STATES]

    def running(self, name: str) -> list[dict[str, Any]]:
        return [j for j in self.live() if j["name"] == name]

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self._poll(f"/jobs/{job_id}", deadline)["state"]
            if state in states:
                return str(state)
            time.sleep(0.5)
        raise FlinkpulseError(
            f"job {job_id} is {state}, not {'/'.join(states)} after {timeout:.0f}s"
        )

    def wait_running_tasks(self, job_id: str, timeout: float = 120) -> None:
        """Until every vertex of the job is RUNNING (the job can take and emit data). A job
        whose tasks fail to restore their state `RESTORE_TRIES` times in a row, with the same
        cause, is cancelled and reported then: Flink would restart it forever."""
        started_ms = time.time() * 1000
        deadline = time.monotonic() + timeout
        looked = time.monotonic() - RESTORE_LOOK_S  # the first restart is looked at at once
        while time.monotonic() < deadline:
            info = self._poll(f"/jobs/{job_id}", deadline)
            if info["state"] in ("FAILED", "CANCELED", "FINISHED"):
                raise FlinkpulseError(
                    f"job {job_id} ended as {info['state']}: {self.exception(job_id)}"
                )
            if info["state"] == "RUNNING" and all(
                v["status"] in ("RUNNING", "FINISHED") for v in info["vertices"]
            ):
                return
            if info["state"] == "RESTARTING" and time.monotonic() - looked >= RESTORE_LOOK_S:
                looked = time.monotonic()
                cause = self.restore_failure(job_id, started_ms)
                if cause:
                    # it would restart forever, holding its slots: nothing of it ever ran
                    with contextlib.suppress(FlinkpulseError):
                        self.cancel(job_id)
                    hint = STATE_TYPES_CHANGED if STATE_MIGRATION in cause else ""
                    raise FlinkpulseError(
                        f"job {job_id} cannot restore its state ({RESTORE_TRIES} tries in a "
                        f"row), so it was cancelled: {cause.rstrip('.')}. {hint}Submit the "
                        "job afresh, or from another snapshot (docs/jobs.md)"
                    )
            time.sleep(0.5)
        # e.g. a restore that fails in the tasks (state of another type) restarts the job over
        # and over: Flink's cause says why, not the timeout
        cause = self.exception(job_id)
        raise FlinkpulseError(
            f"job {job_id} tasks not running after {timeout:.0f}s"
            + (f"; its last failure: {cause}" if cause else "")
        )

    def _exceptions(self, job_id: str) -> dict[str, Any]:
        """The job's exceptions ({} when Flink cannot say)."""
        try:
            return dict(self.call("GET", f"/jobs/{job_id}/exceptions") or {})
        except FlinkpulseError:
            return {}

    @staticmethod
    def _entries(ex: dict[str, Any]) -> list[dict[str, Any]]:
        """The failures of an exceptions answer, newest first."""
        return list((ex.get("exceptionHistory") or {}).get("entries") or [])

    def restore_failure(self, job_id: str, since_ms: float) -> str:
        """The innermost cause of the job's last `RESTORE_TRIES` failures when they all came
        after `since_ms`, all failed to restore a task's state and all had that cause; else ""."""
        last = self._entries(self._exceptions(job_id))[:RESTORE_TRIES]
        if len(last) < RESTORE_TRIES or any(
            e.get("timestamp", 0) < since_ms
            or not any(m in e.get("stacktrace", "") for m in RESTORE_FAILED)
            for e in last
        ):
            return ""
        causes = {_IDENTITY.sub("", _innermost(e.get("stacktrace", ""))) for e in last}
        return causes.pop() if len(causes) == 1 else ""

    def failures(self, job_id: str, since_ms: float = 0) -> list[tuple[float, str]]:
        """(time in epoch ms, innermost cause) of each of the job's failures at or after
        `since_ms`, newest first: a job that restarted caught up a backlog afterwards."""
        return [
            (e.get("timestamp", 0), _innermost(e.get("stacktrace", "")))
            for e in self._entries(self._exceptions(job_id))
            if e.get("timestamp", 0) >= since_ms
        ]

    def exception(self, job_id: str) -> str:
        """The innermost cause of the job's last failure ("" when there is none)."""
        ex = self._exceptions(job_id)
        entries = self._entries(ex)
        return _innermost(
            entries[0].get("stacktrace", "") if entries else ex.get("root-exception") or ""
        )

    def savepoint(self, job_id: str, target: str | None, stop: bool, timeout: float = 180) -> str:
        body: dict[str, Any] = {"cancel-job": False} if not stop else {"drain": False}
        if target:
            body["targetDirectory"] = target
        path = f"/jobs/{job_id}/stop" if stop else f"/jobs/{job_id}/savepoints"
        trigger = self.call("POST", path, body)["request-id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self._poll(f"/jobs/{job_id}/savepoints/{trigger}", deadline)
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


def backfill_name(cfg: Config, job: str) -> str:
    """The Flink job name of a backfill of `job` (runs next to the streaming job)."""
    return f"{job_name(cfg, job)}-backfill"


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
