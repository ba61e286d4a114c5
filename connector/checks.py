"""``check``: prove a tenant's config, mapping and source before anything is sent."""

from __future__ import annotations

from collections import Counter
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import TextIO

from connector.contacts import KORE_COLUMNS, Contact
from connector.kore.client import KoreClient
from connector.mapping import load_mapping, read_otherwise, reading_of
from connector.settings import TenantSettings
from connector.sources import open_source
from connector.state import TenantState

SAMPLE_ROWS = 1000
PREVIEW_ROWS = 5


def check_tenant(
    name: str,
    tenant: TenantSettings,
    *,
    base_dir: Path,
    online: bool,
    out: TextIO,
    state: TenantState | None = None,
) -> None:
    """Print what a run would make of the tenant; raise what it would trip on. With the
    tenant's ``state``, also say which files a run would skip as read with another mapping."""
    mapping = load_mapping(tenant.mapping, base=base_dir)
    print(f"{name}:", file=out)
    print(f"  mapping:  {mapping.name}", file=out)
    units = open_source(tenant.source, state=None, id_columns=mapping.spec.id_columns).units()
    if not units:
        print("  source:   no file matches yet", file=out)
    if state is not None and units:
        readings = state.readings()
        remembered = [(u.ident, u.name) for u in units if u.ident in readings]
        stale = read_otherwise(remembered, readings, reading_of(mapping, tenant))
        if stale:
            print(f"  note:     {stale}", file=out)
    for unit in units:
        bound = mapping.bind(unit.header(), unit.name)
        print(f"  source:   {unit.describe()}", file=out)
        for warning in bound.warnings:
            print(f"  warning:  {warning}", file=out)
        reasons: Counter[str] = Counter()
        countries: Counter[str] = Counter()
        examples: dict[str, int] = {}
        preview: list[Contact] = []
        read = 0
        with closing(unit.rows()) as rows:
            for row in islice(rows, SAMPLE_ROWS):
                read += 1
                if row.error or len(row.values) != len(bound.header):
                    reasons["malformed_row"] += 1
                    examples.setdefault("malformed_row", row.line)
                    continue
                item = bound.apply(
                    row.values, source=unit.name, row=row.line, default_region=tenant.default_region
                )
                if isinstance(item, Contact):
                    if len(preview) < PREVIEW_ROWS:
                        preview.append(item)
                else:
                    reasons[item.reason] += 1
                    examples.setdefault(item.reason, item.row)
                    if item.reason == "country_unknown":
                        countries[item.subject] += 1
        print(
            f"  sample:   {read:,} rows, {read - sum(reasons.values()):,} would be sent"
            f" (before duplicates and numbers already delivered)",
            file=out,
        )
        for reason, count in reasons.most_common():
            print(f"  rejected: {count:,} {reason} (first at line {examples[reason]})", file=out)
        if countries:
            shown = ", ".join(f"'{name}' {count:,}" for name, count in countries.most_common())
            print(f"  unknown countries: {shown}", file=out)
        if preview:
            _table(out, [KORE_COLUMNS, *(c.csv_row() for c in preview)])
    if online:
        hint = "check kore.host, and that Kore is reachable from here"
        with KoreClient(tenant.kore, gave_up_hint=hint) as client:
            count = len(client.list_contacts())
        print(
            f"  kore:     credentials accepted by {tenant.kore.host}; {count:,} contacts there",
            file=out,
        )
    print("  ok", file=out)


def _table(out: TextIO, rows: list[tuple[str, ...]]) -> None:
    widths = [min(24, max(len(r[i]) for r in rows)) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "    " + "  ".join(cell[:24].ljust(w) for cell, w in zip(row, widths, strict=True)),
            file=out,
        )
