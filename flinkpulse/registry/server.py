"""The HTTP API: Confluent Schema Registry's REST endpoints on a small threaded server.

Implemented: ``/subjects`` (list with ``deleted``/``deletedOnly``, versions, register with
``normalize`` and schema references, lookup, soft/hard delete, ``referencedby``),
``/schemas/ids/{id}`` (+ ``/schema``, ``/versions``, ``/subjects``), ``/schemas/types``,
``/config`` (global and per subject), ``/compatibility/subjects/{s}/versions[/{v}]``,
``/mode`` (global and per subject: READWRITE, READONLY, READONLY_OVERRIDE, IMPORT).
Errors are ``{"error_code": N, "message": "..."}`` with Confluent's codes.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from flinkpulse.registry import compat
from flinkpulse.registry.store import RegistryError, State, Version

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

Handler = Callable[["Request"], Any]


class Request:
    """What a route handler gets: path parameters, query flags and the JSON body."""

    def __init__(self, params: list[str], query: dict[str, list[str]], body: bytes) -> None:
        self.params = [unquote(p) for p in params]
        self.query = query
        self.raw = body

    def flag(self, name: str) -> bool:
        return (self.query.get(name, ["false"])[-1]).lower() == "true"

    def deleted_only(self) -> bool:
        """``deletedOnly=true`` (the REST name) or ``deleted_only=true`` (the Python client's)."""
        return self.flag("deletedOnly") or self.flag("deleted_only")

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.raw or b"{}")
        except ValueError:
            raise RegistryError(400, 400, "Unrecognized request body: not valid JSON") from None
        if not isinstance(data, dict):
            raise RegistryError(400, 400, "Request body must be a JSON object")
        return data

    def schema(self) -> tuple[str, str, list[dict[str, Any]]]:
        """(schema text, schema type, references) of a register / lookup / compatibility body."""
        body = self.json()
        text = body.get("schema")
        if not isinstance(text, str) or not text.strip():
            raise RegistryError(422, 42201, "Invalid schema: the 'schema' field is missing")
        refs = body.get("references") or []
        if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
            raise RegistryError(422, 42201, "Invalid schema: 'references' must be a list")
        return text, str(body.get("schemaType") or "AVRO").upper(), refs


def _registered(v: Version) -> dict[str, Any]:
    out: dict[str, Any] = {"subject": v.subject, "version": v.version, "id": v.id}
    if v.schema_type != "AVRO":
        out["schemaType"] = v.schema_type
    out["schema"] = v.schema
    if v.references:
        out["references"] = v.references
    return out


class Api:
    """Routes -> State operations."""

    def __init__(self, state: State) -> None:
        self.s = state
        S = r"([^/]+)"
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"^/?$"), lambda r: {}),
            ("GET", re.compile(r"^/subjects$"), self.list_subjects),
            ("GET", re.compile(rf"^/subjects/{S}/versions$"), self.list_versions),
            ("POST", re.compile(rf"^/subjects/{S}/versions$"), self.register),
            ("GET", re.compile(rf"^/subjects/{S}/versions/{S}$"), self.get_version),
            ("GET", re.compile(rf"^/subjects/{S}/versions/{S}/schema$"), self.get_version_schema),
            ("GET", re.compile(rf"^/subjects/{S}/versions/{S}/referencedby$"), self.referenced_by),
            ("DELETE", re.compile(rf"^/subjects/{S}/versions/{S}$"), self.delete_version),
            ("POST", re.compile(rf"^/subjects/{S}$"), self.lookup),
            ("DELETE", re.compile(rf"^/subjects/{S}$"), self.delete_subject),
            ("GET", re.compile(r"^/schemas/types$"), lambda r: ["AVRO"]),
            ("GET", re.compile(r"^/schemas/ids/(\d+)$"), self.get_schema),
            ("GET", re.compile(r"^/schemas/ids/(\d+)/schema$"), self.get_schema_raw),
            ("GET", re.compile(r"^/schemas/ids/(\d+)/versions$"), self.get_schema_versions),
            ("GET", re.compile(r"^/schemas/ids/(\d+)/subjects$"), self.get_schema_subjects),
            ("GET", re.compile(r"^/config$"), self.get_config),
            ("PUT", re.compile(r"^/config$"), self.put_config),
            ("DELETE", re.compile(r"^/config$"), self.delete_config),
            ("GET", re.compile(rf"^/config/{S}$"), self.get_config),
            ("PUT", re.compile(rf"^/config/{S}$"), self.put_config),
            ("DELETE", re.compile(rf"^/config/{S}$"), self.delete_config),
            ("POST", re.compile(rf"^/compatibility/subjects/{S}/versions/{S}$"), self.test_compat),
            ("POST", re.compile(rf"^/compatibility/subjects/{S}/versions$"), self.test_compat),
            ("GET", re.compile(r"^/mode$"), self.get_mode),
            ("PUT", re.compile(r"^/mode$"), self.put_mode),
            ("GET", re.compile(rf"^/mode/{S}$"), self.get_mode),
            ("PUT", re.compile(rf"^/mode/{S}$"), self.put_mode),
            ("DELETE", re.compile(rf"^/mode/{S}$"), self.delete_mode),
        ]

    def dispatch(self, method: str, target: str, body: bytes) -> tuple[int, Any]:
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        query = parse_qs(url.query)
        allowed = False
        for m, pattern, handler in self.routes:
            match = pattern.match(path)
            if not match:
                continue
            allowed = True
            if m != method:
                continue
            try:
                return 200, handler(Request(list(match.groups()), query, body))
            except RegistryError as e:
                return e.status, {"error_code": e.code, "message": e.message}
        if allowed:
            return 405, {"error_code": 405, "message": "HTTP 405 Method Not Allowed"}
        return 404, {"error_code": 404, "message": "HTTP 404 Not Found"}

    # -- subjects ------------------------------------------------------------------------------
    def list_subjects(self, r: Request) -> list[str]:
        prefix = r.query.get("subjectPrefix", [""])[-1]
        if r.deleted_only():  # subjects all of whose versions are soft-deleted
            live = set(self.s.subject_names())
            return [s for s in self.s.subject_names(True) if s not in live and s.startswith(prefix)]
        return [s for s in self.s.subject_names(r.flag("deleted")) if s.startswith(prefix)]

    def list_versions(self, r: Request) -> list[int]:
        only = r.deleted_only()
        vs = self.s.versions(r.params[0], r.flag("deleted") or only)
        return [v.version for v in vs if v.deleted or not only]

    def register(self, r: Request) -> dict[str, Any]:
        text, typ, refs = r.schema()
        body = r.json()
        sid, version = body.get("id"), body.get("version")
        schema_id = self.s.register(
            r.params[0],
            text,
            typ,
            refs,
            schema_id=int(sid) if sid is not None else None,
            version=int(version) if version is not None else None,
            normalize=r.flag("normalize"),
        )
        # the version too, as newer Confluent registries answer (register_schema_full_response)
        return {
            "id": schema_id,
            "version": self.s.lookup(r.params[0], text, typ, False, refs).version,
        }

    # -- mode ----------------------------------------------------------------------------------
    def get_mode(self, r: Request) -> dict[str, Any]:
        return {"mode": self.s.mode(r.params[0] if r.params else None)}

    def put_mode(self, r: Request) -> dict[str, Any]:
        mode = r.json().get("mode")
        if not isinstance(mode, str):
            raise RegistryError(422, 42204, "Invalid mode: missing 'mode'")
        return {"mode": self.s.set_mode(r.params[0] if r.params else None, mode, r.flag("force"))}

    def delete_mode(self, r: Request) -> dict[str, Any]:
        return {"mode": self.s.delete_mode(r.params[0])}

    def get_version(self, r: Request) -> dict[str, Any]:
        return _registered(self.s.version(r.params[0], r.params[1], r.flag("deleted")))

    def get_version_schema(self, r: Request) -> Any:
        return json.loads(self.s.version(r.params[0], r.params[1], r.flag("deleted")).schema)

    def delete_version(self, r: Request) -> int:
        return self.s.delete_version(r.params[0], r.params[1], r.flag("permanent"))

    def lookup(self, r: Request) -> dict[str, Any]:
        text, typ, refs = r.schema()
        return _registered(self.s.lookup(r.params[0], text, typ, r.flag("deleted"), refs))

    def referenced_by(self, r: Request) -> list[int]:
        return self.s.referenced_by(r.params[0], r.params[1])

    def delete_subject(self, r: Request) -> list[int]:
        return self.s.delete_subject(r.params[0], r.flag("permanent"))

    # -- schemas by id -------------------------------------------------------------------------
    def get_schema(self, r: Request) -> dict[str, Any]:
        typ, text, refs = self.s.schema_by_id(int(r.params[0]))
        out: dict[str, Any] = {"schema": text}
        if typ != "AVRO":
            out["schemaType"] = typ
        if refs:
            out["references"] = refs
        return out

    def get_schema_raw(self, r: Request) -> Any:
        return json.loads(self.s.schema_by_id(int(r.params[0]))[1])

    def get_schema_versions(self, r: Request) -> list[dict[str, Any]]:
        usages = self.s.id_usages(int(r.params[0]), r.flag("deleted"))
        return [{"subject": v.subject, "version": v.version} for v in usages]

    def get_schema_subjects(self, r: Request) -> list[str]:
        usages = self.s.id_usages(int(r.params[0]), r.flag("deleted"))
        return list(dict.fromkeys(v.subject for v in usages))

    # -- config --------------------------------------------------------------------------------
    def get_config(self, r: Request) -> dict[str, Any]:
        if not r.params:
            return {"compatibilityLevel": self.s.level(None)}
        subject = r.params[0]
        if subject not in self.s.subject_level and not r.flag("defaultToGlobal"):
            raise RegistryError(
                404,
                40408,
                f"Subject '{subject}' does not have subject-level compatibility configured",
            )
        return {"compatibilityLevel": self.s.level(subject)}

    def put_config(self, r: Request) -> dict[str, Any]:
        body = r.json()
        level = body.get("compatibility") or body.get("compatibilityLevel")
        if not isinstance(level, str):
            raise RegistryError(422, 42203, "Invalid compatibility level: missing 'compatibility'")
        return {"compatibility": self.s.set_level(r.params[0] if r.params else None, level)}

    def delete_config(self, r: Request) -> dict[str, Any]:
        return {"compatibilityLevel": self.s.delete_level(r.params[0] if r.params else None)}

    # -- compatibility test --------------------------------------------------------------------
    def test_compat(self, r: Request) -> dict[str, Any]:
        text, typ, refs = r.schema()
        subject = r.params[0]
        against = r.params[1] if len(r.params) > 1 else None
        try:
            level, problems = self.s.incompatibilities(subject, text, typ, against, refs)
        except RegistryError as e:
            if e.code == 40401 and against is None:
                return {"is_compatible": True}
            raise
        except compat.InvalidSchema as e:
            raise RegistryError(422, 42201, str(e)) from None
        out: dict[str, Any] = {"is_compatible": not problems}
        if r.flag("verbose"):
            out["messages"] = [str(p) for p in problems]
        return out


class _HTTPHandler(BaseHTTPRequestHandler):
    api: Api
    protocol_version = "HTTP/1.1"
    server_version = "flinkpulse-registry"
    quiet = False

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, payload = self.api.dispatch(method, self.path, body)
        except Exception as e:  # a bug or a storage failure: report, keep serving
            status, payload = 500, {"error_code": 50001, "message": f"Error in the backend: {e}"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if not self.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


def make_server(state: State, host: str, port: int, quiet: bool = False) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) answering the registry API from `state`."""
    handler = type("RegistryHandler", (_HTTPHandler,), {"api": Api(state), "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
