"""``check``: prove a tenant's config, mapping and source before anything is sent.

``check_tenant`` finds out, as plain data; ``render`` prints it for a person, ``check --json``
prints the data itself: both show the first rows as they would be sent, names and numbers
whole, to the person who asked. ``--log-format json`` prints a record a tenant, for log
shippers: ``logged`` masks its preview like every other log record (no name, no whole number)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from connector.contacts import KORE_COLUMNS, Contact
from connector.kore.client import KoreClient
from connector.logs import printable
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
    source = open_source(tenant.source, state=None, id_columns=mapping.spec.id_columns)
    units = source.units()
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
    found["warnings"] = [
        *source.stats.unsafe,
        *_removals(tenant, removed_when=bool(mapping.spec.removed_when)),
    ]
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


_NAMES = ("firstName", "lastName", "salutation")


def logged(found: dict[str, Any]) -> dict[str, Any]:
    """``found`` fit for a log record: each preview row keeps its columns, but a name or a
    salutation the mapping found shows as ``***`` and the number masked as ``phones.mask`` masks
    it in every other record (``+14*******32``: country code and last two digits)."""
    from connector.phones import mask

    def masked(row: dict[str, str]) -> dict[str, str]:
        number = row["cellPhoneCountryCode"] + row["cellPhoneNumber"]
        hidden = {column: "***" if row[column] else "" for column in _NAMES}
        return row | hidden | {"cellPhoneNumber": mask(number)}

    sources = [
        source | {"preview": [masked(row) for row in source["preview"]]}
        for source in found.get("sources", [])
    ]
    return found | ({"sources": sources} if "sources" in found else {})


def render(found: dict[str, Any], out: TextIO) -> None:
    """The check's findings for a person: every line through ``logs.printable``, so a file name,
    header or cell shows its control characters and bidirectional overrides as escapes."""
    out.writelines(printable(line) + "\n" for line in _lines(found))


def _lines(found: dict[str, Any]) -> Iterator[str]:
    yield f"{found['tenant']}:"
    yield f"  mapping:  {found['mapping']}"
    if not found["sources"]:
        yield "  source:   no file matches yet"
    if found["note"]:
        yield f"  note:     {found['note']}"
    for warning in found["warnings"]:
        yield f"  warning:  {warning}"
    for source in found["sources"]:
        yield f"  source:   {source['source']}"
        if source["encoding"]:
            encoding = source["encoding"]
            yield f"  encoding: {encoding['name']} (confidence {encoding['confidence']:.2f})"
        for warning in source["warnings"]:
            yield f"  warning:  {warning}"
        yield (
            f"  sample:   {source['sample_rows']:,} rows, {source['would_send']:,} would be sent"
            f" (before duplicates and numbers already delivered)"
        )
        for reason, seen in source["rejected"].items():
            yield f"  rejected: {seen['rows']:,} {reason} (first at line {seen['first_line']})"
        if source["unknown_countries"]:
            shown = ", ".join(f"'{n}' {c:,}" for n, c in source["unknown_countries"].items())
            yield f"  unknown countries: {shown}"
        if source["preview"]:
            yield from _table([KORE_COLUMNS, *(tuple(p.values()) for p in source["preview"])])
    if found["kore"]:
        kore = found["kore"]
        yield (
            f"  kore:     credentials accepted by {kore['host']}; {kore['contacts']:,} contacts "
            "there"
        )
    yield "  ok"


def _table(rows: list[tuple[str, ...]]) -> Iterator[str]:
    """The rows in columns at most 24 characters wide, measured once the cells are escaped."""
    shown = [tuple(printable(cell) for cell in row) for row in rows]
    widths = [min(24, max(len(r[i]) for r in shown)) for i in range(len(shown[0]))]
    for row in shown:
        yield "    " + "  ".join(cell[:24].ljust(w) for cell, w in zip(row, widths, strict=True))
