"""JupyterLab over ``notebooks/`` (stack component `jupyter`, `flinkpulse notebook`).

The server runs with this venv's Python, so its kernels import flinkpulse and reach the stack
with the same settings (the FLINKPULSE_* environment is inherited). Authentication is a token
generated on the first start into ``<state>/secrets/jupyter.token`` (0600), handed to the server
through its environment (never on a command line or in a file under the repository).
"""

from __future__ import annotations

import os
import secrets
import sys
import urllib.request
from pathlib import Path

from flinkpulse.config import Config
from flinkpulse.errors import UsageError
from flinkpulse.paths import ROOT
from flinkpulse.stack import LOOPBACK_HOSTS
from flinkpulse.stack.base import Component, Proc
from flinkpulse.stack.superset import _write_secret

NOTEBOOKS = ROOT / "notebooks"


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


class Jupyter(Component):
    name = "jupyter"
    reads_config = True
    start_timeout = 120.0

    def __init__(self, cfg: Config, host: str | None = None, token: bool = True) -> None:
        super().__init__(cfg)
        self.host = host or cfg.stack.host
        self.use_token = token
        if not token and not is_loopback(self.host):
            raise UsageError(
                f"refusing to serve notebooks on {self.host} without a token: anyone who reaches "
                "it could run code as you; keep the token or bind 127.0.0.1"
            )

    @property
    def token_file(self) -> Path:
        return self.state / "secrets" / "jupyter.token"

    def token(self) -> str:
        if not self.use_token or not self.token_file.exists():
            return ""
        return self.token_file.read_text().strip()

    def ports(self) -> list[int]:
        return [self.cfg.stack.jupyter_port]

    def address(self) -> str:
        return f"http://{self.host}:{self.cfg.stack.jupyter_port}/lab"

    def url(self) -> str:
        """The address with the token (what a browser opens); print it, never store it."""
        return self.address() + (f"?token={self.token()}" if self.use_token else "")

    def prepare(self) -> None:
        secrets_dir = self.token_file.parent
        secrets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(secrets_dir, 0o700)
        _write_secret(self.token_file, lambda: secrets.token_urlsafe(32))

    def procs(self) -> list[Proc]:
        argv = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--ServerApp.ip={self.host}",
            f"--ServerApp.port={self.cfg.stack.jupyter_port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={NOTEBOOKS}",
            # the workspaces of this stack, not the user's ~/.jupyter
            f"--LabApp.workspaces_dir={self.dir / 'workspaces'}",
        ]
        if os.geteuid() == 0:  # containers and CI machines run as root; Jupyter refuses it
            argv.append("--allow-root")
        env = {
            "JUPYTER_CONFIG_DIR": str(self.dir / "config"),
            "JUPYTER_DATA_DIR": str(self.dir / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.dir / "runtime"),
            # kernels import the project from this tree (PYTHONPATH also reaches Flink clients)
            "PYTHONPATH": os.pathsep.join(
                p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p
            ),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        }
        if self.use_token:
            env["JUPYTER_TOKEN"] = self.token()
        else:
            argv.append("--IdentityProvider.token=")
        return [Proc("jupyter", argv, env=env, cwd=NOTEBOOKS)]

    def healthy(self) -> bool:
        """The server answers an authenticated API call."""
        req = urllib.request.Request(
            f"http://{self.host}:{self.cfg.stack.jupyter_port}/api/status",
            headers={"Authorization": f"token {self.token()}"} if self.use_token else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def extra_status(self) -> str:
        return f"token in {self.token_file}" if self.use_token else "no token (loopback only)"
