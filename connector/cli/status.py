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
    store = Store(settings.state_url)
    try:
        found = {
            name: status_of(store, name, tenant)
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
