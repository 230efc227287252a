"""`flinkpulse stack up|down|status|logs [component...]`."""

from __future__ import annotations

import argparse

from flinkpulse import stack
from flinkpulse.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("stack", help="start, stop and inspect the local stack")
    ss = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    ss.required = True
    up = ss.add_parser("up", help="start components (idempotent) and wait until ready")
    up.add_argument("components", nargs="*", help="default: all of stack.components")
    up.set_defaults(func=_up)
    down = ss.add_parser("down", help="stop the processes the stack started")
    down.add_argument("components", nargs="*")
    down.set_defaults(func=_down)
    st = ss.add_parser("status", help="component, pid, address, health, log")
    st.add_argument("components", nargs="*")
    st.set_defaults(func=_status)
    lg = ss.add_parser("logs", help="show a component's log")
    lg.add_argument("component")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("-n", "--lines", type=int, default=50)
    lg.set_defaults(func=_logs)


def _up(cfg: Config, args: argparse.Namespace) -> int:
    print(f"flinkpulse stack up (state in {cfg.stack.state_path()})", flush=True)
    stack.up(cfg, args.components or None)
    return 0


def _down(cfg: Config, args: argparse.Namespace) -> int:
    stack.down(cfg, args.components or None)
    return 0


def _status(cfg: Config, args: argparse.Namespace) -> int:
    ok = stack.print_status(cfg, args.components or None)
    if not args.components or "kafka" in args.components:
        _print_quality(cfg)
    return 0 if ok else 3


def _print_quality(cfg: Config) -> None:
    """Per source topic: the share late, dead-lettered and future (only when Kafka is up)."""
    from flinkpulse import quality

    if not stack.component(cfg, "kafka").running():
        return
    try:
        rows = quality.source_quality(cfg)
    except Exception as e:  # noqa: BLE001 - status must not fail on a slow or broken broker
        print(f"\ndata quality: not available ({type(e).__name__}: {e})")
        return
    if rows:
        print("\n" + quality.render(rows))
    if any(r.late or r.dead_lettered or r.future or r.duplicates for r in rows):
        print("the records set aside, each with its reason: `flinkpulse dlq TOPIC [--kind late]`")


def _logs(cfg: Config, args: argparse.Namespace) -> int:
    return stack.logs(cfg, args.component, args.follow, args.lines)
