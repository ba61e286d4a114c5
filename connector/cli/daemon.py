"""``daemon``: run every tenant on its schedule until stopped."""

from __future__ import annotations

import argparse
from typing import Any


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``daemon`` command's arguments."""
    daemon = commands.add_parser(
        "daemon", parents=[common], help="run every tenant on its schedule until stopped"
    )
    daemon.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="serve /healthz, /readyz and /metrics there (e.g. 127.0.0.1:9108)",
    )
    daemon.set_defaults(run=cmd_daemon)


def cmd_daemon(args: argparse.Namespace) -> int:
    from connector.daemon.service import serve
    from connector.settings import config_path

    path = config_path(getattr(args, "config", None))
    return serve(path, listen=args.listen)
