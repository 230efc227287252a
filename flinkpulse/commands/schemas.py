"""`flinkpulse schemas check|register`: keep `avro_schemas/` and the schema registry in step.

``check`` compares the latest version of every record in the working tree with
  * the versions before it in the working tree (the history must evolve compatibly),
  * the registry's versions of its subject ``<topic>-value`` under the subject's compatibility
    level (latest only, or all for ``*_TRANSITIVE``), and
  * with ``--against git:REF``, the latest version of the record at that git revision,
and exits 1 naming subject, field and rule for any incompatible change.
``register`` registers each topic's latest schema (``--all-versions``: the whole history, in
order) under its subject.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

from flinkpulse.avro import Registry, RegistryError
from flinkpulse.config import Config
from flinkpulse.errors import UsageError
from flinkpulse.paths import ROOT


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("schemas", help="check and register the Avro schemas")
    ss = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    ss.required = True
    ck = ss.add_parser("check", help="compatibility of avro_schemas/ with the registry / git")
    ck.add_argument("--against", metavar="git:REF", help="also compare with a git revision")
    ck.add_argument(
        "--no-registry", action="store_true", help="skip the registry (history and git only)"
    )
    ck.add_argument(
        "--level",
        help="compatibility level for the git/history comparisons (default: the subject's "
        "level in the registry, else BACKWARD)",
    )
    ck.add_argument("--schema-dir", type=Path, help="default: the repository's avro_schemas/")
    ck.set_defaults(func=_check)
    rg = ss.add_parser("register", help="register the latest schemas under <topic>-value")
    rg.add_argument("--all-versions", action="store_true", help="register the history in order")
    rg.add_argument("--schema-dir", type=Path)
    rg.set_defaults(func=_register)


def _git_schemas(ref: str, schema_dir: Path) -> dict[str, tuple[int, str]]:
    """record name -> (latest version, schema text) at git revision `ref`."""
    try:
        rel = schema_dir.resolve().relative_to(ROOT)
    except ValueError:
        raise UsageError(f"--against needs the schema dir inside the repository ({ROOT})") from None
    ls = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", ref, "--", str(rel)],
        capture_output=True,
        text=True,
    )
    if ls.returncode != 0:
        raise UsageError(f"--against git:{ref}: {ls.stderr.strip() or 'unknown revision'}")
    latest: dict[str, tuple[int, str]] = {}
    for path in ls.stdout.split():
        parts = Path(path).parts
        name, file = parts[-2], parts[-1]
        if not (file.startswith("v") and file.endswith(".avsc") and file[1:-5].isdigit()):
            continue
        n = int(file[1:-5])
        if name not in latest or n > latest[name][0]:
            text = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{ref}:{path}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            latest[name] = (n, text)
    return latest


# -- check ----------------------------------------------------------------------------------------
def _check(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import schemas as sc
    from flinkpulse.registry import compat

    schema_dir = args.schema_dir or sc.SCHEMA_DIR
    ref = None
    if args.against:
        if not args.against.startswith("git:") or len(args.against) <= 4:
            raise UsageError("--against expects git:REF, e.g. --against git:HEAD~1")
        ref = args.against[4:]
    if args.level and args.level.upper() not in compat.LEVELS:
        raise UsageError(f"--level must be one of {', '.join(compat.LEVELS)}")
    reg = None if args.no_registry else Registry(cfg.registry.url)
    at_ref = _git_schemas(ref, schema_dir) if ref else {}
    by_record: dict[str, list[str]] = {}
    for topic, rec in sc.TOPIC_RECORDS.items():
        by_record.setdefault(rec, []).append(topic)
    failures = 0
    for rec in sc.record_names(schema_dir):
        history = sc.schema_versions(rec, schema_dir)
        latest_n = max(history)
        try:
            new = compat.parse(json.dumps(history[latest_n]))
        except compat.InvalidSchema as e:
            print(f"FAIL {rec} v{latest_n}: {e}")
            failures += 1
            continue
        subjects = [sc.subject_for(cfg.kafka.topic(t)) for t in by_record.get(rec, [])]
        subject_label = ", ".join(subjects) or f"{rec} (no topic)"
        problems: list[tuple[str, Any]] = []
        level = (args.level or "").upper()
        # 1. the working tree's own history
        older = [(n, compat.parse(json.dumps(s))) for n, s in history.items() if n < latest_n]
        hist_level = level or "BACKWARD"
        for p in compat.check(new, older, hist_level):
            problems.append((f"avro_schemas v{p.version}", p))
        # 2. the registry
        for subject in subjects if reg else []:
            assert reg is not None
            registered = [(int(v["version"]), v["schema"]) for v in reg.versions(subject)]
            if not registered:
                print(f"ok   {subject}: {rec} v{latest_n} (not registered yet)")
                continue
            lvl = reg.level(subject)
            prev = [(n, compat.parse(text)) for n, text in registered]
            found = compat.check(new, prev, lvl)
            for p in found:
                problems.append((f"registry {subject} v{p.version} ({lvl})", p))
            if not found:
                print(f"ok   {subject}: {rec} v{latest_n} vs registry v{prev[-1][0]} ({lvl})")
            if not level:
                level = lvl
        # 3. a git revision
        if ref:
            if rec not in at_ref:
                print(f"ok   {subject_label}: {rec} is new since {ref}")
            else:
                n_ref, text = at_ref[rec]
                lvl = level or "BACKWARD"
                for p in compat.check(new, [(n_ref, compat.parse(text))], lvl):
                    problems.append((f"git {ref} v{n_ref} ({lvl})", p))
        if problems:
            failures += 1
            for where, p in problems:
                field = f"field '{p.field}'" if p.field else "record"
                print(
                    f"FAIL {subject_label}: {rec} v{latest_n} vs {where}: {field} breaks "
                    f"{p.direction} ({p.error_type}): {p.message}"
                )
        elif not reg:
            print(f"ok   {subject_label}: {rec} v{latest_n}")
    if failures:
        print(f"{failures} record type(s) with incompatible changes")
        return 1
    return 0


# -- register -------------------------------------------------------------------------------------
def _register(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse import schemas as sc

    client = Registry(cfg.registry.url)
    failed = 0
    for topic, rec in sc.TOPIC_RECORDS.items():
        subject = sc.subject_for(cfg.kafka.topic(topic))
        history = sc.schema_versions(rec, args.schema_dir)
        versions = sorted(history) if args.all_versions else [max(history)]
        for n in versions:
            text = sc.schema_str(history[n])
            try:  # an outage raises RegistryUnavailable: "not reachable", exit 1
                sid = client.register(subject, text)
                reg = client.lookup(subject, text)
            except RegistryError as e:
                print(f"FAIL {subject}: {rec} v{n}: {e.message}")
                failed += 1
                break
            print(f"ok   {subject}: {rec} v{n} -> id {sid}, subject version {reg['version']}")
    return 1 if failed else 0
