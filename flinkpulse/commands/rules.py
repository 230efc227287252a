"""`flinkpulse rules set|unset|list`: change alert-rule parameters live (no job restart)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from flinkpulse.config import Config
from flinkpulse.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "rules",
        help="set alert-rule parameters live, globally or per home / IP",
        description="Live rule parameters (topic config.rules): security_alerts applies a "
        "change to events from the change on, within seconds, without a restart. An entity's "
        "own setting wins over the global one, the global one over the job's configuration.",
    )
    group = p.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", parser_class=type(p))
    group.required = True
    s = group.add_parser("set", help="set a rule's parameter for a scope (audited)")
    _scope(s)
    s.add_argument("--watts", type=float, help="energy_over_threshold: average watts per home")
    s.add_argument("--count", type=int, help="brute_force_login: failed logins before a success")
    s.add_argument("--reason", help="why (kept in the change record)")
    s.add_argument("--by", help="who (default: user@host)")
    s.set_defaults(func=_set)
    u = group.add_parser("unset", help="remove a scope's setting (falls back to global/default)")
    _scope(u)
    u.add_argument("--reason", help="why (kept in the change record)")
    u.add_argument("--by", help="who (default: user@host)")
    u.set_defaults(func=_unset)
    ls = group.add_parser("list", help="the settings in force and each rule's default")
    ls.add_argument("--json", action="store_true", help="one JSON object per setting")
    ls.set_defaults(func=_list)


def _scope(p: argparse.ArgumentParser) -> None:
    p.add_argument("rule", help="energy_over_threshold | brute_force_login")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--home", metavar="HOME_ID", help="only this home")
    g.add_argument("--ip", metavar="ADDRESS", help="only this client IP")


def _scope_of(args: argparse.Namespace) -> str:
    from flinkpulse.rules import GLOBAL

    if args.home:
        return f"home:{args.home}"
    if args.ip:
        return f"ip:{args.ip}"
    return GLOBAL


def _line(rec: dict[str, Any]) -> str:
    prev = "unset" if rec["previous"] is None else f"{rec['previous']:g}"
    new = "unset" if rec["value"] is None else f"{rec['value']:g}"
    return (
        f"{rec['rule']} {rec['scope']}: {rec['param']} {prev} -> {new} "
        f"(by {rec['changed_by']} at {_utc(rec['changed_at'])})"
    )


def _utc(v: Any) -> str:
    from datetime import UTC, datetime

    if isinstance(v, int):
        v = datetime.fromtimestamp(v / 1000, UTC)
    return f"{v:%Y-%m-%d %H:%M:%S} UTC"


def _set(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import rules

    given = {k: v for k, v in (("watts", args.watts), ("count", args.count)) if v is not None}
    if len(given) != 1:
        spec = rules.PARAMS.get(args.rule)
        hint = f"--{spec.param}" if spec else "--watts or --count"
        raise UsageError(f"rules set {args.rule}: give the value with {hint}")
    ((param, value),) = given.items()
    scope = _scope_of(args)
    rules.check(args.rule, scope, param, float(value))
    print(_line(rules.change(cfg, args.rule, scope, float(value), args.by, args.reason)))
    return 0


def _unset(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import rules

    scope = _scope_of(args)
    rules.check(args.rule, scope)
    print(_line(rules.change(cfg, args.rule, scope, None, args.by, args.reason)))
    return 0


def _list(cfg: Config, args: argparse.Namespace) -> int:
    from flink_jobs.common import job_params
    from flink_jobs.security_alerts import DEFAULTS, JOB
    from flinkpulse import rules

    defaults = job_params(cfg, JOB, DEFAULTS)
    settings = sorted(rules.current(cfg).values(), key=lambda r: (r["rule"], r["scope"]))
    if args.json:
        for r in settings:
            print(json.dumps({**r, "changed_at": _utc(r["changed_at"])}))
        return 0
    for name, spec in rules.PARAMS.items():
        print(f"{name} ({spec.param}): default {defaults[spec.job_param]:g} (job config)")
        for r in settings:
            if r["rule"] == name:
                print(f"  {r['scope']}: {r['value']:g}  (by {r['changed_by']} at "
                      f"{_utc(r['changed_at'])}, was "
                      f"{'unset' if r['previous'] is None else format(r['previous'], 'g')})")  # fmt: skip
    return 0
