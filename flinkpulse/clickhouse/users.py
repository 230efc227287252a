"""Users, profiles and authentication, after ClickHouse's own users.yaml.

The file (YAML) looks like::

    profiles:
      default: {}
      readonly: {readonly: 2}      # 1: read only; 2: read only, may change other settings
    users:
      writer:
        password_sha256_hex: "<hex>"
        profile: default
      reader:
        password_sha256_hex: "<hex>"
        profile: readonly
        networks: ["127.0.0.1/32", "::1/128"]   # optional; default: anywhere

Without a ``default`` entry, the user ``default`` exists without a password and is accepted
from loopback addresses only (ClickHouse's shipped default).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flinkpulse.errors import FlinkpulseError

LOOPBACK = ["127.0.0.0/8", "::1/128"]


@dataclass
class User:
    name: str
    password_sha256_hex: str = ""  # "" = no password
    settings: dict[str, str] = field(default_factory=dict)
    networks: list[str] = field(default_factory=list)  # [] = anywhere
    storage: str = "users_xml"  # the users file; "local_directory": created by CREATE USER

    @property
    def readonly(self) -> int:
        try:
            return int(self.settings.get("readonly", "0"))
        except ValueError:
            return 1

    def allowed_from(self, addr: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in ipaddress.ip_network(n, strict=False) for n in self.networks)

    def check_password(self, password: str) -> bool:
        if not self.password_sha256_hex:
            return password == ""
        digest = hashlib.sha256(password.encode()).hexdigest()
        return hmac.compare_digest(digest, self.password_sha256_hex.lower())


class AuthError(Exception):
    """Authentication failed; the message is ClickHouse's (code 516)."""

    code = 516

    def __init__(self, user: str) -> None:
        self.user = user
        super().__init__(
            f"{user}: Authentication failed: password is incorrect, or there is no user with "
            "such name."
        )


class Users:
    """The user table; `authenticate` is what the HTTP handler calls for every request."""

    def __init__(self, users: dict[str, User]) -> None:
        self.users = users
        #: users created with CREATE USER (kept by access.AccessControl); the file's win
        self.extra: dict[str, User] = {}
        if "default" not in self.users:
            self.users["default"] = User("default", networks=list(LOOPBACK))

    @classmethod
    def load(cls, path: str | Path | None) -> Users:
        if not path:
            return cls({})
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except FileNotFoundError:
            raise FlinkpulseError(f"users file {p} does not exist") from None
        except yaml.YAMLError as e:
            raise FlinkpulseError(f"users file {p} is not valid YAML: {e}") from None
        return cls.from_dict(data, str(p))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "users") -> Users:
        profiles = {"default": {}, **(data.get("profiles") or {})}
        users: dict[str, User] = {}
        for name, spec in (data.get("users") or {}).items():
            spec = spec or {}
            profile = spec.get("profile", "default")
            if profile not in profiles:
                raise FlinkpulseError(f"{where}: user {name!r} has unknown profile {profile!r}")
            pw = str(spec.get("password_sha256_hex", ""))
            if spec.get("password"):
                raise FlinkpulseError(
                    f"{where}: user {name!r} has a plain-text password; store "
                    "password_sha256_hex instead"
                )
            nets = spec.get("networks") or []
            if isinstance(nets, str):
                nets = [nets]
            for n in nets:
                try:
                    ipaddress.ip_network(n, strict=False)
                except ValueError:
                    raise FlinkpulseError(f"{where}: user {name!r}: bad network {n!r}") from None
            settings = {str(k): str(v) for k, v in (profiles[profile] or {}).items()}
            users[str(name)] = User(str(name), pw, settings, [str(n) for n in nets])
        return cls(users)

    def authenticate(self, name: str, password: str, addr: str) -> User:
        user = self.users.get(name or "default") or self.extra.get(name)
        if user is None or not user.allowed_from(addr) or not user.check_password(password):
            raise AuthError(name or "default")
        return user


def sha256_hex(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()
