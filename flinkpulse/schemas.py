"""The Avro schemas under ``avro_schemas/``: one directory per record type, one file per version.

Layout: ``avro_schemas/<namespace>.<Name>/v<N>.avsc`` (e.g.
``avro_schemas/flinkpulse.gaming.PlayerEvent/v2.avsc``). Every version ever released is kept;
the highest ``N`` is the one producers write and the registry should hold as latest. Each file is
a complete, self-contained schema that ``fastavro.schema.load_schema`` (or ``parse_schema`` on
the JSON) and the ``avro`` package accept as-is.

Part of the core: which record a topic carries and its key come from the topology
(flinkpulse/topics.py); producers, jobs, the ingest bridges and `flinkpulse schemas` read the
schema files through this module.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from flinkpulse.paths import ROOT
from flinkpulse.topics import TOPOLOGY

#: the directory holding the schema history (the repository's ``avro_schemas/``)
SCHEMA_DIR = ROOT / "avro_schemas"

#: logical topic -> full record name written to it (topics whose records have a fixed schema)
TOPIC_RECORDS: dict[str, str] = {t.name: t.record for t in TOPOLOGY if t.record}

#: logical topic -> field whose value is the Kafka key (of the topics in TOPIC_RECORDS; config.rules:
#: "rule/scope", the composite flinkpulse.rules.rule_key)
TOPIC_KEYS: dict[str, str] = {t.name: t.key for t in TOPOLOGY if t.record and t.key}

_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


def subject_for(topic: str) -> str:
    """The registry subject of a topic's values (Confluent TopicNameStrategy)."""
    return f"{topic}-value"


def record_names(schema_dir: Path | None = None) -> list[str]:
    """Full names of every record type that has a schema history."""
    d = schema_dir or SCHEMA_DIR
    return sorted(p.name for p in d.iterdir() if p.is_dir() and any(p.glob("v*.avsc")))


def resolve_name(record_name: str, schema_dir: Path | None = None) -> str:
    """Accept a full name (``flinkpulse.gaming.PlayerEvent``), a short name or a topic."""
    if record_name in TOPIC_RECORDS:
        return TOPIC_RECORDS[record_name]
    names = record_names(schema_dir)
    if record_name in names:
        return record_name
    short = [n for n in names if n.rsplit(".", 1)[-1] == record_name]
    if len(short) == 1:
        return short[0]
    raise KeyError(f"no schema history for {record_name!r} in {schema_dir or SCHEMA_DIR}")


def schema_files(record_name: str, schema_dir: Path | None = None) -> dict[int, Path]:
    """version -> file, oldest first."""
    d = (schema_dir or SCHEMA_DIR) / resolve_name(record_name, schema_dir)
    out: dict[int, Path] = {}
    for p in d.iterdir():
        m = _VERSION_FILE.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def schema_versions(record_name: str, schema_dir: Path | None = None) -> dict[int, dict[str, Any]]:
    """version -> parsed JSON schema (a plain dict), oldest first."""
    return {
        v: copy.deepcopy(_load(str(p))) for v, p in schema_files(record_name, schema_dir).items()
    }


def schema(record_name: str, version: int, schema_dir: Path | None = None) -> dict[str, Any]:
    """One version of a record's schema, as a plain JSON dict."""
    files = schema_files(record_name, schema_dir)
    if version not in files:
        raise KeyError(f"{record_name} has no version {version} (have {sorted(files)})")
    return copy.deepcopy(_load(str(files[version])))


def latest_version(record_name: str, schema_dir: Path | None = None) -> int:
    return max(schema_files(record_name, schema_dir))


def latest_schema(record_name: str, schema_dir: Path | None = None) -> dict[str, Any]:
    """The newest version of a record's schema (what producers write), as a plain JSON dict."""
    return schema(record_name, latest_version(record_name, schema_dir), schema_dir)


def schema_str(schema_dict: dict[str, Any]) -> str:
    """Compact JSON text of a schema, as registered in the schema registry."""
    return json.dumps(schema_dict, separators=(",", ":"))


@cache
def _load(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data
