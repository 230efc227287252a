"""`flinkpulse dlq [TOPIC ...]`: the records the pipeline set aside, each with its reason."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flinkpulse.commands.times import TIME_FORMS, epoch_ms
from flinkpulse.config import Config
from flinkpulse.errors import UsageError

if TYPE_CHECKING:
    from flinkpulse.quality import SideRecord

#: characters of a decoded value shown on a line (`--values`); --json keeps all of it
PREVIEW_CHARS = 160


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dlq",
        help="list the records set aside (dead letters, late, duplicates) with their reasons",
        description="Print the records the jobs, the loader and the ingest tier set aside "
        "instead of using them, one line each: Kafka time (UTC), kind, where the original "
        "record was (topic[partition]@offset), its key, and the reason. Kinds: dlq (could not "
        "be decoded or validated: dlq.<topic>), late (behind the watermark: late.<topic>), dup "
        "(a later copy of an event already seen: dup.<topic>). Reads what is there now and "
        "exits, or keeps waiting with --follow.",
    )
    p.add_argument(
        "topics",
        nargs="*",
        metavar="TOPIC",
        help="the topics whose records to show, e.g. iot.security-events (default: all)",
    )
    p.add_argument(
        "--kind",
        dest="kinds",
        action="append",
        choices=["dlq", "late", "dup"],
        help="which side topics (repeatable; default dlq)",
    )
    p.add_argument(
        "--since", type=epoch_ms, metavar="TIME", help=f"from this Kafka time on ({TIME_FORMS})"
    )
    p.add_argument("--follow", action="store_true", help="keep printing new records as they come")
    p.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="with --follow: exit after SECONDS quiet",
    )
    p.add_argument("--max", type=int, metavar="N", help="exit after N records")
    p.add_argument(
        "--values", action="store_true", help="also show each value, decoded when it can be"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per record: headers, key, the value decoded (when it can be) and "
        "its bytes in base64",
    )
    p.set_defaults(func=_dlq)


def _dlq(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import quality

    kinds = args.kinds or ["dlq"]
    known = sorted({s for _, s in quality.side_topics(kinds)})
    unknown = [t for t in args.topics if t not in known]
    if unknown:
        raise UsageError(
            f"{unknown[0]!r} has no {'/'.join(kinds)} topic (topics: {', '.join(known)})"
        )
    if args.idle_timeout is not None and not args.follow:
        raise UsageError("--idle-timeout ends a --follow: without it the read ends by itself")
    if args.max is not None and args.max < 1:
        raise UsageError(f"--max must be at least 1, got {args.max}")
    decode = _decoder(cfg) if args.values or args.json else None
    n = 0
    for rec in quality.side_records(
        cfg,
        kinds,
        args.topics or None,
        since_ms=args.since,
        follow=args.follow,
        idle_timeout=args.idle_timeout,
    ):
        print(as_json(rec, decode) if args.json else as_line(rec, decode), flush=True)
        n += 1
        if args.max is not None and n >= args.max:
            break
    if not args.json:
        print(f"{n:,} record(s)", file=sys.stderr)
    return 0


def _decoder(cfg: Config) -> Any:
    """value bytes -> the decoded record, or None when they are not a record the registry
    knows (a dead letter usually is not)."""
    from flinkpulse.loader.avro import DecodeError, Decoder

    dec = Decoder(cfg.registry.url)

    def decode(value: bytes | None) -> Any:
        if not value:
            return None
        try:
            return dec.decode(value)
        except DecodeError:
            return None

    return decode


def _time(ms: int) -> str:
    t = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{t:%Y-%m-%d %H:%M:%S}.{ms % 1000:03d}Z"


def _key(key: bytes | None) -> str:
    return "-" if key is None else key.decode(errors="replace")


def as_line(rec: SideRecord, decode: Any = None) -> str:
    """One record as a line: time, kind, origin, key, reason (and the value with `decode`)."""
    line = f"{_time(rec.timestamp_ms)}  {rec.kind:<4}  {rec.origin}  key={_key(rec.key)}  "
    line += rec.reason or "(no reason header)"
    if decode is not None:
        value = decode(rec.value)
        if value is not None:
            shown = json.dumps(value, default=str, separators=(",", ":"))
            if len(shown) > PREVIEW_CHARS:
                shown = shown[: PREVIEW_CHARS - 1] + "…"
        else:
            raw = rec.value or b""
            shown = f"<{len(raw):,} bytes: {raw[:16].hex(' ')}{' …' if len(raw) > 16 else ''}>"
        line += f"  value={shown}"
    return line


def as_json(rec: SideRecord, decode: Any) -> str:
    """One record as a JSON object: nothing of it is left out (the bytes in base64)."""
    return json.dumps(
        {
            "kafka_time": _time(rec.timestamp_ms),
            "kind": rec.kind,
            "source": rec.source,
            "origin": rec.origin,
            "topic": rec.topic,
            "partition": rec.partition,
            "offset": rec.offset,
            "reason": rec.reason,
            "headers": rec.headers,
            "key": None if rec.key is None else rec.key.decode(errors="replace"),
            "value": decode(rec.value),
            "value_base64": None if rec.value is None else base64.b64encode(rec.value).decode(),
        },
        default=str,
    )
