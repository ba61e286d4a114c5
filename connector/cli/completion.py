"""``completion``: a shell completion script for bash or zsh."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from connector.cli.loading import OK

if TYPE_CHECKING:
    pass


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``completion`` command's arguments."""
    completion = commands.add_parser(
        "completion", help="print a shell completion script (bash or zsh)"
    )
    completion.add_argument("shell", choices=["bash", "zsh"])
    completion.set_defaults(run=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    from connector.cli.main import build_parser

    print(shtab.complete(build_parser(), shell=args.shell))
    return OK
