"""The bundle directory (``deploy/superset/``): Superset's export layout, as files in git.

Only ``metadata.yaml`` and the ``databases/ datasets/ charts/ dashboards/`` trees belong to the
bundle; other files beside them (``constraints.txt``) are left alone.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from flinkpulse.errors import FlinkpulseError
from flinkpulse.paths import ROOT
from flinkpulse.superset.definitions import MASKED, safe_name

BUNDLE_DIR = ROOT / "deploy" / "superset"
SUBDIRS = ("databases", "datasets", "charts", "dashboards")
#: the top folder inside import/export zips
ZIP_ROOT = "flinkpulse_bundle"


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def read(bundle_dir: Path = BUNDLE_DIR) -> dict[str, dict[str, Any]]:
    """Relative path -> parsed YAML, for every bundle file."""
    meta = bundle_dir / "metadata.yaml"
    if not meta.exists():
        raise FlinkpulseError(f"no Superset bundle in {bundle_dir} (metadata.yaml is missing)")
    docs = {"metadata.yaml": yaml.safe_load(meta.read_text())}
    for sub in SUBDIRS:
        for f in sorted((bundle_dir / sub).rglob("*.yaml")):
            docs[str(f.relative_to(bundle_dir))] = yaml.safe_load(f.read_text())
    return docs


def write(docs: dict[str, dict[str, Any]], bundle_dir: Path = BUNDLE_DIR) -> list[str]:
    """Replace the bundle in `bundle_dir` by `docs` (stale YAML files are removed)."""
    check_no_passwords(docs)
    keep = set(docs)
    for sub in SUBDIRS:
        for f in (bundle_dir / sub).rglob("*.yaml"):
            if str(f.relative_to(bundle_dir)) not in keep:
                f.unlink()
    for rel, doc in sorted(docs.items()):
        path = bundle_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(doc))
    for sub in SUBDIRS:  # drop directories left empty
        for d in sorted((bundle_dir / sub).rglob("*"), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    return sorted(docs)


def _uri_password(uri: str) -> str | None:
    try:
        return urlsplit(uri).password
    except ValueError:
        return None


def check_no_passwords(docs: dict[str, dict[str, Any]]) -> None:
    """A bundle may only carry masked passwords."""
    for rel, doc in docs.items():
        if not rel.startswith("databases/"):
            continue
        pw = _uri_password(str(doc.get("sqlalchemy_uri", "")))
        if pw not in (None, "", MASKED) or doc.get("password") not in (None, "", MASKED):
            raise FlinkpulseError(f"{rel} contains a password — bundles must not")


def mask_passwords(docs: dict[str, dict[str, Any]]) -> None:
    """Replace any password in database URIs by the mask (export writes what Superset gives)."""
    for rel, doc in docs.items():
        if rel.startswith("databases/"):
            doc.pop("password", None)
            uri = str(doc.get("sqlalchemy_uri", ""))
            pw = _uri_password(uri)
            if pw and pw != MASKED:
                doc["sqlalchemy_uri"] = re.sub(r":[^:@/]*@", f":{MASKED}@", uri, count=1)


def to_zip(docs: dict[str, dict[str, Any]]) -> bytes:
    """The import zip: every file under one top folder, as Superset's export has it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, doc in docs.items():
            zf.writestr(f"{ZIP_ROOT}/{rel}", dump(doc))
    return buf.getvalue()


def from_zip(data: bytes) -> dict[str, dict[str, Any]]:
    """Parse an export zip (any top folder name) into relative path -> document."""
    docs: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            if not name.endswith((".yaml", ".yml")):
                continue
            rel = name.split("/", 1)[1] if "/" in name else name
            docs[rel] = yaml.safe_load(zf.read(name))
    return docs


def canonical_names(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stable file names (Superset's export names carry instance-specific ids)."""
    out: dict[str, dict[str, Any]] = {}
    db_names = {
        str(d["uuid"]): safe_name(str(d["database_name"]))
        for rel, d in docs.items()
        if rel.startswith("databases/")
    }
    for rel, d in docs.items():
        if rel == "metadata.yaml":
            out[rel] = d
        elif rel.startswith("databases/"):
            out[f"databases/{safe_name(str(d['database_name']))}.yaml"] = d
        elif rel.startswith("datasets/"):
            db = db_names.get(str(d.get("database_uuid")), "database")
            out[f"datasets/{db}/{d['table_name']}.yaml"] = d
        elif rel.startswith("charts/"):
            out[f"charts/{safe_name(str(d['slice_name']))}_{str(d['uuid'])[:8]}.yaml"] = d
        elif rel.startswith("dashboards/"):
            slug = d.get("slug") or safe_name(str(d["dashboard_title"]))
            out[f"dashboards/{str(slug).replace('-', '_')}.yaml"] = d
    return out
