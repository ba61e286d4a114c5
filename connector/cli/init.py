"""``init``: a commented config for a tenant, from an export when there is one; a config that is
already there gets the tenant added, its comments kept."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from connector.cli.loading import OK
from connector.cli.output import say
from connector.errors import ConfigError


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``init`` command's arguments."""
    init = commands.add_parser(
        "init",
        parents=[common],
        help="write a commented config, or add a tenant to one",
        description="Write a commented config for one tenant (the --config path), or add the "
        "tenant to the config already there, keeping its comments. With --from, the export's "
        "layout picks the mapping, encoding and delimiter, and source.path reads every file "
        "like it in its folder (exports/*.csv for exports/acme-2025-03.csv).",
    )
    init.add_argument(
        "--from",
        dest="export",
        metavar="EXPORT",
        help="a CRM export (CSV or XLSX): its layout picks the mapping, encoding and delimiter",
    )
    init.add_argument("--tenant", default="main", help="the tenant's name (default: main)")
    init.add_argument(
        "--force",
        action="store_true",
        help="replace the tenant of that name (the other tenants are kept) and its written "
        "mapping file",
    )
    init.set_defaults(run=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from connector.settings import TENANT_NAME, config_path
    from connector.starter import secret_variable, write_config

    target = config_path(getattr(args, "config", None))
    export = Path(args.export) if args.export else None
    if export is not None and not export.is_file():
        raise ConfigError(f"{export}: file not found", hint="give --from the path of an export")
    if not re.fullmatch(TENANT_NAME, args.tenant):
        raise ConfigError(
            f"--tenant {args.tenant!r}: a tenant's name is letters, digits and _ . - only, "
            "not starting with ., at most 64",
            hint="for example --tenant acme-eu",
        )
    written = write_config(target, tenant=args.tenant, export=export, force=args.force)
    if written.how == "created":
        say(f"wrote {target} (readable by you only): tenant {args.tenant}")
    else:
        where = "to" if written.how == "added" else "in"
        say(
            f"{written.how} tenant {args.tenant} {where} {target}; the other tenants are kept as they were"
        )
    say(f"  source.path: {written.source_path}")
    if written.strangers:
        shown = ", ".join(written.strangers[:3]) + (" …" if len(written.strangers) > 3 else "")
        say(
            f"  note: source.path also reads {_files(len(written.strangers))} there whose layout"
            f" differs ({shown}); give this tenant's exports a folder of their own, or narrow"
            " source.path"
        )
    layout = written.layout
    if layout is not None:
        how = f"{layout.kind}" + (f", {layout.encoding}" if layout.encoding else "")
        say(f"  {export}: {how}; mapping {layout.mapping}")
        say(f"  columns it reads: {', '.join(layout.columns)}")
        for warning in layout.warnings:
            say(f"  note: {warning}")
    say(
        f"next: fill in bot_id, account_id and client_id, export "
        f"{secret_variable(args.tenant)}=<client secret>, "
        f"then: kore-connector --config {target} check --tenant {args.tenant} --online"
    )
    return OK


def _files(count: int) -> str:
    return f"{count:,} other file" + ("" if count == 1 else "s")
