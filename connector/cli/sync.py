"""``sync``: one incremental run for each named tenant (all by default), one after the other."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from connector import logs
from connector.cli.loading import OK, load, select_tenants
from connector.cli.output import (
    describe,
    print_error,
    records,
    say,
)
from connector.errors import ConnectorError

if TYPE_CHECKING:
    from connector.settings import Settings
    from connector.state import Store
    from connector.sync.context import Observer


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``sync`` command's arguments."""
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
    sync.set_defaults(run=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    from connector.sync.observers import log_event
    from connector.sync.run import run_tenant

    json_mode = logs.current_format() == "json"
    observers: list[Observer] = [log_event] if records(args) else []
    progress = None
    if sys.stderr.isatty() and not json_mode:
        from connector.progress import ProgressBars

        progress = ProgressBars()
        observers.append(progress)

    def sync(run: TenantRun) -> ConnectorError | None:
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

    return each_tenant(args, sync)


@dataclass(frozen=True)
class TenantRun:
    store: Store
    settings: Settings
    base: Path
    name: str
    stop: threading.Event


def each_tenant(args: argparse.Namespace, run: Callable[[TenantRun], ConnectorError | None]) -> int:
    """Run a command for each named tenant (all by default), one after the other, until a
    signal stops them; each error is one line, and the worst exit code wins."""
    from connector.state import Store

    settings, base = load(args)
    tenants = select_tenants(settings, args.tenant)
    store = Store(settings.state_url)
    stop = threading.Event()
    codes = []
    with stopping_on_signals(stop):
        try:
            for name in tenants:
                if stop.is_set():
                    break
                try:
                    error = run(TenantRun(store, settings, base, name, stop))
                except ConnectorError as exc:
                    error = exc
                if error is not None:
                    print_error(error, verbose=getattr(args, "verbose", False))
                    codes.append(error.exit_code)
        finally:
            store.close()
    return max(codes, default=OK)


@contextlib.contextmanager
def stopping_on_signals(stop: threading.Event) -> Iterator[None]:
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
