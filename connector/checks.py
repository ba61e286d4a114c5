"""``check``: prove a tenant's config, mapping and source before anything is sent.

``check_tenant`` finds out, as plain data; ``render`` prints it for a person. ``check --json``
(and ``--log-format json``) prints the data itself."""

from __future__ import annotations

from collections import Counter
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from connector.contacts import KORE_COLUMNS, Contact
from connector.kore.client import KoreClient
from connector.mapping import load_mapping, read_otherwise, reading_of
from connector.mapping.apply import sample_updated_at
from connector.settings import SqlSourceSettings, TenantSettings
from connector.sources import SourceUnit, open_source
from connector.sources.csv_files import CsvFile
from connector.state import TenantState

SAMPLE_ROWS = 1000
PREVIEW_ROWS = 5


def check_tenant(
    name: str,
    tenant: TenantSettings,
    *,
    base_dir: Path,
    online: bool,
    state: TenantState | None = None,
) -> dict[str, Any]:
    """What a run would make of the tenant; raises what it would trip on. With the tenant's
    ``state``, also which files a run would skip as read with another mapping."""
    mapping = load_mapping(tenant.mapping, base=base_dir)
    found: dict[str, Any] = {"tenant": name, "mapping": mapping.name, "sources": [], "note": None}
    units = open_source(tenant.source, state=None, id_columns=mapping.spec.id_columns).units()
    if state is not None and units:
        readings = state.readings()
        remembered = [(u.ident, u.name) for u in units if u.ident in readings]
        found["note"] = read_otherwise(remembered, readings, reading_of(mapping, tenant))
    if state is not None:
        from connector.sources.sql import SqlTable  # the saved cursor, shown by describe()

        for unit in units:
            if isinstance(unit, SqlTable):
                unit.recall(state, resume=False)
    for unit in units:
        found["sources"].append(_sample(unit, mapping.bind(unit.header(), unit.name), tenant))
    found["warnings"] = _removals(tenant, removed_when=bool(mapping.spec.removed_when))
    found["kore"] = None
    if online:
        hint = "check kore.host, and that Kore is reachable from here"
        with KoreClient(tenant.kore, gave_up_hint=hint) as client:
            found["kore"] = {"host": tenant.kore.host, "contacts": len(client.list_contacts())}
    found["ok"] = True
    return found


def _removals(tenant: TenantSettings, *, removed_when: bool) -> list[str]:
    """What keeps contacts removed from the CRM in Kore: ``changes.removed: delete`` with
    nothing to judge removals on, and a SQL query that never reads a soft-deleted row."""
    from connector.sources.sql import hides_removed

    found = [tenant.removals_unjudged(removed_when=removed_when)]
    source = tenant.source
    query = source.query if isinstance(source, SqlSourceSettings) else None
    hidden = hides_removed(query) if query else None
    if hidden:
        column, clause = hidden
        found.append(
            f"source.query reads only live contacts ({clause}): a contact deleted in the CRM "
            f"is never read, so it stays in Kore; read those rows too and mark them with "
            f"removed_when: [{{field: {column}, in: [...]}}] in the mapping (docs/mappings.md)"
        )
    return [warning for warning in found if warning]


def _sample(unit: SourceUnit, bound: Any, tenant: TenantSettings) -> dict[str, Any]:
    """The first ``SAMPLE_ROWS`` rows of a file or table, mapped: what would be sent, what
    rejected and why (with the first line of each reason), and a preview."""
    reasons: Counter[str] = Counter()
    countries: Counter[str] = Counter()
    examples: dict[str, int] = {}
    preview: list[Contact] = []
    read = 0
    with closing(unit.rows()) as rows:
        bound = bound.learn_timestamps(sample_updated_at(bound, islice(rows, SAMPLE_ROWS)))
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
    return {
        "source": unit.describe(),
        "encoding": _encoding(unit),
        "warnings": [
            *unit.warnings(),
            *bound.warnings,
            *bound.timestamp_warnings(),
            *_none_sent(read, sum(reasons.values())),
        ],
        "sample_rows": read,
        "would_send": read - sum(reasons.values()),
        "rejected": {
            reason: {"rows": count, "first_line": examples[reason]}
            for reason, count in reasons.most_common()
        },
        "unknown_countries": dict(countries.most_common()),
        "preview": [dict(zip(KORE_COLUMNS, c.csv_row(), strict=True)) for c in preview],
    }


def _encoding(unit: SourceUnit) -> dict[str, Any] | None:
    """How a CSV file is decoded: the encoding, how sure that is (1.0 unless it was detected)
    and the runner-up of a detection; None for a workbook or a table."""
    if not isinstance(unit, CsvFile):
        return None
    runner_up = unit.detection.runner_up if unit.detection else None
    return {"name": unit.encoding, "confidence": unit.encoding_confidence, "runner_up": runner_up}


def _none_sent(read: int, rejected: int) -> list[str]:
    """A sample of which no row would be sent: the mapping, the region or the export is wrong
    more likely than every contact (``sync`` says the same of a run)."""
    if read and rejected == read:
        return [f"no row of the {read:,} sampled would be sent; see the reasons below"]
    return []


def render(found: dict[str, Any], out: TextIO) -> None:
    """The check's findings for a person."""
    print(f"{found['tenant']}:", file=out)
    print(f"  mapping:  {found['mapping']}", file=out)
    if not found["sources"]:
        print("  source:   no file matches yet", file=out)
    if found["note"]:
        print(f"  note:     {found['note']}", file=out)
    for warning in found["warnings"]:
        print(f"  warning:  {warning}", file=out)
    for source in found["sources"]:
        print(f"  source:   {source['source']}", file=out)
        if source["encoding"]:
            encoding = source["encoding"]
            print(
                f"  encoding: {encoding['name']} (confidence {encoding['confidence']:.2f})",
                file=out,
            )
        for warning in source["warnings"]:
            print(f"  warning:  {warning}", file=out)
        print(
            f"  sample:   {source['sample_rows']:,} rows, {source['would_send']:,} would be sent"
            f" (before duplicates and numbers already delivered)",
            file=out,
        )
        for reason, seen in source["rejected"].items():
            print(
                f"  rejected: {seen['rows']:,} {reason} (first at line {seen['first_line']})",
                file=out,
            )
        if source["unknown_countries"]:
            shown = ", ".join(f"'{n}' {c:,}" for n, c in source["unknown_countries"].items())
            print(f"  unknown countries: {shown}", file=out)
        if source["preview"]:
            rows = [KORE_COLUMNS, *(tuple(p.values()) for p in source["preview"])]
            _table(out, rows)
    if found["kore"]:
        kore = found["kore"]
        print(
            f"  kore:     credentials accepted by {kore['host']}; {kore['contacts']:,} contacts "
            "there",
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
