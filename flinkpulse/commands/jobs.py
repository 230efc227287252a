"""`flinkpulse jobs submit|resume|list|cancel|savepoint`: the Flink jobs on a session cluster."""

from __future__ import annotations

import argparse

from flinkpulse.commands.times import TIME_FORMS, epoch_ms
from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("jobs", help="submit, list, cancel and savepoint the Flink jobs")
    ss = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    ss.required = True
    s = ss.add_parser("submit", help="submit a job (or all) to the session cluster")
    s.add_argument(
        "job", help="player_stats | device_stats | web_traffic | security_alerts | archive | all"
    )
    s.add_argument("--from-savepoint", dest="savepoint", help="restore state from this savepoint")
    s.add_argument(
        "--from",
        dest="from_ms",
        type=epoch_ms,
        metavar="TIME",
        help=f"bounded replay: read records with Kafka timestamps from TIME on ({TIME_FORMS})",
    )
    s.add_argument(
        "--to",
        dest="to_ms",
        type=epoch_ms,
        metavar="TIME",
        help="bounded replay: ... up to (excluding) TIME; waits until the job finished",
    )
    s.add_argument(
        "--start-at",
        dest="start_at_ms",
        type=epoch_ms,
        metavar="TIME",
        help="streaming: read the event topics from this Kafka timestamp on (`now` skips all "
        "older input), not from the earliest offset",
    )
    s.set_defaults(func=_submit)
    r = ss.add_parser(
        "resume",
        help="submit a job (or all) from its newest retained checkpoint or savepoint",
        description="After a JobManager loss or `jobs cancel`: restarts the job from the newest "
        "checkpoint/savepoint this stack retained for it (a fresh start if there is none).",
    )
    r.add_argument("job", help="player_stats | device_stats | web_traffic | security_alerts | all")
    r.set_defaults(func=_resume)
    ls = ss.add_parser("list", help="jobs on the cluster")
    ls.add_argument("--all", action="store_true", help="also finished/cancelled jobs")
    ls.set_defaults(func=_list)
    c = ss.add_parser("cancel", help="cancel a job, optionally taking a savepoint first")
    c.add_argument("job")
    c.add_argument(
        "--savepoint", action="store_true", help="stop with a savepoint (prints its path)"
    )
    c.set_defaults(func=_cancel)
    sp = ss.add_parser("savepoint", help="take a savepoint of a running job")
    sp.add_argument("job")
    sp.set_defaults(func=_savepoint)


def select_jobs(name: str, extra: tuple[str, ...] = ("archive",)) -> list[str]:
    """The jobs `name` means: one job, or `all` analytics jobs (not the optional `extra` ones)."""
    from flink_jobs import JOBS

    if name == "all":
        return list(JOBS)
    if name not in (*JOBS, *extra):
        raise UsageError(f"unknown job {name!r} (jobs: {', '.join([*JOBS, *extra])}, all)")
    return [name]


def _submit(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.flinkrun import run_bounded, start_missing, submit
    from flinkpulse.topics import ensure_topics

    jobs = select_jobs(args.job)
    if args.savepoint and len(jobs) > 1:
        raise UsageError("--from-savepoint needs one job, not all")
    if (args.from_ms is None) != (args.to_ms is None):
        raise UsageError("--from and --to go together")
    if args.start_at_ms is not None and (args.from_ms is not None or args.savepoint):
        raise UsageError(
            "--start-at starts a streaming job afresh: not with --from/--to (a replay's own "
            "range) or --from-savepoint (the snapshot's offsets)"
        )
    if args.from_ms is not None:
        if args.savepoint:
            raise UsageError("--from/--to replay from Kafka timestamps, not from a savepoint")
        if args.to_ms <= args.from_ms:
            raise UsageError("--to must be after --from")
        ensure_topics(cfg)
        # a bounded replay ends by itself: run the jobs one after the other, each to the end
        for job in jobs:
            job_id = run_bounded(cfg, job, ["--from", str(args.from_ms), "--to", str(args.to_ms)])
            print(f"{job:<16} replayed [{args.from_ms}, {args.to_ms}) as {job_id}", flush=True)
        return 0
    ensure_topics(cfg)
    if len(jobs) == 1:  # one named job that runs already is an error (submit says so)
        job_id = submit(cfg, jobs[0], savepoint=args.savepoint, start_at_ms=args.start_at_ms)
        print(f"{jobs[0]:<16} running as {job_id}", flush=True)
        return 0
    # `all` starts what is missing, with one client for all of them
    for job, job_id, already in start_missing(cfg, jobs, args.start_at_ms):
        print(f"{job:<16} {'already running' if already else 'running'} as {job_id}", flush=True)
    return 0


def _resume(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import jobstate
    from flinkpulse.flinkrest import job_name
    from flinkpulse.flinkrun import resume
    from flinkpulse.topics import ensure_topics

    jobs = select_jobs(args.job)
    ensure_topics(cfg)
    for job in jobs:
        job_id, state = resume(cfg, job)
        start = None if state else jobstate.submitted_start(cfg, job_name(cfg, job))
        origin = (
            f"from {state}"
            if state
            else "fresh (no retained checkpoint or savepoint)"
            + (f", from Kafka timestamp {start} on (its --start-at)" if start is not None else "")
        )
        print(f"{job:<16} running as {job_id}, {origin}", flush=True)
    return 0


def _list(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.flinkrest import FlinkRest

    jobs = FlinkRest(cfg).jobs()
    if not args.all:
        jobs = [j for j in jobs if j["state"] not in ("FINISHED", "CANCELED", "FAILED")]
    print(f"{'JOB ID':<34} {'STATE':<12} NAME")
    for j in sorted(jobs, key=lambda j: j["name"]):
        print(f"{j['jid']:<34} {j['state']:<12} {one_line(j['name'])}")
    return 0


def one_line(name: str, width: int = 100) -> str:
    """A job name as one table cell: ad hoc SQL jobs are named by their multi-line statement."""
    flat = " ".join(name.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _find(cfg: Config, job: str) -> str:
    from flinkpulse.flinkrest import FlinkRest, job_name

    name = job_name(cfg, job)
    running = FlinkRest(cfg).running(name)
    if not running:
        raise FlinkpulseError(f"{name} is not running (see `flinkpulse jobs list`)")
    return str(running[0]["jid"])


def _cancel(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import jobstate
    from flinkpulse.flinkrest import FlinkRest, job_name

    for job in select_jobs(args.job):
        jid = _find(cfg, job)
        rest = FlinkRest(cfg)
        if args.savepoint:
            path = rest.savepoint(jid, None, stop=True)
            jobstate.record_savepoint(cfg, job_name(cfg, job), path)
            print(f"{job:<16} stopped with savepoint {path}")
        else:
            rest.cancel(jid)
            rest.wait_state(jid, ("CANCELED",))
            print(f"{job:<16} cancelled")
    return 0


def _savepoint(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import jobstate
    from flinkpulse.flinkrest import FlinkRest, job_name

    for job in select_jobs(args.job):
        path = FlinkRest(cfg).savepoint(_find(cfg, job), None, stop=False)
        jobstate.record_savepoint(cfg, job_name(cfg, job), path)
        print(f"{job:<16} savepoint {path}")
    return 0
