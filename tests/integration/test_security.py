"""Issue 8: who may do what on the running stack, and what it listens on.

- ClickHouse: the generated `reader` cannot write, create, or lift readonly; `writer` can;
  a wrong password is refused (the private-server cases are in test_clickhouse_server.py).
- Superset: no default credentials (admin with password admin refused), a generated, non-default SECRET_KEY.
- Every process of the running stack listens on 127.0.0.1 only (from /proc/net/tcp*), and
  `stack up` refuses a non-loopback stack.host without credentials, in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from flinkpulse import stack
from flinkpulse.clickhouse.migrate import client
from flinkpulse.config import Config
from flinkpulse.paths import ROOT
from flinkpulse.stack.flink import Flink
from tests.pipeline_helpers import deployment, wait

pytestmark = pytest.mark.integration

#: SECRET_KEYs Superset ships or documents as placeholders
DEFAULT_SECRET_KEYS = {
    "\2\1thisismyscretkey\1\2\\e\\y\\y\\h",
    "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET",
    "YOUR_OWN_RANDOM_GENERATED_SECRET_KEY",
    "",
}


def _code(fn: Callable[[], Any]) -> int:
    try:
        fn()
    except Exception as e:
        return int(getattr(e, "code", 0) or _parse_code(str(e)))
    return 0


def _parse_code(msg: str) -> int:
    import re

    m = re.search(r"Code: (\d+)", msg) or re.search(r"\b(\d{3})\b", msg)
    return int(m.group(1)) if m else -1


def test_clickhouse_reader_is_read_only_writer_can_write(
    ensure_stack: Callable[..., Config], reliability: Any
) -> None:
    cfg = ensure_stack("clickhouse")
    db = f"sec{uuid.uuid4().hex[:6]}"
    w = client(cfg, "writer")
    r = client(cfg, "reader")
    try:
        w.command(f"CREATE DATABASE `{db}`")
        w.command(f"CREATE TABLE `{db}`.t (x Int32) ENGINE = MergeTree ORDER BY x")
        w.command(f"INSERT INTO `{db}`.t VALUES (1)")
        assert r.command(f"SELECT count() FROM `{db}`.t") == 1
        codes = {
            "INSERT": _code(lambda: r.command(f"INSERT INTO `{db}`.t VALUES (2)")),
            "CREATE TABLE": _code(
                lambda: r.command(f"CREATE TABLE `{db}`.u (x Int32) ENGINE = Memory")
            ),
            "DROP TABLE": _code(lambda: r.command(f"DROP TABLE `{db}`.t")),
            "SET readonly = 0": _code(lambda: r.command("SET readonly = 0")),
        }
        assert codes == dict.fromkeys(codes, 164), codes  # READONLY
        assert w.command(f"SELECT count() FROM `{db}`.t") == 1
        bad = requests.get(
            cfg.clickhouse.url,
            params={"query": "SELECT 1", "user": "reader", "password": "wrong"},
            timeout=10,
        )
        assert bad.status_code in (401, 403, 516) or "516" in bad.text, bad.text
    finally:
        w.command(f"DROP DATABASE IF EXISTS `{db}`")
        w.close()
        r.close()
    reliability(
        "security",
        "ClickHouse reader writes / lifts readonly",
        "refused (code 164 READONLY); wrong password refused",
        {k: f"code {v}" for k, v in codes.items()},
    )


def test_superset_no_default_credentials_and_own_secret_key(
    ensure_stack: Callable[..., Config], reliability: Any
) -> None:
    base = ensure_stack()
    comp = stack.component(base, "superset")
    if not comp.running():
        pytest.skip("superset is not running (make setup-superset; flinkpulse stack up superset)")
    url = f"http://{base.stack.host}:{base.stack.superset_port}"
    login = f"{url}/api/v1/security/login"
    tried = {}
    for user, pw in [("admin", "admin"), ("admin", "password"), ("admin", ""), ("guest", "guest")]:
        r = requests.post(
            login, json={"username": user, "password": pw, "provider": "db"}, timeout=30
        )
        tried[f"{user} with {pw!r}"] = r.status_code
    assert all(code in (400, 401, 422) for code in tried.values()), tried
    pw = comp.password_file.read_text().strip()  # type: ignore[attr-defined]
    ok = requests.post(
        login, json={"username": "admin", "password": pw, "provider": "db"}, timeout=30
    )
    assert ok.status_code == 200 and "access_token" in ok.json()
    key = comp.secret_key_file.read_text().strip()  # type: ignore[attr-defined]
    assert key not in DEFAULT_SECRET_KEYS and len(key) >= 32
    for f in (comp.password_file, comp.secret_key_file):  # type: ignore[attr-defined]
        assert oct(f.stat().st_mode & 0o777) == "0o600", f
    reliability(
        "security",
        "Superset default credentials",
        "refused; SECRET_KEY generated (>= 32 chars, 0600)",
        {**tried, "generated password": ok.status_code, "SECRET_KEY length": len(key)},
    )


def _listening() -> dict[str, str]:
    """socket inode -> 'addr:port' of every TCP socket in LISTEN state."""
    out: dict[str, str] = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] != "0A":
                continue
            addr, port = parts[1].rsplit(":", 1)
            out[parts[9]] = f"{_addr(addr, v6)}:{int(port, 16)}"
    return out


def _addr(hexaddr: str, v6: bool) -> str:
    import ipaddress

    raw = bytes.fromhex(hexaddr)
    if not v6:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc prints IPv6 as four little-endian 32-bit words
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    a = ipaddress.IPv6Address(words)
    return str(a.ipv4_mapped or a)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = set(), [pid]
    while todo:
        cur = todo.pop()
        out.add(cur)
        todo += children.get(cur, [])
    return out


def test_every_stack_process_listens_on_loopback_only(
    ensure_stack: Callable[..., Config], reliability: Any
) -> None:
    base = ensure_stack("kafka", "registry", "clickhouse", "flink")
    flink = stack.component(base, "flink")
    assert isinstance(flink, Flink)
    process_mode = base.flink.python_execution_mode == "process"
    # a job with Python UDFs runs, so its workers and their Beam endpoints exist to be measured
    with deployment(base, f"sec{uuid.uuid4().hex[:6]}", ["security_alerts"]):
        if process_mode:
            wait(lambda: bool(flink.python_workers()), 120, "the job's Python UDF workers")
        listening = _listening()
        found: dict[str, list[str]] = {}
        for name in base.stack.components:
            comp = stack.component(base, name)
            for pid in comp.pids().values():
                found.setdefault(name, []).extend(_owned(pid, listening))
        workers = list(flink.python_workers())
        worker_ports = [a for pid in workers for a in _owned(pid, listening, False)]
        tm_jvms = [p for name, p in flink.pids().items() if name.startswith("flink-taskmanager")]
        tm_ports = {int(a.rsplit(":", 1)[1]) for p in tm_jvms for a in _owned(p, listening, False)}
    assert {"kafka", "registry", "clickhouse", "flink"} <= set(found), found
    assert worker_ports == [], worker_ports  # the Python workers listen on nothing
    exposed = {
        n: [a for a in addrs if not a.startswith(("127.", "::1"))] for n, addrs in found.items()
    }
    # The one exception, documented (flinkpulse/stack/flink.py): in python.execution-mode=process
    # each TaskManager JVM serves Beam's control/data/state/logging/provision gRPC endpoints of
    # its Python workers on ephemeral ports of the wildcard address. Beam builds them with
    # ServerFactory.createDefault(), whose server is NettyServerBuilder.forPort(port) (it asks
    # for the loopback address, then binds only the port); ProcessEnvironmentFactory.Provider
    # offers no other factory and PyFlink no option. The Python workers themselves listen on
    # nothing. So: only ephemeral ports, only of TaskManager JVMs, never a service port.
    fixed = {
        base.stack.kafka_port, base.stack.registry_port, base.stack.clickhouse_port,
        base.stack.flink_rest_port, base.stack.flink_rpc_port, base.stack.superset_port,
    }  # fmt: skip
    flink_wild = exposed.pop("flink", [])
    assert not any(exposed.values()), exposed
    ports = {int(a.rsplit(":", 1)[1]) for a in flink_wild}
    lo, _hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert not ports & fixed, ports & fixed
    assert all(p >= lo for p in ports), sorted(ports)
    assert bool(ports) == process_mode, ports  # thread mode: no Beam endpoint at all
    assert ports <= tm_ports, sorted(ports - tm_ports)
    reliability(
        "security",
        "services bind 127.0.0.1",
        "every service port on loopback; one documented exception: in process mode each "
        "TaskManager JVM serves its Python workers' Beam gRPC endpoints on ephemeral ports of "
        "the wildcard address (Beam's ServerFactory binds NettyServerBuilder.forPort; no Beam "
        "or PyFlink option changes it): firewall them, e.g. `iptables -A INPUT ! -i lo -p tcp "
        "--dport 32768:60999 -m conntrack --ctstate NEW -j REJECT`, or use thread mode",
        {n: len(set(a)) for n, a in sorted(found.items())}
        | {
            "non-loopback service ports": 0,
            "Beam ports on wildcard (TaskManager JVMs)": len(ports),
            "Python workers": len(workers),
            "ports of Python workers": 0,
            "TaskManagers": len(tm_jvms),
        },
    )


def _owned(pid: int, listening: dict[str, str], descendants: bool = True) -> list[str]:
    """Listening addresses of `pid` (and of its descendants)."""
    out = []
    for p in _descendants(pid) if descendants else {pid}:
        try:
            fds = list(Path(f"/proc/{p}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in listening:
                out.append(listening[target[8:-1]])
    return out


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_non_loopback_host_without_credentials_is_refused(host: str, reliability: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "--set", f"stack.host={host}", "stack", "up", "kafka"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    err = out.stderr.strip()
    assert out.returncode != 0
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "stack.host" in err and "credentials" in err, err
    reliability(
        "security",
        f"stack.host={host} without credentials",
        "refused, one line",
        {"exit": out.returncode, "lines": len(err.splitlines())},
    )
