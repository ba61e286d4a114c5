"""``reconcile``: compare Kore's contact list with the state; ``--apply`` repairs."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from connector.cli.loading import load
from connector.cli.output import (
    describe_reconcile,
    reconcile_document,
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
    reconcile.add_argument(
        "--json",
        action="store_true",
        help="each tenant's findings as one JSON document on standard output",
    )
    reconcile.set_defaults(run=cmd_reconcile)


def cmd_reconcile(args: argparse.Namespace) -> int:
    from connector.sync.observers import log_event
    from connector.sync.reconcile import reconcile_tenant

    observers: list[Observer] = [log_event] if records(args) else []
    document: dict[str, dict[str, Any]] = {}

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
        if args.json:
            document[run.name] = reconcile_document(result)
            return result.error
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

    if not args.apply:
        _require_schema(args)
    turns = each_tenant(args, reconcile, quiet=args.json)
    if args.json:
        print(json.dumps({"tenants": turns.document(document)}, indent=2), flush=True)
    return turns.code


def _require_schema(args: argparse.Namespace) -> None:
    """A report only, so a schema that is missing or older is said (``SchemaNotReady``, exit 2)
    rather than created by the store ``each_tenant`` opens, which migrates. At this version's
    schema the report writes one thing: the request slots it takes from the bot's read budget,
    which every process sharing the state paces itself by."""
    from connector.state.store import Store

    settings, _ = load(args)
    Store(settings.state_url, migrate=False).close()
