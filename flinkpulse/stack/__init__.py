"""The local stack: `flinkpulse stack up|down|status|logs`.

Components are looked up by name in :data:`COMPONENTS` (module:class), so that other parts of
flinkpulse (schema registry, ClickHouse, loader, Superset) plug in without touching this file's
logic: add a line there and list the name in ``stack.components``.
"""

from __future__ import annotations

import fnmatch
import importlib
import subprocess
import sys
import threading
import time

from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError, UsageError
from flinkpulse.stack.base import Component

#: component name -> "module:Class"; the order of `stack.components` is the start order
COMPONENTS: dict[str, str] = {
    "kafka": "flinkpulse.stack.kafka:Kafka",
    "registry": "flinkpulse.stack.registry:Registry",
    "mqtt": "flinkpulse.ingest.component:Mqtt",
    "ingest": "flinkpulse.ingest.component:HttpIngest",
    "clickhouse": "flinkpulse.clickhouse.component:ClickHouse",
    "flink": "flinkpulse.stack.flink:Flink",
    "loader": "flinkpulse.loader.component:LoaderComponent",
    "superset": "flinkpulse.stack.superset:Superset",
    # not in stack.components by default: `flinkpulse notebook` or `stack up jupyter` starts it
    "jupyter": "flinkpulse.stack.jupyter:Jupyter",
}


def component(cfg: Config, name: str) -> Component:
    try:
        target = COMPONENTS[name]
    except KeyError:
        raise UsageError(f"unknown component {name!r} (known: {', '.join(COMPONENTS)})") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(cfg)  # type: ignore[no-any-return]


def selected(cfg: Config, names: list[str] | None = None) -> list[Component]:
    wanted = names or cfg.stack.components
    for n in wanted:
        if n not in cfg.stack.components and n not in COMPONENTS:
            raise UsageError(f"unknown component {n!r} (known: {', '.join(COMPONENTS)})")
    order = [n for n in cfg.stack.components if n in wanted] + [
        n for n in wanted if n not in cfg.stack.components
    ]
    return [component(cfg, n) for n in order]


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_loopback(host: str) -> bool:
    """Only this machine reaches an address bound to `host`."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def check_bind(cfg: Config) -> None:
    """Refuse a non-loopback `stack.host` unless Kafka credentials (SASL) are configured.

    The local stack's services authenticate nobody by default (Kafka PLAINTEXT, the registry,
    Flink's REST API); bound to 127.0.0.1 only this machine reaches them.
    """
    host = cfg.stack.host
    if is_loopback(host):
        return
    k = cfg.kafka
    if k.security_protocol.startswith("SASL") and k.sasl_username and k.sasl_password:
        return
    raise UsageError(
        f"stack.host={host} would expose Kafka, the registry, Flink and ClickHouse without "
        "credentials: keep 127.0.0.1, or configure kafka.security_protocol=SASL_SSL with "
        "kafka.sasl_username/sasl_password (see docs/reliability-and-security.md)"
    )


def up(cfg: Config, names: list[str] | None = None, log: bool = True) -> None:
    """Start the components (idempotent) and wait until each is really ready."""
    check_bind(cfg)
    todo = []
    for comp in selected(cfg, names):
        # every process alive, not just one: after a kill -9 of one process of a component
        # (e.g. Flink's TaskManager) the others still answer health checks for a while
        if comp.complete() and comp.healthy():
            if log:
                drift = settings_drift(comp.started_config(), cfg, comp.settings)
                note = (
                    f" with other settings ({'; '.join(drift)}): `flinkpulse stack down "
                    f"{comp.name}` and up again to apply these"
                    if drift
                    else ""
                )
                print(f"  {comp.name:<11} already running at {comp.address()}{note}", flush=True)
            continue
        todo.append(comp)
    for comp in todo:  # a taken port stops `up` before anything starts
        comp.make_room(comp.pids())
    _start(todo, log)
    if "flink" in (names or cfg.stack.components):
        _resume_jobs(cfg, log)


def setting_globs(settings: tuple[str, ...]) -> list[str]:
    """`Component.settings` as fnmatch globs over ``section.key`` (a bare section: all its keys)."""
    return [p if "." in p else f"{p}.*" for p in settings]


def settings_drift(
    running: Config | None, wanted: Config, settings: tuple[str, ...] = (), limit: int = 3
) -> list[str]:
    """What a running component was started with that differs from `wanted` among `settings`
    (`Component.settings`: sections, keys or globs; all when empty), as
    ``section.key=running (now wanted)``, at most `limit` of them (empty when unknown)."""
    if running is None:
        return []
    globs = setting_globs(settings)
    old, new = running.to_dict(), wanted.to_dict()
    out = [
        f"{section}.{key}={old[section].get(key)!r} (now {value!r})"
        for section, values in new.items()
        if section != "jobs"
        for key, value in values.items()
        if (not globs or any(fnmatch.fnmatchcase(f"{section}.{key}", g) for g in globs))
        and old.get(section, {}).get(key) != value
    ]
    return out[:limit] + ([f"{len(out) - limit} more"] if len(out) > limit else [])


def _start(comps: list[Component], log: bool) -> None:
    """Start `comps` at once, each after those of them it `needs` are ready, and wait for all.
    On two cores most of a start is waiting (a JVM's class loading, Superset's imports, health
    polls), so one after the other added the waits up. Raises the first failure in start
    order, once every start has ended; a component whose need failed is not started."""
    if not comps:
        return
    done = {c.name: threading.Event() for c in comps}
    failed: dict[str, BaseException] = {}
    say = threading.Lock()

    def start(comp: Component) -> None:
        try:
            for need in comp.needs:
                if need in done:
                    done[need].wait()
                    if need in failed:
                        raise FlinkpulseError(f"{comp.name} not started: {need} did not start")
            t0 = time.monotonic()
            comp.start()
            comp.wait_ready()
            with say:
                comp.after_start()
                if log:
                    took = time.monotonic() - t0
                    print(f"  {comp.name:<11} ready at {comp.address()} ({took:.1f}s)", flush=True)
        except BaseException as e:  # noqa: BLE001 - raised by `_start` below, in start order
            failed[comp.name] = e
            if log:
                with say:
                    print(f"  {comp.name:<11} failed", flush=True)
        finally:
            done[comp.name].set()

    if log:
        print(f"  starting {', '.join(done)} ...", flush=True)
    threads = [threading.Thread(target=start, args=(c,), name=f"start-{c.name}") for c in comps]
    for t in threads:
        t.daemon = True  # a Ctrl-C of `stack up` ends the command, as it did between starts
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    for comp in comps:
        if comp.name in failed:
            raise failed[comp.name]


def _resume_jobs(cfg: Config, log: bool) -> None:
    """Resubmit the jobs the last `stack down` stopped, each from its newest savepoint."""
    from flinkpulse import jobstate
    from flinkpulse.config import load_config
    from flinkpulse.errors import FlinkpulseError
    from flinkpulse.flinkrest import FlinkRest
    from flinkpulse.flinkrun import resume

    for name in jobstate.take_resume(cfg):
        found = jobstate.submitted_config(cfg, name)
        if found is None:
            continue
        job, conf_file = found
        try:
            job_cfg = load_config(conf_file, env={})
            if FlinkRest(job_cfg).running(name):
                continue
            jid, state = resume(job_cfg, job)
            if log:
                print(f"  {'job':<11} {name} resumed as {jid} from {state}", flush=True)
        except (FlinkpulseError, OSError) as e:
            print(f"  {'job':<11} {name} NOT resumed: {e} — `flinkpulse jobs resume`", flush=True)


def down(
    cfg: Config, names: list[str] | None = None, log: bool = True, savepoints: bool = True
) -> None:
    """Stop components in reverse start order; only processes we started (by PID file).

    Stopping Flink first stops its running flinkpulse jobs with a savepoint; the next
    `stack up` resumes them from it. `savepoints=False` (a test session's end) just stops the
    processes: its jobs are throwaway and must not be resumed into the next stack.
    """
    comps = selected(cfg, names)
    if names is None:  # everything: also what runs outside stack.components (e.g. jupyter)
        extra = [component(cfg, n) for n in COMPONENTS if n not in cfg.stack.components]
        comps += [c for c in extra if c.running()]
    if savepoints and any(c.name == "flink" and c.running() for c in comps):
        from flinkpulse import jobstate
        from flinkpulse.flinkrest import stop_all_with_savepoints

        stopped = stop_all_with_savepoints(cfg, log=log)
        if stopped:
            jobstate.write_resume(cfg, stopped)
    for comp in reversed(comps):
        pids = comp.stop()
        if log:
            what = f"stopped pid {', '.join(map(str, pids))}" if pids else "not running"
            print(f"  {comp.name:<11} {what}", flush=True)


def status_rows(cfg: Config, names: list[str] | None = None) -> list[dict[str, str]]:
    return [status_row(comp) for comp in selected(cfg, names)]


def status_row(comp: Component) -> dict[str, str]:
    """One component's row of `stack status`. Healthy needs every process alive, as `up` does:
    one still running (the loader's quality sampler after the loader stopped) is not enough."""
    pids = comp.pids()
    gone = comp.missing() if pids else []
    healthy = bool(pids) and not gone and _safe_healthy(comp)
    return {
        "component": comp.name,
        "pid": ",".join(str(p) for p in pids.values()) or "-",
        "address": comp.address(),
        "health": "healthy" if healthy else ("unhealthy" if pids else "stopped"),
        "log": str(comp.log_file((gone or [comp.procs()[0].name])[0] if pids else None)),
        "info": _gone(gone, comp) if gone else comp.extra_status() if healthy else "",
    }


#: how much of a stopped process's own words `stack status` shows (its log has the rest)
FAILURE_CHARS = 100


def _gone(names: list[str], comp: Component) -> str:
    """The info of a component some of whose processes stopped: which, why if it said."""
    try:
        why = comp.failure()
    except Exception:  # noqa: BLE001 - status only: the log says why
        why = ""
    if len(why) > FAILURE_CHARS:
        why = why[: FAILURE_CHARS - 1] + "…"
    if why:
        return f"{', '.join(names)} not running ({why}): its log says how to go on"
    return f"{', '.join(names)} not running: `flinkpulse stack up` starts it again"


def _safe_healthy(comp: Component) -> bool:
    try:
        return comp.healthy()
    except Exception:
        return False


def print_status(cfg: Config, names: list[str] | None = None) -> bool:
    rows = status_rows(cfg, names)
    cols = ["component", "pid", "address", "health", "log", "info"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.upper().ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols).rstrip())
    hint = status_hint(rows)
    if hint:
        print(hint)
    return all(r["health"] == "healthy" for r in rows)


def status_hint(rows: list[dict[str, str]]) -> str:
    """What to do next when not every component is healthy ("" when all are)."""
    stopped = [r["component"] for r in rows if r["health"] == "stopped"]
    unhealthy = [r["component"] for r in rows if r["health"] == "unhealthy"]
    if len(stopped) == len(rows):
        return "nothing is running: `flinkpulse stack up` starts it"
    out = []
    if stopped:
        out.append(f"stopped: {', '.join(stopped)} — `flinkpulse stack up` starts what is stopped")
    if unhealthy:
        out.append(
            f"unhealthy: {', '.join(unhealthy)} — see `flinkpulse stack logs {unhealthy[0]}`"
        )
    return "\n".join(out)


def logs(cfg: Config, name: str, follow: bool, lines: int) -> int:
    comp = component(cfg, name)
    files = [comp.log_file(p.name) for p in comp.procs()]
    existing = [str(f) for f in files if f.exists()]
    if not existing:
        raise UsageError(f"no log yet for {name} (expected {files[0]})")
    cmd = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + existing
    try:
        return subprocess.call(cmd, stdout=sys.stdout)
    except KeyboardInterrupt:
        return 0
