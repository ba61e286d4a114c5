"""``sandbox``: a local server that speaks the Kore contacts API."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from connector.cli.loading import OK
from connector.cli.output import (
    say,
)
from connector.errors import ConfigError

SECRET_VARIABLE = "KORE_SANDBOX_SECRET"  # noqa: S105 - the name of a variable
"""The environment variable the sandbox takes its JWT secret from (``--secret-file`` wins)."""


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``sandbox`` command's arguments."""
    sandbox = commands.add_parser("sandbox", parents=[common], help="a local Kore contacts API")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument(
        "--secret-file",
        metavar="PATH",
        help=f"a file holding the JWT secret it accepts (else ${SECRET_VARIABLE}, else the one "
        "the README gives)",
    )
    sandbox.add_argument("--secret", help=argparse.SUPPRESS)
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

    secret = _secret(args) or DEFAULT_SECRET
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
            secret=secret,
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


def _secret(args: argparse.Namespace) -> str | None:
    """The secret ``--secret-file`` or ``$KORE_SANDBOX_SECRET`` gives (None: neither does).
    Never from the command line, which every user of the machine may read (``ps``,
    ``/proc/PID/cmdline``). A file's trailing line break is not part of the secret."""
    from connector.settings import SECRET_BYTES

    if args.secret is not None:
        raise ConfigError(
            "sandbox: --secret would show the secret to every user of this machine (ps)",
            hint=f"put it in a file for --secret-file PATH, or in ${SECRET_VARIABLE}",
        )
    if args.secret_file is not None:
        where = f"--secret-file {args.secret_file}"
        try:
            secret = Path(args.secret_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                f"sandbox: cannot read {where}: {reason}",
                hint="give the path of a file holding the secret on one line",
            ) from None
    elif os.environ.get(SECRET_VARIABLE):
        where, secret = f"${SECRET_VARIABLE}", os.environ[SECRET_VARIABLE]
    else:
        return None
    size = len(secret.encode())
    if size < SECRET_BYTES["HS256"]:
        raise ConfigError(
            f"sandbox: the secret in {where} is {size} bytes long; HS256 needs at least "
            f"{SECRET_BYTES['HS256']} (RFC 7518 §3.2)",
            hint="use a longer secret, e.g. `openssl rand -hex 32`",
        )
    return secret
