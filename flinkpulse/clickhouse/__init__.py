"""Embedded ClickHouse: the real ClickHouse engine (chDB, in-process) behind the ClickHouse HTTP
interface, served by flinkpulse (`flinkpulse clickhouse serve`, stack component `clickhouse`).

Clients use it exactly as a ClickHouse server; pointing ``CLICKHOUSE_URL`` at a real server
changes nothing else. :func:`credentials` gives the loader and Superset their user/password.
"""

from __future__ import annotations

from pathlib import Path

from flinkpulse.config import Config

ROLES = ("writer", "reader")


def secrets_dir(cfg: Config) -> Path:
    return cfg.stack.state_path() / "secrets"


def password_file(cfg: Config, role: str) -> Path:
    return secrets_dir(cfg) / f"clickhouse-{role}.password"


def credentials(cfg: Config, role: str = "writer") -> tuple[str, str]:
    """(user, password) for `role` ("writer": the loader; "reader": Superset, read-only).

    Explicit ``clickhouse.user``/``clickhouse.password`` (or CLICKHOUSE_USER/_PASSWORD) win —
    that is how a real ClickHouse server is used. Otherwise the embedded server's generated
    user for the role, if the stack created one; else ``default`` without a password (which
    the embedded server accepts from loopback only, like ClickHouse's own default).
    """
    if role not in ROLES:
        raise ValueError(f"unknown ClickHouse role {role!r} (known: {', '.join(ROLES)})")
    if cfg.clickhouse.user:
        return cfg.clickhouse.user, cfg.clickhouse.password
    pf = password_file(cfg, role)
    if pf.exists():
        return role, pf.read_text().strip()
    return "default", ""
