"""``status``: the last run, its counters, what is delivered and pending, per tenant."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from connector import logs
from connector.cli.loading import OK, load, select_tenants
from connector.cli.output import (
    say,
    status_of,
)

if TYPE_CHECKING:
    pass


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``status`` command's arguments."""
    status = commands.add_parser(
        "status", parents=[common], help="last run and counters per tenant"
    )
    status.add_argument("--tenant", action="append", default=[])
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.set_defaults(run=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from connector.state import Store

    settings, _ = load(args)
    store = Store(settings.state_url, migrate=False)  # status writes nothing, not even a schema
    try:
        found = {
            name: status_of(store, name, tenant, locks=settings.daemon.lease_locks)
            for name, tenant in select_tenants(settings, args.tenant).items()
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
    from connector.sync.context import counted

    for name, item in found.items():
        say(f"{name}:")
        _print_run("last run", item["last_run"])
        if item["last_delivery"] is not None and item["last_delivery"] == item["last_run"]:
            say("  last delivery:  the last run")
        else:
            _print_run("last delivery", item["last_delivery"])
        say(f"  last check:     {_check(item)}")
        say(f"  delivered:      {counted(item['delivered'], 'contact')}")
        say(f"  pending:        {counted(item['pending'], 'row')} in flight")
        when = ", ".join(f"{k} {v}" for k, v in item["schedule"].items())
        say(f"  next run:       {item['next_run'] or '-'} ({when}, when the daemon runs)")
        lease = item["lease"]
        holder = f"{lease['holder']} until {lease['expires_at']}" if lease else "nobody"
        say(f"  held by:        {holder}")
    return OK


def _check(item: dict[str, Any]) -> str:
    """When the tenant was last checked: its last run, or a later run that found nothing new
    and so left no record of its own."""
    checked, last = item["last_check"], item["last_run"]
    if checked is None:
        return "never"
    if last is not None and last["started_at"] == checked:
        return "the last run"
    return f"{checked} (found nothing new)"


def _print_run(label: str, run: dict[str, Any] | None) -> None:
    """A run of ``status_of``, under ``label``: how it ended, its counters, and its error or
    interruption (an interruption is not an error, and is not called one)."""
    if run is None:
        say(f"  {label + ':':<16}never")
        return
    say(f"  {label + ':':<16}{run['id']} {run['status']} (finished {run['finished_at'] or '-'})")
    shown = ", ".join(f"{k} {v:,}" for k, v in run["counters"].items() if v)
    say(f"    counters:     {shown or '-'}")
    if run["error"]:
        say(f"    error:        {run['error']}")
    if run["interruption"]:
        say(f"    interruption: {run['interruption']}")
