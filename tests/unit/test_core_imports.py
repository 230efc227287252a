"""Dependencies flow one way: the core of flinkpulse imports nothing above it.

The core is the configuration, the errors, the paths, the topology and topic creation
(flinkpulse/topics.py), the schema files (flinkpulse/schemas.py), the Confluent wire format
(flinkpulse/avro.py) and the ingest tier's clock (flinkpulse/clock.py). Jobs, UDFs, producers,
the loader, the registry, the commands and the stack build on it; none of them may be imported
by the core, not even inside a function (every import statement of a module counts, wherever it
is).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CORE = {
    "flinkpulse.config",
    "flinkpulse.errors",
    "flinkpulse.paths",
    "flinkpulse.topics",
    "flinkpulse.schemas",
    "flinkpulse.avro",
    "flinkpulse.clock",
}
#: what no module of the flinkpulse package may import: the product runs without its tests
#: and benchmark scripts (the flinkpulse.bench package is the product's benchmark)
NEVER_FROM_FLINKPULSE = {"tests", "bench"}
FIRST_PARTY = {"flinkpulse", "flink_jobs", "udfs", "producers", "tests", "bench"}


def module_path(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def imported(module: str, source: str | None = None) -> set[str]:
    """Every module an import statement of `module` names (``from a import b`` names a.b too,
    since b may be a submodule)."""
    tree = ast.parse(module_path(module).read_text() if source is None else source)
    package = module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def first_party(name: str) -> bool:
    return name.split(".")[0] in FIRST_PARTY


def test_the_core_modules_exist() -> None:
    for module in CORE:
        assert module_path(module).exists(), module


def above_the_core(module: str, source: str | None = None) -> set[str]:
    out = set()
    for name in imported(module, source):
        if not first_party(name) or name in CORE or name == "flinkpulse":
            continue
        if name.rsplit(".", 1)[0] in CORE:  # ``from flinkpulse.config import Config``
            continue
        out.add(name)
    return out


@pytest.mark.parametrize("module", sorted(CORE))
def test_a_core_module_imports_only_the_core(module: str) -> None:
    above = above_the_core(module)
    assert not above, f"{module} imports above the core: {sorted(above)}"


def test_the_check_sees_function_local_and_relative_imports() -> None:
    src = (
        "import json\nfrom flinkpulse.errors import UsageError\n"
        "def f():\n    from flink_jobs import common\n    from .loader import core\n"
        "    import producers.schemas\n"
    )
    assert above_the_core("flinkpulse.fake", src) == {
        "flink_jobs",
        "flink_jobs.common",
        "flinkpulse.loader",
        "flinkpulse.loader.core",
        "producers.schemas",
    }


def test_the_flinkpulse_package_never_imports_the_tests_or_bench_scripts() -> None:
    offenders = {}
    for path in sorted((ROOT / "flinkpulse").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        bad = {
            n
            for n in imported(module, path.read_text())
            if n.split(".")[0] in NEVER_FROM_FLINKPULSE
        }
        if bad:
            offenders[module] = sorted(bad)
    assert not offenders, offenders


def _source_module(name: str) -> str | None:
    """The repository module an imported name lives in (``a.b.c`` may name a.b's c), as
    ``pkg.mod`` or ``pkg.__init__``; None when it is not a file of this repository."""
    parts = name.split(".")
    while parts:
        path = ROOT.joinpath(*parts)
        if path.with_suffix(".py").exists():
            return ".".join(parts)
        if (path / "__init__.py").exists():
            return ".".join([*parts, "__init__"])
        parts = parts[:-1]
    return None


def test_a_job_s_workers_get_every_package_it_imports_and_no_other() -> None:
    """flinkrun.SHIPPED (the -pyfs zip of every job) holds the packages the jobs and UDFs
    import, transitively and wherever the import statement is, and nothing more besides the
    data directories they read; docs/deploy.md's `-pyfs` list is the same."""
    from flinkpulse.flinkrun import SHIPPED

    start = [f"{d}.{p.stem}" for d in ("flink_jobs", "udfs") for p in (ROOT / d).glob("*.py")]
    seen: set[str] = set()
    todo = list(start)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [m for n in imported(module) if first_party(n) for m in [_source_module(n)] if m]
    packages = {m.split(".")[0] for m in seen}
    data = {d for d in SHIPPED if not (ROOT / d / "__init__.py").exists()}
    assert packages == set(SHIPPED) - data == {"flinkpulse", "flink_jobs", "udfs"}
    assert data == {"avro_schemas", "sql"}
    docs = (ROOT / "docs" / "deploy.md").read_text()
    (listed,) = [ln.split("-pyfs ", 1)[1].split()[0] for ln in docs.splitlines() if "-pyfs " in ln]
    assert set(listed.split(",")) == set(SHIPPED)
