"""The ``kore-connector`` command line. ``ConnectorError`` becomes one line and an exit code."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from connector import __version__, logs
from connector.cli_output import describe
from connector.errors import ConfigError, ConnectorError
from connector.kore.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_SECRET,
    Faults,
    Sandbox,
)
from connector.pipeline import run_once
from connector.settings import Settings, TenantSettings, config_path, load_settings
from connector.state import Store

log = logging.getLogger("connector")

OK, FAILED = 0, 1


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

    sync = commands.add_parser("sync", parents=[common], help="one incremental run")
    sync.add_argument(
        "--tenant", action="append", default=[], help="a tenant (repeatable); all by default"
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="write batch CSVs and the report; upload nothing, change no state",
    )
    sync.add_argument(
        "--full",
        action="store_true",
        help="read every file again (numbers delivered before are still skipped)",
    )

    check = commands.add_parser(
        "check", parents=[common], help="validate config, mapping and source"
    )
    check.add_argument("--tenant", action="append", default=[])
    check.add_argument("--online", action="store_true", help="also prove the Kore credentials")

    status = commands.add_parser(
        "status", parents=[common], help="last run and counters per tenant"
    )
    status.add_argument("--tenant", action="append", default=[])

    sandbox = commands.add_parser("sandbox", parents=[common], help="a local Kore contacts API")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--secret", default=DEFAULT_SECRET, help="the JWT secret it accepts")
    sandbox.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    sandbox.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
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
        "--rate-limit-every", type=int, default=0, metavar="N", help="429 on every Nth upload"
    )
    sandbox.add_argument(
        "--delay", type=float, default=0.0, metavar="SECONDS", help="slow every upload"
    )
    sandbox.add_argument(
        "--duplicates",
        choices=["skip", "reject-file"],
        default="skip",
        help="leave refused rows out of the answer, or refuse the whole file",
    )

    demo = commands.add_parser("demo", parents=[common], help="sync the bundled example twice")
    demo.add_argument(
        "--output", default="demo-output", help="where the demo keeps state and reports"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in words or "--verbose" in words
    try:
        args = build_parser().parse_args(argv)
        logs.configure(
            log_format=getattr(args, "log_format", "text"), verbose=getattr(args, "verbose", False)
        )
        handler = {
            "sync": cmd_sync,
            "check": cmd_check,
            "status": cmd_status,
            "sandbox": cmd_sandbox,
            "demo": cmd_demo,
        }[args.command]
        return handler(args)
    except ConnectorError as exc:
        _print_error(exc, verbose)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return FAILED
    except Exception as exc:  # a bug: say so in one line; -v shows where
        if verbose:
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)",
            file=sys.stderr,
        )
        return FAILED


def _print_error(exc: ConnectorError, verbose: bool) -> None:
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    if verbose and exc.__cause__ is not None:
        log.debug("cause", exc_info=exc.__cause__)


def _load(args: argparse.Namespace) -> tuple[Settings, Path]:
    path = config_path(getattr(args, "config", None))
    return load_settings(path), path.parent


def _tenants(settings: Settings, names: list[str]) -> dict[str, TenantSettings]:
    unknown = [n for n in names if n not in settings.tenants]
    if unknown:
        raise ConfigError(
            f"no tenant named {unknown[0]!r} in the config",
            hint=f"tenants: {', '.join(settings.tenants)}",
        )
    return {n: settings.tenants[n] for n in names} if names else dict(settings.tenants)


# sync


def cmd_sync(args: argparse.Namespace) -> int:
    settings, base = _load(args)
    tenants = _tenants(settings, args.tenant)
    store = Store(settings.state_url)
    progress = (
        _Progress()
        if sys.stderr.isatty() and getattr(args, "log_format", "text") == "text"
        else None
    )
    codes = []
    try:
        for name, tenant in tenants.items():
            result = run_once(
                name,
                tenant,
                settings=settings,
                store=store,
                base_dir=base,
                dry_run=args.dry_run,
                full=args.full,
                progress=progress,
            )
            if progress:
                progress.done()
            print(describe(result, dry_run=args.dry_run))
            for warning in result.warnings:
                print(f"warning: {result.tenant}: {warning}", file=sys.stderr)
            if result.error is not None:
                _print_error(result.error, getattr(args, "verbose", False))
                codes.append(result.error.exit_code)
    finally:
        store.close()
    return max(codes, default=OK)


class _Progress:
    def __init__(self) -> None:
        self._shown = False

    def __call__(self, tenant: str, counters: Counter[str]) -> None:
        self._shown = True
        sys.stderr.write(
            f"\r{tenant}: {counters['rows_read']:,} rows read, "
            f"{counters['sent']:,} sent, {sum(counters[k] for k in ('created', 'adopted')):,}"
            " confirmed "
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            self._shown = False


# check


def cmd_check(args: argparse.Namespace) -> int:
    from connector.checks import check_tenant

    settings, base = _load(args)
    code = OK
    for name, tenant in _tenants(settings, args.tenant).items():
        try:
            check_tenant(name, tenant, base_dir=base, online=args.online, out=sys.stdout)
        except ConnectorError as exc:
            print(f"{name}: FAILED")
            _print_error(exc, getattr(args, "verbose", False))
            code = max(code, exc.exit_code)
    return code


# status


def cmd_status(args: argparse.Namespace) -> int:
    settings, _ = _load(args)
    store = Store(settings.state_url)
    try:
        for name, tenant in _tenants(settings, args.tenant).items():
            last = store.last_run(name)
            print(f"{name}:")
            if last is None:
                print("  last run:       never")
            else:
                finished = (
                    last.finished_at.isoformat(timespec="seconds") if last.finished_at else "-"
                )
                print(f"  last run:       {last.id} {last.status} (finished {finished})")
                shown = ", ".join(f"{k} {v:,}" for k, v in last.counters.items() if v)
                print(f"  its counters:   {shown or '-'}")
            print(f"  delivered:      {store.delivered_count(name):,} contacts")
            print(f"  pending:        {store.pending_count(name):,} rows in flight")
            print(f"  next run:       {next_run(tenant, last.started_at if last else None)}")
    finally:
        store.close()
    return OK


def next_run(tenant: TenantSettings, last_start: datetime | None) -> str:
    now = datetime.now(UTC)
    schedule = tenant.schedule
    if schedule.cron:
        from apscheduler.triggers.cron import CronTrigger

        fire = CronTrigger.from_crontab(schedule.cron, timezone=UTC).get_next_fire_time(None, now)
        return f"{fire.isoformat(timespec='seconds')} (cron {schedule.cron}, when the daemon runs)"
    every = schedule.every or timedelta(minutes=15)
    due = max(now, last_start + every) if last_start else now
    return f"{due.isoformat(timespec='seconds')} (every {_duration(every)}, when the daemon runs)"


def _duration(span: timedelta) -> str:
    """``15m``, ``2h``, ``1d`` or ``90s``: the way the config file writes it."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# sandbox and demo


def cmd_sandbox(args: argparse.Namespace) -> int:
    faults = Faults(
        fail_every=args.fail_every,
        drop_every=args.drop_every,
        rate_limit_every=args.rate_limit_every,
        delay_seconds=args.delay,
        duplicates=args.duplicates,
    )
    try:
        sandbox = Sandbox(
            port=args.port,
            secret=args.secret,
            client_id=args.client_id,
            account_id=args.account_id,
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
    print(
        f"sandbox: Kore contacts API on {sandbox.url} (client_id {args.client_id}, "
        f"account_id {args.account_id}); Ctrl-C stops it",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        sandbox.serve_forever()
    return OK


def cmd_demo(args: argparse.Namespace) -> int:
    from connector.demo import run_demo

    return run_demo(Path(args.output))
