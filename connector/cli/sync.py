"""``sync``: one incremental run for each named tenant (all by default), one after the other."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from connector import logs
from connector.cli.loading import OK, load, select_tenants
from connector.cli.output import (
    describe,
    not_run_document,
    print_error,
    records,
    run_document,
    say,
)
from connector.errors import ConnectorError, RunInterrupted, code_of

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
    sync.add_argument(
        "--json",
        action="store_true",
        help="each tenant's result as one JSON document on standard output",
    )
    sync.set_defaults(run=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    from connector.sync.observers import log_event
    from connector.sync.pool import start_resource_tracker
    from connector.sync.run import run_tenant

    start_resource_tracker()  # while this process has one thread

    json_mode = logs.current_format() == "json"
    observers: list[Observer] = [log_event] if records(args) else []
    progress = None
    if sys.stderr.isatty() and not json_mode:
        from connector.progress import ProgressBars

        progress = ProgressBars()
        observers.append(progress)

    document: dict[str, dict[str, Any]] = {}

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
        if args.json:
            document[run.name] = run_document(result, dry_run=args.dry_run)
            return result.error
        say(describe(result, dry_run=args.dry_run, full=args.full), result=result)
        for warning in result.warnings:
            say(f"warning: {result.tenant}: {warning}", error=True, level="warning")
        codes = sorted({code for w in result.warnings if (code := code_of(w))})
        if codes:
            say(
                f"note: {result.tenant}: accept a warning that holds on every run with "
                f"acknowledge: [{', '.join(codes)}] in tenants.{result.tenant}; it is then "
                "counted, not printed",
                error=True,
                level="warning",
            )
        return result.error

    turns = each_tenant(args, sync, quiet=args.json)
    if args.json:
        print(json.dumps({"tenants": turns.document(document)}, indent=2), flush=True)
    return turns.code


@dataclass(frozen=True)
class TenantRun:
    store: Store
    settings: Settings
    base: Path
    name: str
    stop: threading.Event


@dataclass
class Turns:
    """How the tenants' turns went: the exit code, and the tenants whose turn began no run
    (refused with an error, or skipped after a signal) for a ``--json`` document."""

    code: int
    tenants: list[str]
    refused: dict[str, ConnectorError] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def document(self, ran: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Every tenant named, in order: its run's document from ``ran``, or why it has none."""
        return {
            name: ran[name] if name in ran else not_run_document(self.refused.get(name))
            for name in self.tenants
        }


def each_tenant(
    args: argparse.Namespace,
    run: Callable[[TenantRun], ConnectorError | None],
    *,
    quiet: bool = False,
) -> Turns:
    """Run a command for each named tenant (all by default), one after the other, until a
    signal stops them. Each error is one line (none when ``quiet``: a JSON document carries
    them), and the worst exit code wins; but a command a signal stopped exits 128+N, and the
    run it interrupted is told as an interruption, not as an error."""
    from connector.state import Store

    settings, base = load(args)
    tenants = select_tenants(settings, args.tenant)
    store = Store(settings.state_url)
    stop = threading.Event()
    turns = Turns(OK, list(tenants))
    codes = []
    interrupted = False
    with stopping_on_signals(stop) as caught:
        try:
            for name in tenants:
                if stop.is_set():
                    turns.skipped.append(name)
                    continue
                try:
                    error = run(TenantRun(store, settings, base, name, stop))
                except ConnectorError as exc:
                    turns.refused[name] = error = exc
                if isinstance(error, RunInterrupted) and caught.signum is not None:
                    interrupted = True
                    if not quiet:
                        say(error.message, error=True, level="warning")
                elif error is not None:
                    if not quiet:
                        print_error(error, verbose=getattr(args, "verbose", False))
                    codes.append(error.exit_code)
        finally:
            store.close()
    if not quiet:
        for name in turns.skipped:
            say(f"{name}: not run: stopped before its turn", error=True, level="warning")
    if caught.signum is not None and (interrupted or turns.skipped):
        turns.code = 128 + caught.signum
    else:
        turns.code = max(codes, default=OK)
    return turns


@dataclass
class Caught:
    """The signal that asked the command to stop, once one did."""

    signum: int | None = None


@contextlib.contextmanager
def stopping_on_signals(stop: threading.Event) -> Iterator[Caught]:
    """Ctrl-C or SIGTERM: the run stops at its next batch boundary and is recorded as
    ``interrupted``. A second signal stops at once, as a kill would: the batch in flight stays
    pending (the next run re-sends it), the lease dies with the process, and ``status`` shows
    the run abandoned."""
    caught = Caught()

    def handle(signum: int, _frame: FrameType | None) -> None:
        if caught.signum is not None:
            say(
                "stopped at once: the next run re-sends the batch in flight",
                error=True,
                level="warning",
            )
            os._exit(128 + signum)
        caught.signum = signum
        again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        say(
            f"stopping after the batch in flight ({again} again to stop at once)",
            error=True,
            level="warning",
        )
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
