"""`flinkpulse dashboards import|export|generate` — Superset dashboards as code.

* import: load ``deploy/superset/`` into Superset (overwrite by UUID: re-import updates, never
  duplicates); the ClickHouse connection is the read-only user, its password supplied here.
* export: write every dashboard (with its charts, datasets, database) back into the bundle,
  passwords masked, so edits made in the UI can be committed.
* generate: rewrite the bundle from :mod:`flinkpulse.superset.definitions`.

Superset is found at ``$SUPERSET_URL`` (default: the local stack's), logging in as
``$SUPERSET_USERNAME`` / ``$SUPERSET_PASSWORD`` (default: the stack's generated admin).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from flinkpulse.clickhouse import credentials
from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.superset import bundle, definitions
from flinkpulse.superset.client import SupersetClient


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("dashboards", help="import/export the Superset dashboards (deploy/superset)")
    ss = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    ss.required = True
    imp = ss.add_parser("import", help="import the bundle into Superset (idempotent)")
    imp.set_defaults(func=_import)
    exp = ss.add_parser("export", help="write Superset's dashboards back into the bundle")
    exp.set_defaults(func=_export)
    gen = ss.add_parser("generate", help="rewrite the bundle from the Python definitions")
    gen.set_defaults(func=_generate)
    for q in (imp, exp, gen):
        q.add_argument("--dir", type=Path, default=bundle.BUNDLE_DIR, help="bundle directory")


def superset_url(cfg: Config) -> str:
    return os.environ.get("SUPERSET_URL") or f"http://{cfg.stack.host}:{cfg.stack.superset_port}"


def superset_login(cfg: Config) -> tuple[str, str]:
    """(user, password): $SUPERSET_USERNAME/$SUPERSET_PASSWORD, else the stack's admin."""
    from flinkpulse.stack.superset import ADMIN_USER, Superset

    user = os.environ.get("SUPERSET_USERNAME") or ADMIN_USER
    password = os.environ.get("SUPERSET_PASSWORD")
    if password is None:
        pf = Superset(cfg).password_file
        if not pf.exists():
            raise FlinkpulseError(
                f"no Superset password: set SUPERSET_PASSWORD or start the stack ({pf} missing)"
            )
        password = pf.read_text().strip()
    return user, password


def client(cfg: Config) -> SupersetClient:
    user, password = superset_login(cfg)
    return SupersetClient(superset_url(cfg), user, password)


def clickhouse_uri(cfg: Config) -> tuple[str, str]:
    """(masked sqlalchemy URI, password) of the read-only ClickHouse user for Superset."""
    user, password = credentials(cfg, "reader")
    u = urlsplit(cfg.clickhouse.url)
    host = u.hostname or "127.0.0.1"
    port = u.port or (8443 if u.scheme == "https" else 8123)
    auth = quote(user, safe="") + (f":{definitions.MASKED}" if password else "")
    uri = f"clickhousedb://{auth}@{host}:{port}/{cfg.clickhouse.database}"
    if u.scheme == "https":
        uri += "?secure=true"
    return uri, password


def prepare_import(cfg: Config, docs: dict[str, dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    """The zip to import (URI pointed at the configured ClickHouse) and its passwords map."""
    bundle.check_no_passwords(docs)
    uri, password = clickhouse_uri(cfg)
    docs = {rel: dict(doc) for rel, doc in docs.items()}
    # the assets importer overwrites every object type (the dashboard importer only dashboards)
    docs["metadata.yaml"] = {**docs["metadata.yaml"], "type": "assets"}
    passwords: dict[str, str] = {}
    for rel, doc in docs.items():
        if rel.startswith("databases/"):
            doc["sqlalchemy_uri"] = uri
            if password:
                passwords[rel] = password
    return bundle.to_zip(docs), passwords


def import_bundle(cfg: Config, bundle_dir: Path = bundle.BUNDLE_DIR) -> dict[str, int]:
    """Import the bundle; returns how many objects of each kind it holds."""
    docs = bundle.read(bundle_dir)
    data, passwords = prepare_import(cfg, docs)
    client(cfg).import_assets(data, passwords)
    kinds = ("databases", "datasets", "charts", "dashboards")
    return {k: sum(1 for rel in docs if rel.startswith(k + "/")) for k in kinds}


def export_bundle(cfg: Config, bundle_dir: Path = bundle.BUNDLE_DIR) -> list[str]:
    """Export every dashboard into `bundle_dir` (stable file names, passwords masked)."""
    c = client(cfg)
    ids = [d["id"] for d in c.objects("dashboard", ["id"])]
    if not ids:
        raise FlinkpulseError(f"Superset at {c.url} has no dashboards to export")
    docs = bundle.from_zip(c.export_dashboards(ids))
    bundle.mask_passwords(docs)
    return bundle.write(bundle.canonical_names(docs), bundle_dir)


def _import(cfg: Config, args: argparse.Namespace) -> int:
    counts = import_bundle(cfg, args.dir)
    what = ", ".join(f"{n} {k}" for k, n in counts.items())
    print(f"imported {what} from {args.dir} into {superset_url(cfg)}")
    return 0


def _export(cfg: Config, args: argparse.Namespace) -> int:
    files = export_bundle(cfg, args.dir)
    print(f"exported {len(files)} files from {superset_url(cfg)} into {args.dir}")
    return 0


def _generate(cfg: Config, args: argparse.Namespace) -> int:
    files = bundle.write(definitions.bundle_docs(), args.dir)
    print(f"wrote {len(files)} files into {args.dir}")
    return 0
