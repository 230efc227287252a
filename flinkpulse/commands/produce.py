"""`flinkpulse produce <gaming|iot|web|all>`: realistic, seeded events into Kafka (Avro)."""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

from flinkpulse.commands.times import TIME_FORMS, epoch_ms
from flinkpulse.config import Config
from flinkpulse.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "produce",
        help="generate realistic events into Kafka (Avro, schema registry)",
        description="Generate seeded, realistic events and send them to Kafka as Avro in "
        "Confluent wire format. Stops after --count events, after --duration seconds, or on "
        "Ctrl-C (which flushes and prints a summary). Event time: on the live clock (default) it "
        "is the wall clock, never ahead of it, at any --rate (0 included), and Kafka stamps each "
        "record when it is produced. On the simulated clock (--clock simulated, or --start-time) "
        "it starts at --start-time (default now) and advances by 1/--rate s per event (1 ms at "
        "--rate 0) whatever the wall clock does, and each record's Kafka timestamp is set to that "
        "clock, so the jobs judge it as they judge live data (scripted scenarios, backfill data).",
    )
    p.add_argument("domain", choices=["gaming", "iot", "web", "all"])
    p.add_argument("--rate", type=float, default=1000.0, help="events/s (0 = as fast as possible)")
    p.add_argument("--duration", type=float, help="seconds to run")
    p.add_argument("--count", type=int, help="events to send")
    p.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    p.add_argument(
        "--late-fraction", type=float, default=0.0, help="fraction of events 30-120 s late"
    )
    p.add_argument(
        "--out-of-order-fraction",
        type=float,
        default=0.05,
        help="fraction of events up to 3 s out of order (default 0.05)",
    )
    p.add_argument(
        "--bad-fraction",
        type=float,
        default=0.0,
        help="fraction of malformed values sent on purpose (dead-letter testing)",
    )
    p.add_argument(
        "--clock",
        choices=["live", "simulated"],
        help="live: event time = the wall clock (default); simulated: event time and Kafka "
        "timestamps follow a simulated clock from --start-time",
    )
    p.add_argument(
        "--start-time",
        type=epoch_ms,
        metavar="TIME",
        help=f"simulated clock: event time of the first event, {TIME_FORMS}; implies --clock "
        "simulated (default: now)",
    )
    p.add_argument(
        "--no-anomalies",
        action="store_true",
        help="no cheaters, intrusions or attacks (clean traffic only)",
    )
    p.add_argument(
        "--via",
        choices=["kafka", "mqtt", "http"],
        default="kafka",
        help="kafka: Avro straight into Kafka (default); mqtt: JSON to the device topics of the "
        "MQTT broker, as IoT devices do (iot only); http: JSON lines to the HTTP ingest endpoint "
        "(docs/ingest.md); the ingest tier stamps the Kafka timestamps (live clock only)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_produce)


def _iso(ms: int | None) -> str:
    return "now" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _produce(cfg: Config, args: argparse.Namespace) -> int:
    from producers import streams
    from producers.base import TimeConfig
    from producers.kafka import AvroKafkaProducer

    for name in ("late_fraction", "out_of_order_fraction", "bad_fraction"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 1, got {v}")
    if args.late_fraction + args.out_of_order_fraction > 1.0:
        raise UsageError("--late-fraction + --out-of-order-fraction must not exceed 1")
    if args.rate < 0:
        raise UsageError("--rate must be >= 0")
    if args.clock == "live" and args.start_time is not None:
        raise UsageError("--start-time sets a simulated clock: drop it or use --clock simulated")
    simulated = args.clock == "simulated" or args.start_time is not None
    rate = args.rate or None
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    tc = TimeConfig(
        start_ms=args.start_time,
        events_per_second=rate or 1000.0,
        out_of_order_fraction=args.out_of_order_fraction,
        late_fraction=args.late_fraction,
        simulated=simulated,
    )
    if args.via != "kafka":
        return _produce_via(cfg, args, tc, seed, rate)
    topics = streams.topics(args.domain)
    t0 = time.monotonic()
    producer = AvroKafkaProducer(cfg, topics, bad_fraction=args.bad_fraction, seed=seed)
    # reference tables first (iot's devices, gaming's players): every event then finds its own
    refs = producer.send_reference(
        streams.reference(args.domain, seed, tc, anomalies=not args.no_anomalies)
    )
    events = streams.stream(args.domain, seed, tc, anomalies=not args.no_anomalies, timed=simulated)
    until = (
        f"{args.count:,} events"
        if args.count
        else (f"{args.duration:g}s" if args.duration else "Ctrl-C")
    )
    print(
        f"producing {args.domain} (seed {seed}) to "
        f"{', '.join(cfg.kafka.topic(t) for t in topics)} at "
        f"{f'{rate:,.0f}/s' if rate else 'full speed'} until {until}, "
        f"{'simulated clock from ' + _iso(tc.start_ms) if simulated else 'live clock'} "
        f"({f'{refs:,} reference records, ' if refs else ''}setup {time.monotonic() - t0:.1f}s)",
        file=sys.stderr,
        flush=True,
    )
    stats = producer.run(
        events,
        rate=rate,
        duration=args.duration,
        count=args.count,
        progress=None if args.quiet else sys.stderr,
    )
    print(stats.summary())
    for err in stats.errors:
        print(f"  {err}", file=sys.stderr)
    return 1 if stats.failed else 0


def _produce_via(
    cfg: Config, args: argparse.Namespace, tc: Any, seed: int, rate: float | None
) -> int:
    """The simulator through the ingest tier (MQTT broker or HTTP endpoint) instead of Kafka."""
    from flinkpulse.ingest.send import send_http, send_mqtt
    from producers import streams

    if args.via == "mqtt" and args.domain != "iot":
        raise UsageError("--via mqtt sends IoT devices' records: use it with `produce iot`")
    if tc.simulated:
        raise UsageError(
            f"--via {args.via}: the ingest tier stamps Kafka timestamps with its own clock; "
            "a simulated clock (--clock simulated, --start-time) needs --via kafka"
        )
    if args.bad_fraction:
        raise UsageError(f"--bad-fraction sends malformed Avro: not with --via {args.via}")
    events = streams.stream(args.domain, seed, tc, anomalies=not args.no_anomalies, timed=False)
    send = send_mqtt if args.via == "mqtt" else send_http
    print(
        f"producing {args.domain} (seed {seed}) via {args.via} at "
        f"{f'{rate:,.0f}/s' if rate else 'full speed'}",
        file=sys.stderr,
        flush=True,
    )
    stats = send(cfg, events, rate=rate, duration=args.duration, count=args.count)
    print(stats.summary(args.via))
    for err in stats.errors:
        print(f"  {err}", file=sys.stderr)
    return 1 if stats.failed else 0
