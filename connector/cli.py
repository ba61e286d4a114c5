"""The ``kore-connector`` command line. ``ConnectorError`` becomes one line and an exit code.

Each command imports what it uses when it runs, so ``--help`` and ``status`` do not pay for the
phone library, the HTTP client or the sandbox.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from connector import __version__, logs
from connector.cli_output import describe, describe_reconcile, print_error, say, status_of
from connector.errors import ConfigError, ConnectorError

if TYPE_CHECKING:
    from connector.settings import Settings, TenantSettings
    from connector.state import Store
    from connector.sync.context import Observer

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

    reconcile = commands.add_parser(
        "reconcile", parents=[common], help="compare Kore's contact list with the state"
    )
    reconcile.add_argument("--tenant", action="append", default=[])
    reconcile.add_argument(
        "--apply",
        action="store_true",
        help="re-create the missing, adopt the unknown the source has, correct names",
    )

    check = commands.add_parser(
        "check", parents=[common], help="validate config, mapping and source"
    )
    check.add_argument("--tenant", action="append", default=[])
    check.add_argument("--online", action="store_true", help="also prove the Kore credentials")
    check.add_argument("--json", action="store_true", help="the findings as one JSON document")

    status = commands.add_parser(
        "status", parents=[common], help="last run and counters per tenant"
    )
    status.add_argument("--tenant", action="append", default=[])
    status.add_argument("--json", action="store_true", help="one JSON document")

    daemon = commands.add_parser(
        "daemon", parents=[common], help="run every tenant on its schedule until stopped"
    )
    daemon.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="serve /healthz, /readyz and /metrics there (e.g. 127.0.0.1:9108)",
    )

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
        help="which writes the faults hit: a comma-separated list of import, update, delete",
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

    init = commands.add_parser(
        "init", parents=[common], help="write a commented config for one tenant"
    )
    init.add_argument(
        "--from",
        dest="export",
        metavar="EXPORT",
        help="a CRM export (CSV or XLSX): its layout picks the mapping, encoding and delimiter",
    )
    init.add_argument("--tenant", default="main", help="the tenant's name (default: main)")
    init.add_argument("--force", action="store_true", help="replace an existing config file")

    completion = commands.add_parser(
        "completion", help="print a shell completion script (bash or zsh)"
    )
    completion.add_argument("shell", choices=["bash", "zsh"])
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
            "reconcile": cmd_reconcile,
            "status": cmd_status,
            "daemon": cmd_daemon,
            "sandbox": cmd_sandbox,
            "demo": cmd_demo,
            "init": cmd_init,
            "completion": cmd_completion,
        }[args.command]
        code = handler(args)
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return code
    except BrokenPipeError:
        # the reader went away (`status | head -1`): nothing more to say, and nowhere to say it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except ConnectorError as exc:
        print_error(exc, verbose=verbose)
        return exc.exit_code
    except KeyboardInterrupt:
        say("interrupted", error=True, level="error")
        return FAILED
    except Exception as exc:  # a bug: say so in one line; -v shows where
        if verbose:
            raise
        say(
            f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)",
            error=True,
            level="error",
        )
        return FAILED


def _load(args: argparse.Namespace) -> tuple[Settings, Path]:
    from connector.settings import config_path, load_settings

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
    from connector.sync.observers import log_event
    from connector.sync.run import run_tenant

    json_mode = logs.current_format() == "json"
    observers: list[Observer] = [log_event] if _records(args) else []
    progress = None
    if sys.stderr.isatty() and not json_mode:
        from connector.progress import ProgressBars

        progress = ProgressBars()
        observers.append(progress)

    def sync(run: _TenantRun) -> ConnectorError | None:
        result = run_tenant(
            run.store,
            run.name,
            settings=run.settings,
            base_dir=run.base,
            stop=run.stop,
            dry_run=args.dry_run,
            full=args.full,
            observers=observers,
        )
        if progress:
            progress.done()
        say(describe(result, dry_run=args.dry_run), result=result)
        for warning in result.warnings:
            say(f"warning: {result.tenant}: {warning}", error=True, level="warning")
        return result.error

    return _each_tenant(args, sync)


@dataclass(frozen=True)
class _TenantRun:
    store: Store
    settings: Settings
    base: Path
    name: str
    stop: threading.Event


def _each_tenant(
    args: argparse.Namespace, run: Callable[[_TenantRun], ConnectorError | None]
) -> int:
    """Run a command for each named tenant (all by default), one after the other, until a
    signal stops them; each error is one line, and the worst exit code wins."""
    from connector.state import Store

    settings, base = _load(args)
    tenants = _tenants(settings, args.tenant)
    store = Store(settings.state_url)
    stop = threading.Event()
    codes = []
    with _stopping_on_signals(stop):
        try:
            for name in tenants:
                if stop.is_set():
                    break
                try:
                    error = run(_TenantRun(store, settings, base, name, stop))
                except ConnectorError as exc:
                    error = exc
                if error is not None:
                    print_error(error, verbose=getattr(args, "verbose", False))
                    codes.append(error.exit_code)
        finally:
            store.close()
    return max(codes, default=OK)


@contextlib.contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C or SIGTERM: the run stops at its next batch boundary and is recorded as
    ``interrupted``; a second Ctrl-C stops at once."""

    def first(signum: int, _frame: FrameType | None) -> None:
        say(
            "stopping after the batch in flight (Ctrl-C again to stop at once)",
            error=True,
            level="warning",
        )
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, first) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# reconcile


def cmd_reconcile(args: argparse.Namespace) -> int:
    from connector.sync.observers import log_event
    from connector.sync.reconcile import reconcile_tenant

    observers: list[Observer] = [log_event] if _records(args) else []

    def reconcile(run: _TenantRun) -> ConnectorError | None:
        result = reconcile_tenant(
            run.store,
            run.name,
            settings=run.settings,
            base_dir=run.base,
            stop=run.stop,
            apply=args.apply,
            observers=observers,
        )
        details = {
            "tenant": run.name,
            "run_id": result.run_id,
            "status": result.status,
            "found": result.found.as_dict(),
            "report": str(result.report_dir) if result.report_dir else None,
        }
        for line in describe_reconcile(result):
            say(line, details=details)
        return result.error

    return _each_tenant(args, reconcile)


def _records(args: argparse.Namespace) -> bool:
    """Whether a command logs its run's records: always in JSON mode, with -v in text mode."""
    return logs.current_format() == "json" or bool(getattr(args, "verbose", False))


# check


def cmd_check(args: argparse.Namespace) -> int:
    """Each tenant's findings: as text, as one JSON document (``--json``), or as a JSON
    record a tenant (``--log-format json``)."""
    from connector.checks import check_tenant, render
    from connector.state.store import check_location

    settings, base = _load(args)
    check_location(settings.state_url)
    store = _existing_store(settings.state_url)
    records = logs.current_format() == "json"
    code = OK
    document: dict[str, Any] = {}
    try:
        for name, tenant in _tenants(settings, args.tenant).items():
            try:
                state = store.tenant(name) if store is not None else None
                found = check_tenant(name, tenant, base_dir=base, online=args.online, state=state)
            except ConnectorError as exc:
                code = max(code, exc.exit_code)
                found = {"tenant": name, "ok": False, "error": exc.message, "hint": exc.hint}
                if not args.json:
                    say(f"{name}: FAILED", details={"check": found} if records else None)
                    if not records:
                        print_error(exc, verbose=getattr(args, "verbose", False))
                document[name] = found
                continue
            document[name] = found
            if records:
                say(f"{name}: ok", details={"check": found})
            elif not args.json:
                render(found, sys.stdout)
    finally:
        if store is not None:
            store.close()
    if args.json:
        print(json.dumps({"tenants": document}, indent=2, default=str))
    return code


def _existing_store(url: str) -> Store | None:
    """The state database, when there is one: ``check`` never creates a SQLite file."""
    from sqlalchemy.engine import make_url

    from connector.state import Store

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return None
    return Store(url)


# status


def cmd_status(args: argparse.Namespace) -> int:
    from connector.state import Store

    settings, _ = _load(args)
    store = Store(settings.state_url)
    try:
        found = {
            name: status_of(store, name, tenant)
            for name, tenant in _tenants(settings, args.tenant).items()
        }
    finally:
        store.close()
    if args.json:
        print(json.dumps({"tenants": found}, indent=2, default=str))
        return OK
    if logs.current_format() == "json":
        for name, item in found.items():
            say(f"{name}: status", details={"tenant": name, "status": item})
        return OK
    for name, item in found.items():
        print(f"{name}:")
        last = item["last_run"]
        if last is None:
            print("  last run:       never")
        else:
            print(
                f"  last run:       {last['id']} {last['status']} (finished {last['finished_at'] or '-'})"
            )
            shown = ", ".join(f"{k} {v:,}" for k, v in last["counters"].items() if v)
            print(f"  its counters:   {shown or '-'}")
            if last["error"]:
                print(f"  its error:      {last['error']}")
        print(f"  delivered:      {item['delivered']:,} contacts")
        print(f"  pending:        {item['pending']:,} rows in flight")
        print(f"  next run:       {item['next_run']}")
        lease = item["lease"]
        holder = f"{lease['holder']} until {lease['expires_at']}" if lease else "nobody"
        print(f"  held by:        {holder}")
    return OK


# daemon


def cmd_daemon(args: argparse.Namespace) -> int:
    from connector.daemon.service import serve
    from connector.settings import config_path

    path = config_path(getattr(args, "config", None))
    return serve(path, listen=args.listen)


# sandbox and demo


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


def cmd_init(args: argparse.Namespace) -> int:
    from connector.settings import config_path
    from connector.starter import write_config

    target = config_path(getattr(args, "config", None))
    export = Path(args.export) if args.export else None
    if export is not None and not export.is_file():
        raise ConfigError(f"{export}: file not found", hint="give --from the path of an export")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.tenant):
        raise ConfigError(
            f"--tenant {args.tenant!r}: a tenant's name is letters, digits and _ . - only"
        )
    layout = write_config(target, tenant=args.tenant, export=export, force=args.force)
    say(f"wrote {target} (readable by you only): tenant {args.tenant}")
    if layout is not None:
        how = f"{layout.kind}" + (f", {layout.encoding}" if layout.encoding else "")
        say(f"  {export}: {how}; mapping {layout.mapping}")
        say(f"  columns it reads: {', '.join(layout.columns)}")
        for warning in layout.warnings:
            say(f"  note: {warning}")
    secret = f"{args.tenant.upper().replace('-', '_').replace('.', '_')}_KORE_SECRET"
    say(
        f"next: fill in bot_id, account_id and client_id, export {secret}=<client secret>, "
        f"then: kore-connector --config {target} check --online"
    )
    return OK


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell))
    return OK


def cmd_demo(args: argparse.Namespace) -> int:
    from connector.demo import run_demo

    return run_demo(Path(args.output))
