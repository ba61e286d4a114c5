"""The ``kore-connector`` command line: parse, run one command, and turn a ``ConnectorError``
into one line and its exit code.

Each command lives in a module of its own and imports what it uses when it runs, so ``--help``
and ``status`` do not pay for the phone library, the HTTP client or the sandbox.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import sys
from collections.abc import Sequence

from connector import __version__, logs
from connector.cli import (
    check,
    completion,
    daemon,
    demo,
    init,
    migrate,
    reconcile,
    sandbox,
    status,
    sync,
)
from connector.cli.loading import FAILED
from connector.cli.output import print_error, say
from connector.errors import ConfigError, ConnectorError

COMMANDS = (sync, reconcile, check, status, migrate, daemon, sandbox, demo, init, completion)


class _Parser(argparse.ArgumentParser):
    """Usage errors become ``ConfigError`` (exit 2, one line) instead of argparse's own exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}", hint=f"see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="config file (default connector.yaml, or $CONNECTOR_CONFIG)",
    )
    common.add_argument("--log-format", choices=["text", "json"], default=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)

    parser = _Parser(
        prog="kore-connector",
        parents=[common],
        description="Keep a Kore.ai contact center's contacts in step with a CRM.",
    )
    parser.add_argument("--version", action="version", version=f"kore-connector {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_to(commands, common)
    return parser


PR_SET_DUMPABLE = 4
"""prctl(2)'s option that marks a process dumpable (``linux/prctl.h``)."""


def _no_core_dumps() -> None:
    """Keep the client secrets this process holds (its environment, the settings, the tokens
    it mints) out of a core dump and away from other processes of the same user: no core file
    (``RLIMIT_CORE`` 0, soft and hard), and, on Linux, not dumpable, which also closes
    ``/proc/PID/environ`` and ``/proc/PID/mem`` and ptrace to anyone without CAP_SYS_PTRACE.
    Every command does it: each reads the config, whose ``${VAR}`` come from the
    environment."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            say(
                f"warning: cannot mark the process not dumpable: {os.strerror(ctypes.get_errno())}",
                error=True,
                level="warning",
            )


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in words or "--verbose" in words
    try:
        args = build_parser().parse_args(argv)
        logs.configure(
            log_format=getattr(args, "log_format", "text"), verbose=getattr(args, "verbose", False)
        )
        _no_core_dumps()
        code: int = args.run(args)
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return code
    except BrokenPipeError:
        # the reader went away (`status | head -1`): nothing more to say, and nowhere to say it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except ConnectorError as exc:
        print_error(exc, verbose=verbose)
        if "--json" in words:
            # A script reading the one document --json promises gets it, the error in it.
            document = {"error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
            print(json.dumps(document, indent=2))
        return exc.exit_code
    except KeyboardInterrupt:
        # Ctrl-C where no command stops gracefully: an interruption, not an error
        say("interrupted", error=True, level="warning")
        return 130  # 128 + SIGINT, as the shell reports a command Ctrl-C stopped
    except Exception as exc:  # a bug: say so in one line; -v shows where
        if verbose:
            raise
        say(
            f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)",
            error=True,
            level="error",
        )
        return FAILED
