"""``init``: a commented config for a tenant, from an export when there is one."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.cli.loading import OK
from connector.cli.output import (
    say,
)
from connector.errors import ConfigError

if TYPE_CHECKING:
    pass


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``init`` command's arguments."""
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
    init.set_defaults(run=cmd_init)


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
