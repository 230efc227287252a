"""`flinkpulse alerts tail|notify`: alerts as they happen, on the terminal or to a webhook."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from datetime import UTC, datetime
from typing import Any

from flinkpulse.commands.times import TIME_FORMS, epoch_ms
from flinkpulse.config import Config
from flinkpulse.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("alerts", help="follow alerts live, or post them to a webhook")
    group = p.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND", parser_class=type(p))
    group.required = True

    t = group.add_parser(
        "tail",
        help="print alerts as they arrive, one line each",
        description="Print each alert from the alerts topic as one line: time (UTC), severity, "
        "rule, entity, whether it opens an incident (new) or updates one (update #N), summary. "
        "Alerts from now on unless --from-beginning or --since.",
    )
    _common(t)
    t.add_argument("--from-beginning", action="store_true", help="start at the oldest alert")
    t.add_argument(
        "--since",
        type=epoch_ms,
        metavar="TIME",
        help=f"start at the alerts written at or after TIME ({TIME_FORMS}), e.g. now-1h",
    )
    t.add_argument("--max", type=int, metavar="N", help="exit after N alerts")
    t.add_argument("--json", action="store_true", help="print each alert as JSON instead")
    t.add_argument("--webhook", metavar="URL", help="also POST each printed alert to URL")
    t.set_defaults(func=_tail)

    n = group.add_parser(
        "notify",
        help="POST every alert as JSON to a webhook, with retries (foreground)",
        description="Post each alert as JSON to the webhook (alerts.webhook_url or --webhook), "
        "retrying with backoff; resumes after a restart where it left off. Incident updates "
        "carry the same alert_id and a higher version.",
    )
    _common(n)
    n.add_argument("--webhook", metavar="URL", help="webhook URL (default alerts.webhook_url)")
    n.set_defaults(func=_notify)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rule", dest="rules", action="append", metavar="RULE", help="only this rule (repeatable)"
    )
    p.add_argument(
        "--idle-timeout", type=float, metavar="SECONDS", help="exit after SECONDS without alerts"
    )
    p.add_argument(
        "--new-only",
        action="store_true",
        help="only the first record of each incident, not its updates",
    )


def _webhook(cfg: Config, url: str | None) -> Any:
    from flinkpulse.alerts import Webhook

    url = url or cfg.alerts.webhook_url
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"webhook URL must start with http:// or https://, got {url!r}")
    return Webhook(url, retries=cfg.alerts.webhook_retries, timeout=cfg.alerts.webhook_timeout_s)


def _check_rules(rules: list[str] | None) -> None:
    """A rule that does not exist would silently match nothing: refuse it (exit 2)."""
    from flinkpulse.alerts import RULES

    unknown = [r for r in rules or [] if r not in RULES]
    if unknown:
        raise UsageError(f"unknown rule {unknown[0]!r} (rules: {', '.join(RULES)})")


def _tail(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import alerts

    _check_rules(args.rules)
    if args.since is not None and args.from_beginning:
        raise UsageError("--since and --from-beginning both say where to start: give one")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    # stdout carries only alerts (pipes, --json); the user still sees that it is listening
    topic = cfg.kafka.topic("alerts")
    since = (
        f" written since {datetime.fromtimestamp(args.since / 1000, UTC):%Y-%m-%dT%H:%M:%SZ}"
        if args.since is not None
        else ""
    )
    print(f"waiting for alerts{since} on {topic} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    if args.json:
        n = 0
        for alert, _ in alerts.stream(
            cfg, args.from_beginning, idle_timeout=args.idle_timeout, since_ms=args.since
        ):
            if not alerts.wanted(alert, args.rules, args.new_only):
                continue
            print(alerts.alert_json_line(alert), flush=True)
            n += 1
            if args.max and n >= args.max:
                break
        return 0
    alerts.tail(
        cfg,
        rules=args.rules,
        from_beginning=args.from_beginning,
        max_alerts=args.max,
        idle_timeout=args.idle_timeout,
        webhook=_webhook(cfg, args.webhook),
        color=sys.stdout.isatty(),
        new_only=args.new_only,
        since_ms=args.since,
    )
    return 0


def _notify(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import alerts

    _check_rules(args.rules)
    hook = _webhook(cfg, args.webhook)
    if hook is None:
        raise UsageError("no webhook: pass --webhook URL or set alerts.webhook_url")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    ok, failed = alerts.notify(
        cfg,
        hook,
        rules=args.rules,
        idle_timeout=args.idle_timeout,
        stop=lambda: stopping,
        new_only=args.new_only,
    )
    print(f"delivered {ok} alerts to {hook.url}, {failed} failed", flush=True)
    return 0
