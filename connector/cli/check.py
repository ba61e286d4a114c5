"""``check``: validate config, mapping and source, and print what a run would make of them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from connector import logs
from connector.cli.loading import OK, load, select_tenants
from connector.cli.output import (
    print_error,
    say,
)
from connector.errors import ConnectorError

if TYPE_CHECKING:
    from connector.state import Store
    from connector.state.store import SchemaNotReady


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``check`` command's arguments."""
    check = commands.add_parser(
        "check", parents=[common], help="validate config, mapping and source"
    )
    check.add_argument("--tenant", action="append", default=[])
    check.add_argument("--online", action="store_true", help="also prove the Kore credentials")
    check.add_argument("--json", action="store_true", help="the findings as one JSON document")
    check.set_defaults(run=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """Each tenant's findings: as text, as one JSON document (``--json``), or as a JSON
    record a tenant (``--log-format json``). Text and ``--json`` show the preview rows whole to
    the person who asked; a record masks them like every other log record (``checks.logged``)."""
    from connector.checks import check_tenant, logged, render
    from connector.state.store import check_location

    settings, base = load(args)
    check_location(settings.state_url)
    store, unready = readable_store(settings.state_url)
    records = logs.current_format() == "json"
    code = unready.exit_code if unready is not None and unready.ahead else OK
    if unready is not None and not args.json:
        if unready.ahead:
            print_error(unready, verbose=getattr(args, "verbose", False))
        else:
            say(f"note: {unready.message}: {unready.hint}", error=True, level="warning")
    document: dict[str, Any] = {}
    try:
        for name, tenant in select_tenants(settings, args.tenant).items():
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
                say(f"{name}: ok", details={"check": logged(found)})
            elif not args.json:
                render(found, sys.stdout)
    finally:
        if store is not None:
            store.close()
    if args.json:
        schema = {
            "ok": unready is None or not unready.ahead,
            "problem": unready.message if unready else None,
            "hint": unready.hint if unready else None,
        }
        print(json.dumps({"tenants": document, "state": schema}, indent=2, default=str))
    return code


def readable_store(url: str) -> tuple[Store | None, SchemaNotReady | None]:
    """The state database opened read-only, or why it cannot be: ``check`` writes nothing, not
    even a SQLite file or a schema. No schema yet, or an older one, is a note (the first
    ``sync`` migrates, so a new install checks clean before it); a newer one than this version
    knows is what ``sync`` would refuse, so it fails the check (exit 2)."""
    from connector.state import Store
    from connector.state.store import SchemaNotReady

    try:
        return Store(url, migrate=False), None
    except SchemaNotReady as exc:
        return None, exc
