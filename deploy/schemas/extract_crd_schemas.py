"""Turn CustomResourceDefinition YAML files into strict JSON Schema files (one per kind/version).

Used to (re)vendor the operator CRD schemas under deploy/schemas/crds/ when an operator version
changes; the tests then validate our manifests against them without a cluster:

    python deploy/schemas/extract_crd_schemas.py OUT_DIR CRD.yaml [CRD.yaml ...]

Conversions (what kubeconform's openapi2jsonschema also does): ``x-kubernetes-int-or-string``
becomes ``integer | string``; objects that list ``properties`` and neither allow extra keys nor
preserve unknown fields get ``additionalProperties: false`` so a typo in a manifest fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strict(node: Any) -> Any:
    """Recursively convert an openAPIV3Schema node to a strict JSON Schema node."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.pop("format", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def extract(crd_file: Path, out_dir: Path) -> list[Path]:
    """Write one ``<kind>-<group>-<version>.json`` per served version of each CRD in the file."""
    written = []
    for doc in yaml.safe_load_all(crd_file.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        kind, group = spec["names"]["kind"], spec["group"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = strict(version["schema"]["openAPIV3Schema"])
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            schema["title"] = f"{kind} {group}/{version['name']}"
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
            props["kind"] = {"type": "string", "enum": [kind]}
            props.setdefault("metadata", {"type": "object"})  # some CRDs leave it out
            path = out_dir / f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"
            path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for f in argv[1:]:
        for p in extract(Path(f), out):
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
