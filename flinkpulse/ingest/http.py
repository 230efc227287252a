"""`flinkpulse ingest http`: ``POST /v1/topics/<topic>/records`` into Kafka, modelled on the
Confluent REST Proxy v3 record API.

The body is one JSON record, or a batch as JSON lines (``application/x-ndjson``). Each record is
validated, encoded and produced as the MQTT bridge does (:mod:`flinkpulse.ingest.core`); the
answer comes once Kafka has acknowledged every record of the request, one result per record,
in order: ``{"error_code": 200, "partition_id": …, "offset": …, "timestamp": …}``, or for an
invalid record ``{"error_code": 422, "message": <reason>, "dead_letter": {topic, partition_id,
offset}}`` (its raw line went to ``dlq.<topic>``).

Refused requests: 401 without the bearer token, 413 for a body over ``ingest.http_max_body``,
429 (``Retry-After``) over ``ingest.http_rate`` requests/s per client address, 404 for a topic
that is not ``[<namespace>.]<source topic>``. ``GET /health`` needs no token.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flinkpulse.config import Config
from flinkpulse.ingest import write_status
from flinkpulse.ingest.core import TRANSIENT, Delivered, Ingestor, target_of

log = logging.getLogger("flinkpulse.ingest.http")

_PATH = re.compile(r"^/v1/topics/([^/?]+)/records/?$")
#: seconds a request waits for Kafka's acknowledgements before it answers 503
ACK_TIMEOUT_S = 30.0
#: an oversized body up to this many times the limit is read and dropped (the client then gets
#: its 413); beyond, the connection is closed unread
_DRAIN_FACTOR = 8


class RateLimiter:
    """A token bucket per client address: `rate` requests/s, bursts up to 2x."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            ok = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if ok else tokens, now)
            if len(self._buckets) > 10_000:  # forget the quietest clients
                for k in [k for k, (t, _) in self._buckets.items() if t >= self.burst - 1][:5000]:
                    del self._buckets[k]
        return ok


def split_records(body: bytes) -> list[bytes]:
    """The records of a body: one JSON object (possibly over several lines), or JSON lines."""
    stripped = body.strip()
    if not stripped:
        return []
    if b"\n" in stripped:
        try:
            doc = json.loads(stripped)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return [ln.strip() for ln in stripped.split(b"\n") if ln.strip()]
    return [stripped]


class IngestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    #: the listen backlog: a burst of new connections queues instead of being reset
    request_queue_size = 1024

    def __init__(self, cfg: Config, host: str, port: int, token: str | None) -> None:
        self.cfg = cfg
        self.token = token
        self.ingestor = Ingestor(cfg)
        self.limiter = RateLimiter(cfg.ingest.http_rate)
        self.counts = {"requests": 0, "401": 0, "413": 0, "429": 0}
        super().__init__((host, port), Handler)


class Handler(BaseHTTPRequestHandler):
    server: IngestServer
    protocol_version = "HTTP/1.1"
    #: headers and body go out in separate writes: without TCP_NODELAY the client's delayed ACK
    #: holds the body ~40 ms
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("%s " + format, self.client_address[0], *args)

    def _json(self, code: int, doc: Any, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, message: str, extra: dict[str, str] | None = None) -> None:
        if str(code) in self.server.counts:
            self.server.counts[str(code)] += 1
        self._json(code, {"error_code": code, "message": message}, extra)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._error(404, f"no such resource {self.path}")

    def handle_expect_100(self) -> bool:
        """Refuse an oversized body before the client sends it (``Expect: 100-continue``)."""
        if self._too_large():
            self.close_connection = True
            self._error(413, self._too_large_message())
            return False
        return super().handle_expect_100()

    def _length(self) -> int | None:
        try:
            return int(self.headers.get("Content-Length", ""))
        except ValueError:
            return None

    def _too_large(self) -> bool:
        n = self._length()
        return n is not None and n > self.server.cfg.ingest.http_max_body

    def _too_large_message(self) -> str:
        return f"request body over {self.server.cfg.ingest.http_max_body} bytes"

    def do_POST(self) -> None:
        srv = self.server
        srv.counts["requests"] += 1
        m = _PATH.match(self.path)
        client = self.client_address[0]
        if not srv.limiter.allow(client):
            self._discard_body()
            self._error(429, "too many requests", {"Retry-After": "1"})
            return
        if srv.token is not None:
            auth = self.headers.get("Authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not given or not hmac.compare_digest(given.encode(), srv.token.encode()):
                self._discard_body()
                self._error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
                return
        n = self._length()
        if n is None:
            self.close_connection = True
            self._error(411, "Content-Length required")
            return
        if self._too_large():
            self._discard_body()
            self._error(413, self._too_large_message())
            return
        body = self.rfile.read(n)
        if m is None:
            self._error(404, f"no such resource {self.path}; POST /v1/topics/<topic>/records")
            return
        target = target_of(srv.cfg, m.group(1))
        if target is None:
            self._error(404, f"topic {m.group(1)!r} is not a source topic ([<namespace>.]<topic>)")
            return
        records = split_records(body)
        if not records:
            self._error(400, "empty body: one JSON record, or JSON lines")
            return
        self._ingest(target, records)

    def _discard_body(self) -> None:
        """Read and drop a body that will not be used, so the client reads the answer; close the
        connection instead when it is huge or of unknown length."""
        n = self._length()
        if n is None or n > _DRAIN_FACTOR * self.server.cfg.ingest.http_max_body:
            self.close_connection = True
            return
        while n > 0:
            chunk = self.rfile.read(min(n, 65536))
            if not chunk:
                break
            n -= len(chunk)

    def _ingest(self, target: Any, records: list[bytes]) -> None:
        results: list[Delivered | None] = [None] * len(records)
        left = [len(records)]
        cond = threading.Condition()

        def done_at(i: int) -> Any:
            def done(d: Delivered) -> None:
                with cond:
                    results[i] = d
                    left[0] -= 1
                    cond.notify()

            return done

        peer = [("http.client", self.client_address[0].encode())]
        try:
            for i, raw in enumerate(records):
                self.server.ingestor.send(target, raw, done_at(i), headers=peer)
        except TRANSIENT as e:
            self._error(503, f"{e} — nothing of this request after record {i} was written")
            return
        with cond:
            cond.wait_for(lambda: left[0] == 0, timeout=ACK_TIMEOUT_S)
        out = [_result(d) for d in results]
        accepted = sum(1 for r in out if r["error_code"] == 200)
        self._json(
            200,
            {
                "topic": target.topic,
                "accepted": accepted,
                "rejected": len(out) - accepted,
                "results": out,
            },
        )


def _result(d: Delivered | None) -> dict[str, Any]:
    if d is None:
        return {"error_code": 503, "message": f"Kafka did not acknowledge within {ACK_TIMEOUT_S}s"}
    if d.error is not None:
        return {"error_code": 503, "message": f"Kafka refused the record: {d.error}"}
    if d.reason is not None:
        return {
            "error_code": 422,
            "message": d.reason,
            "dead_letter": {"topic": d.topic, "partition_id": d.partition, "offset": d.offset},
        }
    return {
        "error_code": 200,
        "partition_id": d.partition,
        "offset": d.offset,
        "timestamp": d.timestamp,
    }


def serve(
    cfg: Config, host: str, port: int, token: str | None, status_file: Path | None = None
) -> int:
    """Serve until SIGTERM/SIGINT; counters to `status_file` every second."""
    import signal

    srv = IngestServer(cfg, host, port, token)
    srv.ingestor.check_kafka()
    stop = threading.Event()

    def report() -> None:
        last = (time.monotonic(), 0)
        while not stop.wait(1.0):
            c = srv.ingestor.counts
            now = time.monotonic()
            done = c["records"] + c["dead_letters"]
            doc = {
                "state": "running",
                "address": f"http://{host}:{port}",
                **srv.counts,
                **c,
                "rate": (done - last[1]) / max(now - last[0], 1e-6),
            }
            last = (now, done)
            if status_file is not None:
                write_status(status_file, doc)

    threading.Thread(target=report, daemon=True).start()

    def shutdown(*_: Any) -> None:
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    log.info("serving on http://%s:%d", host, port)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        srv.server_close()
        srv.ingestor.close(10)
    return 0
