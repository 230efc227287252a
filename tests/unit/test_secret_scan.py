"""Issue 8: no secrets and no default passwords in the repository.

Scans every file git would commit (tracked, plus untracked files that are not ignored): private
keys, cloud/API tokens, well-known default credential pairs (the user admin with password
admin, ...) everywhere; password/secret/token literals in code and config outside tests/ (tests
use throwaway values on purpose), unquoted ones in config files. Placeholders (`<hex>`, `${VAR}`, `{value}`) are not secrets. A line may opt out
with a `secret-scan: allow` comment saying why.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from flinkpulse.paths import ROOT

pytestmark = pytest.mark.unit

EVERYWHERE = {
    "private key": re.compile(
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
    ),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key": re.compile(r"(?i)aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+]{40}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "default credentials": re.compile(
        r"(?i)\b(?:admin|root|guest)[:/](?:admin|root|guest|password|changeme|123456)\b"
    ),
    "default password value": re.compile(
        r"(?i)\b(?:password|passwd)[\"']?[ \t]*[:=][ \t]*[\"'](?:admin|password|changeme|secret|"
        r"123456|superset|root|guest)[\"']"
    ),
}
CONFIG_SUFFIXES = {".yaml", ".yml", ".env", ".properties", ".toml", ".ini", ".conf", ".cfg"}
IN_CONFIG = {
    "unquoted password in config": re.compile(
        r"(?im)^[ \t]*[\w.-]*password[\w.-]*[ \t]*[:=][ \t]*([^\s#\"'{$<|>][^\s#]{3,})[ \t]*$"
    ),
}
OUTSIDE_TESTS = {
    "password/secret literal": re.compile(
        r"""(?i)\b[\w.-]*(?:password|passwd|pwd|secret_key|secret|api_key|token)[\w.-]*["']?"""
        r"""[ \t]*[:=][ \t]*["']([^"'\s]{4,})["']"""
    ),
}
PLACEHOLDER = re.compile(r"^(?:<[^>]*>|\$\{[^}]*\}|\{[^}]*\}|\*+|x+|\.\.\.)$")
BINARY_SUFFIXES = {".png", ".jpg", ".gz", ".zip", ".jar", ".ico", ".woff", ".woff2", ".mmdb"}


def repo_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [ROOT / f for f in out.split("\0") if f and Path(f).suffix not in BINARY_SUFFIXES]


def findings(path: Path, rel: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    rules = dict(EVERYWHERE)
    if not rel.startswith("tests/"):
        rules.update(OUTSIDE_TESTS)
    if path.suffix in CONFIG_SUFFIXES or path.name.startswith(".env"):
        rules.update(IN_CONFIG)
    lines = text.splitlines()
    out = []
    for name, rx in rules.items():
        for m in rx.finditer(text):
            n = text.count("\n", 0, m.start())
            line = lines[n] if n < len(lines) else ""
            if "secret-scan: allow" in line:
                continue
            if m.groups() and PLACEHOLDER.match(m.group(1) or ""):
                continue
            out.append(f"{rel}:{n + 1}: {name}: {line.strip()[:120]}")
    return out


def test_rules_catch_what_they_should() -> None:
    """The scanner itself: planted examples are found, placeholders are not."""
    bad = {
        "k.pem": "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIE\n",
        "a.py": 'aws = "AKIA' + "ABCDEFGHIJKLMNOP" + '"\n',
        "c.toml": 'password = "hunter22"\n',
        "d.yaml": "users:\n  password: s3cr3tvalue\n",
        "e.md": "log in with admin" + ":admin\n",
        "f.env": "SUPERSET_PASSWORD=" + "admin\n",
    }
    ok = {
        "g.yaml": "password_sha256_hex: \"<hex>\"\nsasl_password: ''\n",
        "h.py": 'password = "${KAFKA_PASSWORD}"\n',
    }
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for name, text in {**bad, **ok}.items():
            (Path(d) / name).write_text(text)
        found = {name: findings(Path(d) / name, name) for name in {**bad, **ok}}
    assert all(found[n] for n in bad), found
    assert not any(found[n] for n in ok), found


def test_repository_has_no_secrets_or_default_passwords() -> None:
    files = repo_files()
    assert len(files) > 50
    problems = [f for p in files for f in findings(p, str(p.relative_to(ROOT)))]
    assert not problems, "possible secrets:\n" + "\n".join(problems)
