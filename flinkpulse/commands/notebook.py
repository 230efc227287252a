"""`flinkpulse notebook`: JupyterLab over notebooks/, against the running stack."""

from __future__ import annotations

import argparse
from typing import Any

from flinkpulse.config import Config


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "notebook",
        help="start JupyterLab over notebooks/ (127.0.0.1, generated token)",
        description="Start JupyterLab (stack component `jupyter`, in the background) over "
        "notebooks/, with kernels that import flinkpulse and use this stack's settings. "
        "Prints the URL with its token; the token is kept in <state>/secrets/jupyter.token. "
        "Stop it with `flinkpulse stack down jupyter`.",
    )
    p.add_argument("--ip", default=None, help="address to bind (default stack.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default stack.jupyter_port)")
    p.add_argument(
        "--no-token",
        action="store_true",
        help="no authentication (refused unless bound to a loopback address)",
    )
    p.set_defaults(func=_run)


def _run(cfg: Config, args: argparse.Namespace) -> int:
    from flinkpulse.stack.jupyter import Jupyter

    if args.port is not None:
        cfg = cfg.derive(stack={"jupyter_port": args.port})
    comp = Jupyter(cfg, host=args.ip, token=not args.no_token)
    if comp.complete() and comp.healthy():
        print(f"JupyterLab already running at {comp.address()}", flush=True)
    else:
        print(f"starting JupyterLab over notebooks/ at {comp.address()} ...", flush=True)
        comp.start()
        comp.wait_ready()
    print(f"open {comp.url()}")
    print("stop it with: flinkpulse stack down jupyter")
    return 0
