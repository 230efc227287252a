"""Where a job's state lives on the local stack, so jobs survive a JobManager loss or a restart.

The session cluster has no high availability: when its JobManager dies (or `stack down` stops
it) its jobs are gone from the REST API, but their retained checkpoints and savepoints stay on
disk under the cluster's checkpoint/savepoint directories, named by job *id*. A small ledger
(`<state>/flink/ledger.jsonl`) maps job *names* to the ids they ran as and to the savepoints
flinkpulse took, so `flinkpulse jobs resume` (and `stack up` after `stack down`) can restart a
job from its newest state: the latest completed checkpoint or savepoint, whichever is newer.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
import tomllib
from pathlib import Path
from typing import Any

from flinkpulse.config import PLAN_SETTINGS, Config, load_config
from flinkpulse.errors import FlinkpulseError

#: jobs `stack down` stopped with a savepoint, for `stack up` to resubmit
RESUME_FILE = "resume.json"


def _flink_dir(cfg: Config) -> Path:
    return cfg.stack.state_path() / "flink"


def _ledger(cfg: Config) -> Path:
    return _flink_dir(cfg) / "ledger.jsonl"


def _append(cfg: Config, entry: dict[str, Any]) -> None:
    path = _ledger(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {**entry, "at": round(time.time(), 3)}
    with path.open("a") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")


def entries(cfg: Config) -> list[dict[str, Any]]:
    """Every ledger entry, oldest first (unreadable lines are skipped)."""
    try:
        lines = _ledger(cfg).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def record_submit(
    cfg: Config,
    job: str,
    name: str,
    job_id: str,
    config_file: Path,
    start_at_ms: int | None = None,
    restored: bool = False,
) -> None:
    """Remember that `name` runs as `job_id`, with the effective config in `config_file`. A
    restore is marked `restored`; a fresh start keeps its `--start-at` timestamp, if it had one."""
    entry: dict[str, Any] = {"name": name, "job": job, "job_id": job_id, "config": str(config_file)}
    if restored:
        entry["restored"] = True
    elif start_at_ms is not None:
        entry["start_at_ms"] = start_at_ms
    _append(cfg, entry)


def record_savepoint(cfg: Config, name: str, location: str) -> None:
    """Remember a savepoint flinkpulse took of `name` (location as Flink reports it)."""
    _append(cfg, {"name": name, "savepoint": location})


def _path(location: str) -> Path:
    return Path(location.removeprefix("file://").removeprefix("file:"))


def latest_state(cfg: Config, name: str) -> str | None:
    """The newest retained checkpoint or savepoint of job `name`, or None if there is none."""
    mine = [e for e in entries(cfg) if e.get("name") == name]
    ids = {e["job_id"] for e in mine if "job_id" in e}
    candidates = [_path(e["savepoint"]) / "_metadata" for e in mine if "savepoint" in e]
    root = _flink_dir(cfg) / "checkpoints"
    for jid in ids:
        candidates += (root / jid).glob("chk-*/_metadata")
    found = [(p.stat().st_mtime, p.parent) for p in candidates if p.is_file()]
    if not found:
        return None
    return str(max(found)[1])


#: a Flink job id, as the retained checkpoints' directories are named
_JOB_ID = re.compile(r"[0-9a-f]{32}")


def checkpoint_owner(cfg: Config, state: str) -> str:
    """The id of the run whose retained checkpoint on this stack `state` is; "" for anything
    else (a savepoint, state outside this stack)."""
    with contextlib.suppress(ValueError, IndexError):
        root = (_flink_dir(cfg) / "checkpoints").resolve()
        return _path(state).resolve().relative_to(root).parts[0]
    return ""


def claimable(cfg: Config, state: str) -> str:
    """What a ``claim`` mode restore may own: a retained checkpoint of this stack as it is
    (flinkpulse's own, subsumed by the new run's), anything else (a savepoint someone took to
    go back to) as a copy. A claiming job deletes the snapshot it restored once newer
    checkpoints replace it, and it used to delete the user's savepoint so."""
    src = _path(state)
    if checkpoint_owner(cfg, state) or not src.is_dir():
        return state
    copy = _flink_dir(cfg) / "savepoints" / f"claimed-{time.time_ns()}-{src.name}"
    shutil.copytree(src, copy)
    return str(copy)


def discard(cfg: Config, job_id: str) -> None:
    """Delete the retained checkpoints and state changes a stopped throwaway job (a benchmark's
    run) left on the local stack: RETAIN_ON_CANCELLATION keeps them for `jobs resume`, and
    nothing else ever deletes them (2.9 GB after two pipeline soaks). Never for a job that may
    be resumed, or whose snapshot a resumed job claimed."""
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"not a Flink job id: {job_id!r}")
    for sub in ("checkpoints", "changelog"):
        shutil.rmtree(_flink_dir(cfg) / sub / job_id, ignore_errors=True)


def prune(cfg: Config, name: str, new_id: str, restored: str) -> list[str]:
    """After job `name` resumed as `new_id` from `restored` in ``no_claim`` mode, delete the
    retained checkpoints (and state changes) of its earlier runs but the one it restored from.
    Every `stack down`/`stack up` resumes each job as a new id, and each left a retained
    checkpoint behind (~100 MB a job at 4,000 events/s) that nothing would read again: the
    newest state is always the new run's or the restored one. ``no_claim``
    only: the new run's first checkpoint is full, so it never reads another run's files; a
    ``claim`` run's checkpoints may reference the snapshot it claimed and, through it, older
    runs' files. Savepoints are kept (a user may have taken them to go back to). Returns the
    ids whose files it deleted."""
    root = _flink_dir(cfg)
    ids = {e["job_id"] for e in entries(cfg) if e.get("name") == name and "job_id" in e}
    pruned = sorted(
        i
        for i in ids - {new_id, checkpoint_owner(cfg, restored)}
        if _JOB_ID.fullmatch(i)
        and any((root / sub / i).exists() for sub in ("checkpoints", "changelog"))
    )
    for jid in pruned:
        discard(cfg, jid)
    return pruned


def _last_submission(cfg: Config, name: str, fresh: bool = False) -> dict[str, Any] | None:
    """The ledger's last submission entry of `name` (with `fresh`: the last that was not a
    restore), or None."""
    for e in reversed(entries(cfg)):
        if e.get("name") == name and "config" in e and not (fresh and e.get("restored")):
            return e
    return None


def submitted_config(cfg: Config, name: str) -> tuple[str, Path] | None:
    """(job, config file) of the last submission of `name`, if it is in the ledger."""
    e = _last_submission(cfg, name)
    return (str(e["job"]), Path(e["config"])) if e else None


def submitted_start(cfg: Config, name: str) -> int | None:
    """The `--start-at` of the last fresh submission of `name` (restores skipped), if it had
    one: a resume without a snapshot reads from there again, not the whole topics that a job
    started at a run never read."""
    e = _last_submission(cfg, name, fresh=True)
    start = e.get("start_at_ms") if e else None
    return int(start) if start is not None else None


def submitted_plan(cfg: Config, name: str) -> tuple[Config, list[str]]:
    """`cfg` with the settings that choose the operators (`config.PLAN_SETTINGS`) as job `name`
    was last submitted with, and those that differ (``section.key=value``). A resume restores
    the job's snapshot onto the operators it had; a changed setting (or a changed default, as
    ``flink.dedup_state`` on 2026-12-05) would leave state that maps to no operator, and Flink
    refuses the restore. A setting the submission's config file lacks (an older flinkpulse) is
    what the jobs did before it existed (`PLAN_SETTINGS`), not today's default. `cfg` as it is
    when the submission is not known."""
    found = submitted_config(cfg, name)
    if found is None:
        return cfg, []
    try:
        then = load_config(found[1], env={})
        written = tomllib.loads(found[1].read_text())
    except (OSError, FlinkpulseError, tomllib.TOMLDecodeError):
        return cfg, []
    changes: dict[str, dict[str, Any]] = {}
    kept = []
    for (section, key), before in PLAN_SETTINGS.items():
        in_file = key in written.get(section, {})
        value = getattr(getattr(then, section), key) if in_file else before
        if getattr(getattr(cfg, section), key) != value:
            changes.setdefault(section, {})[key] = value
            kept.append(f"{section}.{key}={value!r}")
    return (cfg.derive(**changes), kept) if kept else (cfg, [])


def write_resume(cfg: Config, names: list[str]) -> None:
    """Record the jobs `stack down` stopped, for the next `stack up`."""
    path = _flink_dir(cfg) / RESUME_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sorted(set(names))) + "\n")


def take_resume(cfg: Config) -> list[str]:
    """The jobs to resume (and forget them: a failed resume is reported, not retried forever)."""
    path = _flink_dir(cfg) / RESUME_FILE
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    path.unlink(missing_ok=True)
    return [str(n) for n in names]
