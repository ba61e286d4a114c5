"""``sandbox``: a local server that speaks the Kore contacts API."""

from __future__ import annotations

import argparse
import contextlib
import signal
from types import FrameType
from typing import TYPE_CHECKING, Any

from connector.cli.loading import OK
from connector.cli.output import (
    say,
)
from connector.errors import ConfigError

if TYPE_CHECKING:
    pass


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``sandbox`` command's arguments."""
    sandbox = commands.add_parser("sandbox", parents=[common], help="a local Kore contacts API")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument(
        "--secret", help="the JWT secret it accepts (default: the one the README gives)"
    )
    sandbox.add_argument("--client-id", help="default: cs-sandbox")
    sandbox.add_argument("--account-id", help="default: sandbox-account")
    sandbox.add_argument(
        "--fail-every", type=int, default=0, metavar="N", help="500 on every Nth upload"
    )
    sandbox.add_argument(
        "--drop-every",
        type=int,
        default=0,
        metavar="N",
        help="store every Nth upload, then drop the connection",
    )
    sandbox.add_argument(
        "--reset-every",
        type=int,
        default=0,
        metavar="N",
        help="reset the connection of every Nth upload while reading its body",
    )
    sandbox.add_argument(
        "--rate-limit-every", type=int, default=0, metavar="N", help="429 on every Nth upload"
    )
    sandbox.add_argument(
        "--late",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="carry every upload out, then answer this much later",
    )
    sandbox.add_argument(
        "--delay", type=float, default=0.0, metavar="SECONDS", help="slow every upload"
    )
    sandbox.add_argument(
        "--rate-window",
        metavar="N/SECONDS",
        help="429 for a request past N in any SECONDS, per operation (e.g. 10/10)",
    )
    sandbox.add_argument(
        "--retry-after",
        choices=["seconds", "date", "none"],
        default="seconds",
        help="how a 429 says when to come back",
    )
    sandbox.add_argument(
        "--faults-on",
        default="import",
        metavar="OPS",
        help="which requests the faults hit: a comma-separated list of import, list, update, delete",
    )
    sandbox.add_argument(
        "--duplicates",
        choices=["skip", "reject-file"],
        default="skip",
        help="leave refused rows out of the answer, or refuse the whole file",
    )
    sandbox.set_defaults(run=cmd_sandbox)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from connector.kore.sandbox import (
        DEFAULT_ACCOUNT_ID,
        DEFAULT_CLIENT_ID,
        DEFAULT_SECRET,
        Faults,
        Sandbox,
    )

    operations = {op.strip() for op in args.faults_on.split(",") if op.strip()}
    if not operations <= {"import", "list", "update", "delete"}:
        raise ConfigError(
            f"sandbox: --faults-on {args.faults_on!r} names an unknown operation",
            hint="use import, list, update and delete, comma-separated",
        )
    window = None
    if args.rate_window:
        count, _, seconds = args.rate_window.partition("/")
        try:
            window = (int(count), float(seconds))
        except ValueError:
            raise ConfigError(
                f"sandbox: --rate-window {args.rate_window!r} is not N/SECONDS",
                hint="for example --rate-window 10/10",
            ) from None
    faults = Faults(
        on=frozenset(operations),
        rate_window=window,
        retry_after=args.retry_after,
        fail_every=args.fail_every,
        drop_every=args.drop_every,
        reset_every=args.reset_every,
        late_seconds=args.late,
        rate_limit_every=args.rate_limit_every,
        delay_seconds=args.delay,
        duplicates=args.duplicates,
    )
    try:
        sandbox = Sandbox(
            port=args.port,
            secret=args.secret or DEFAULT_SECRET,
            client_id=args.client_id or DEFAULT_CLIENT_ID,
            account_id=args.account_id or DEFAULT_ACCOUNT_ID,
            faults=faults,
        )
    except OSError as exc:
        raise ConfigError(
            f"sandbox: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}",
            hint="pick another --port",
        ) from None

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    say(
        f"sandbox: Kore contacts API on {sandbox.url} (client_id {sandbox.client_id}, "
        f"account_id {sandbox.account_id}); Ctrl-C stops it"
    )
    with contextlib.suppress(KeyboardInterrupt):
        sandbox.serve_forever()
    return OK
