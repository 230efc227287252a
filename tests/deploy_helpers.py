"""Helpers shared by the deployment tests (tests/unit/test_deploy_*.py)."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"


@cache
def kustomize(overlay: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of one overlay of deploy/k8s (skips when kubectl is not installed)."""
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl (with built-in kustomize) is not installed")
    out = subprocess.run(
        [exe, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)
