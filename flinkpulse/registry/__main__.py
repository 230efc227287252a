"""``python -m flinkpulse.registry --port 8085 --bootstrap 127.0.0.1:9092 --topic _schemas``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from flinkpulse.registry.server import make_server
from flinkpulse.registry.store import Log, State

#: environment variable with extra Kafka client settings (JSON)
CONF_ENV = "FLINKPULSE_REGISTRY_KAFKA_CONF"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="flinkpulse-registry", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8085)
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    p.add_argument("--topic", default="_schemas", help="compacted topic holding the state")
    p.add_argument(
        "--client-conf",
        default=os.environ.get(CONF_ENV, "{}"),
        help=f"extra librdkafka settings as JSON (default: ${CONF_ENV}, keeps secrets out of argv)",
    )
    p.add_argument("--quiet", action="store_true", help="no access log")
    args = p.parse_args(argv)

    import json

    conf = {"bootstrap.servers": args.bootstrap, **json.loads(args.client_conf)}
    state = State(Log(conf, args.topic))
    state.load()
    server = make_server(state, args.host, args.port, quiet=args.quiet)
    n = len(state.subject_names(deleted=True))
    print(
        f"registry: {n} subjects, max schema id {state.max_id} from {args.topic}; "
        f"listening on http://{args.host}:{args.port}",
        flush=True,
    )

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
