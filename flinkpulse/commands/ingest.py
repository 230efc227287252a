"""`flinkpulse ingest mqtt|http`: device ingestion into the Kafka source topics (docs/ingest.md)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from flinkpulse.config import Config
from flinkpulse.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "ingest",
        help="MQTT bridge and HTTP endpoint: device JSON -> Avro -> Kafka",
        description="Validate device JSON against the source topic's Avro schema, encode it "
        "through the schema registry and produce it to Kafka (timestamp = ingest time); "
        "invalid payloads go to dlq.<topic>. Both run as stack components (`mqtt`, `ingest`).",
    )
    ss = p.add_subparsers(dest="path", metavar="PATH", parser_class=type(p))
    ss.required = True
    mq = ss.add_parser("mqtt", help="bridge the broker's device topics to Kafka (QoS 1)")
    mq.add_argument("--status-file", help="write counters as JSON here (stack component)")
    mq.add_argument("--seconds", type=float, help="stop after this many seconds")
    mq.set_defaults(func=_mqtt)
    ht = ss.add_parser("http", help="serve POST /v1/topics/<topic>/records")
    ht.add_argument("--host", help="address to bind (default stack.host: 127.0.0.1)")
    ht.add_argument("--port", type=int, help="port (default stack.ingest_port)")
    ht.add_argument("--status-file", help="write counters as JSON here (stack component)")
    ht.set_defaults(func=_http)


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _mqtt(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.ingest.mqtt import Bridge

    _logging()
    status = Path(args.status_file) if args.status_file else None
    return Bridge(cfg, status).run(max_seconds=args.seconds)


def check_bind(cfg: Config, host: str) -> None:
    """Refuse to serve the network without credentials (loopback is always allowed)."""
    from flinkpulse.stack import is_loopback

    if not cfg.ingest.http_auth and not is_loopback(host):
        raise UsageError(
            f"ingest http on {host} would accept records from the network without credentials: "
            "keep 127.0.0.1, or leave ingest.http_auth on (bearer token)"
        )


def _http(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.ingest import http_token
    from flinkpulse.ingest.http import serve

    host = args.host or cfg.stack.host
    port = args.port if args.port is not None else cfg.stack.ingest_port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: expected 0-65535")
    check_bind(cfg, host)
    _logging()
    token = http_token(cfg) if cfg.ingest.http_auth else None
    status = Path(args.status_file) if args.status_file else None
    return serve(cfg, host, port, token, status)
