"""``demo``: sync the bundled example twice into a sandbox it starts itself."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``demo`` command's arguments."""
    demo = commands.add_parser("demo", parents=[common], help="sync the bundled example twice")
    demo.add_argument(
        "--output",
        default="demo-output",
        help="where the demo keeps state and reports: a new or empty folder, or one an earlier "
        "demo made (it is emptied); any other folder is refused",
    )
    demo.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from connector.demo import run_demo

    return run_demo(Path(args.output))
