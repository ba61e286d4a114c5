"""``reconcile``: compare Kore's contact list with the state; ``--apply`` repairs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from connector.cli.output import (
    describe_reconcile,
    records,
    say,
)
from connector.cli.sync import TenantRun, each_tenant
from connector.errors import ConnectorError

if TYPE_CHECKING:
    from connector.sync.context import Observer


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``reconcile`` command's arguments."""
    reconcile = commands.add_parser(
        "reconcile", parents=[common], help="compare Kore's contact list with the state"
    )
    reconcile.add_argument("--tenant", action="append", default=[])
    reconcile.add_argument(
        "--apply",
        action="store_true",
        help="re-create the missing, adopt the unknown the source has, correct names",
    )
    reconcile.set_defaults(run=cmd_reconcile)


def cmd_reconcile(args: argparse.Namespace) -> int:
    from connector.sync.observers import log_event
    from connector.sync.reconcile import reconcile_tenant

    observers: list[Observer] = [log_event] if records(args) else []

    def reconcile(run: TenantRun) -> ConnectorError | None:
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

    return each_tenant(args, reconcile)
