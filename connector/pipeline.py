"""One run for one tenant: source -> mapping -> keys & dedupe -> batches -> Kore -> state -> report.

``run_once`` is the one function both ``sync`` and the daemon call. Batches that an earlier run
left in flight are settled first; then every new file is read, mapped and deduplicated; numbers
delivered before are skipped; the rest go out in batches. A file is remembered as processed only
when the run completes, so a crash costs a re-read, never a lost row.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.delivery import Deliverer, kore_row
from connector.errors import ConnectorError
from connector.kore.client import KoreClient
from connector.mapping import BoundMapping, Contact, Rejection, load_mapping
from connector.report import Report, batch_csv
from connector.settings import Settings, TenantSettings
from connector.sources import SourceUnit, open_source
from connector.staging import Staging
from connector.state import Store

Progress = Callable[[str, Counter[str]], None]
COUNTERS = (
    "files_seen",
    "files_read",
    "files_skipped",
    "rows_read",
    "contacts",
    "rejected",
    "already_delivered",
    "changed_skipped",
    "updated",
    "sent",
    "would_send",
    "would_update",
    "created",
    "adopted",
    "already_in_kore",
    "kore_refused",
    "pending_resent",
    "batches",
    "uploads",
)
"""Every counter a summary carries, zero or not, so scripts can read them without guessing."""
_PROGRESS_EVERY = 2000
_STATE_CHUNK = 1000


@dataclass
class RunResult:
    tenant: str
    run_id: str
    status: str
    counters: Counter[str]
    report_dir: Path
    error: ConnectorError | None = None
    warnings: list[str] = field(default_factory=list)


def new_run_id() -> str:
    """Sortable by start time (to the microsecond), unique across processes."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


def run_once(
    name: str,
    tenant: TenantSettings,
    *,
    settings: Settings,
    store: Store,
    base_dir: Path,
    dry_run: bool = False,
    full: bool = False,
    client_factory: Callable[[TenantSettings], KoreClient] | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run one tenant once. User errors end the run as ``failed`` and are returned, not raised."""
    run_id = new_run_id()
    report = Report(settings.reports_dir / name / run_id)
    counters: Counter[str] = Counter()
    result = RunResult(name, run_id, "running", counters, report.directory)
    started = datetime.now(UTC)
    if not dry_run:
        store.start_run(name, run_id, dry_run=False)
    client: KoreClient | None = None
    try:
        mapping = load_mapping(tenant.mapping, base=base_dir)
        source = open_source(
            name, tenant.source, store=store, full=full, id_columns=mapping.spec.id_columns
        )
        units = source.units()
        counters.update(source.stats)
        bound = {u.ident: _bind(mapping.bind, u, result.warnings) for u in units}
        if not dry_run:
            client = (client_factory or (lambda t: KoreClient(t.kore)))(tenant)
            deliverer = Deliverer(
                tenant=name,
                run_id=run_id,
                store=store,
                client=client,
                report=report,
                counters=counters,
                settings=tenant.kore,
            )
            for batch in store.pending_batches(name):
                deliverer.resume(batch)
        in_flight = store.pending_count(name) if dry_run else 0
        if in_flight:
            result.warnings.append(
                f"{in_flight:,} rows of an interrupted run are in flight; "
                "a real run re-sends them before anything else"
            )
        unit_rows: Counter[str] = Counter()
        with Staging() as staging:
            _read(units, bound, tenant, report, counters, unit_rows, staging, progress, name)
            for loser, source_name, row in staging.duplicates():
                report.reject_contact(
                    loser, "duplicate_in_source", f"same number as {source_name} row {row}"
                )
            if dry_run:
                send, update = _dry_run(tenant, report, counters)
            else:
                send = deliverer.send
                update = deliverer.update if tenant.kore.update_changed else _skip(counters)
            _dispatch(staging, name, tenant, store, counters, progress, send=send, update=update)
        if not dry_run:
            source.checkpoint(unit_rows)
        result.status = _drift(name, units, unit_rows, counters, store, result.warnings)
    except ConnectorError as exc:
        result.status = "failed"
        result.error = exc
    finally:
        if client is not None:
            client.close()
        counters["rejected"] = sum(report.reasons.values())
        public = {name: counters[name] for name in COUNTERS} | dict(counters)
        summary: dict[str, Any] = {
            "run_id": run_id,
            "tenant": name,
            "status": result.status,
            "dry_run": dry_run,
            "full": full,
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "counters": public,
            "error": result.error.message if result.error else None,
            "warnings": result.warnings,
        }
        report.close(summary)
        if not dry_run:
            store.finish_run(run_id, status=result.status, counters=public)
    return result


def _drift(
    name: str,
    units: list[SourceUnit],
    unit_rows: Counter[str],
    counters: Counter[str],
    store: Store,
    warnings: list[str],
) -> str:
    """``completed``, or ``empty`` when a source that produced contacts before produced no rows.

    A new export with a header only, or a whole table that is now empty, is how a broken CRM
    export job looks from here; it must not pass for a quiet success.
    """
    empty = [u.name for u in units if u.expect_rows and unit_rows[u.ident] == 0]
    if counters["rows_read"] and not counters["contacts"]:
        warnings.append(
            f"all {counters['rows_read']:,} rows were rejected; see rejected.csv for the reasons"
        )
    if empty and not counters["rows_read"] and store.delivered_count(name):
        warnings.append(
            f"{', '.join(empty)} produced no rows, although this tenant's source produced "
            "contacts before; check the CRM's export"
        )
        return "empty"
    return "completed"


def _bind(
    bind: Callable[[list[str], str], BoundMapping], unit: SourceUnit, warnings: list[str]
) -> BoundMapping:
    bound = bind(unit.header(), unit.name)
    warnings.extend(w for w in bound.warnings if w not in warnings)
    return bound


def _read(
    units: list[SourceUnit],
    bound: dict[str, BoundMapping],
    tenant: TenantSettings,
    report: Report,
    counters: Counter[str],
    unit_rows: Counter[str],
    staging: Staging,
    progress: Progress | None,
    name: str,
) -> None:
    """Map every row: rejections go to the report, contacts to the staging file."""
    for unit in units:
        mapping = bound[unit.ident]
        for item in _mapped(unit, mapping, tenant.default_region, counters, unit_rows):
            if progress and counters["rows_read"] % _PROGRESS_EVERY == 0:
                progress(name, counters)
            if isinstance(item, Rejection):
                report.reject(item)
            else:
                staging.add(item)
        if progress:
            progress(name, counters)


def _fresh(
    staging: Staging, name: str, store: Store, counters: Counter[str]
) -> Iterator[tuple[list[Contact], list[tuple[Contact, str]]]]:
    """Each chunk of distinct contacts split into the never delivered and the delivered whose
    names changed since (with their Kore id); delivered and unchanged ones are only counted."""
    for chunk in staging.winners(_STATE_CHUNK):
        counters["contacts"] += len(chunk)
        delivered = store.delivered(name, [c.key for c in chunk])
        fresh: list[Contact] = []
        changed: list[tuple[Contact, str]] = []
        for contact in chunk:
            before = delivered.get(contact.key)
            if before is None:
                fresh.append(contact)
                continue
            counters["already_delivered"] += 1
            if before.fingerprint != contact.fingerprint and before.kore_id:
                changed.append((contact, before.kore_id))
        yield fresh, changed


def _dry_run(
    tenant: TenantSettings, report: Report, counters: Counter[str]
) -> tuple[Callable[[list[Contact]], None], Callable[[list[tuple[Contact, str]]], None]]:
    """What a dry run does instead of sending: batch files, exactly as they would be uploaded."""

    def write(chunk: list[Contact]) -> None:
        report.write_batch(batch_csv([kore_row(c, tenant.kore) for c in chunk]))
        counters["batches"] += 1
        counters["would_send"] += len(chunk)

    def count(changed: list[tuple[Contact, str]]) -> None:
        key = "would_update" if tenant.kore.update_changed else "changed_skipped"
        counters[key] += len(changed)

    return write, count


def _skip(counters: Counter[str]) -> Callable[[list[tuple[Contact, str]]], None]:
    """Renamed contacts of a tenant that did not opt into updates: counted, not sent."""

    def count(changed: list[tuple[Contact, str]]) -> None:
        counters["changed_skipped"] += len(changed)

    return count


def _dispatch(
    staging: Staging,
    name: str,
    tenant: TenantSettings,
    store: Store,
    counters: Counter[str],
    progress: Progress | None,
    *,
    send: Callable[[list[Contact]], None],
    update: Callable[[list[tuple[Contact, str]]], None],
) -> None:
    """Hand new contacts to ``send`` in batches, and renamed ones to ``update``."""
    size = tenant.kore.batch_size
    waiting: list[Contact] = []
    changed: list[tuple[Contact, str]] = []
    for fresh, renamed in _fresh(staging, name, store, counters):
        waiting += fresh
        changed += renamed
        while len(waiting) >= size:
            send(waiting[:size])
            del waiting[:size]
            if progress:
                progress(name, counters)
        if len(changed) >= size:
            update(changed)
            changed.clear()
    if waiting:
        send(waiting)
    if changed:
        update(changed)


def _mapped(
    unit: SourceUnit,
    mapping: BoundMapping,
    region: str,
    counters: Counter[str],
    unit_rows: Counter[str],
) -> Iterator[Contact | Rejection]:
    width = len(mapping.header)
    for row in unit.rows():
        counters["rows_read"] += 1
        unit_rows[unit.ident] += 1
        if row.error or len(row.values) != width:
            detail = row.error or f"{len(row.values)} cells where the header has {width}"
            yield Rejection(
                "malformed_row",
                detail,
                unit.name,
                row.line,
                "",
                {"cells": " | ".join(row.values)[:500]} if row.values else {},
            )
            continue
        yield mapping.apply(row.values, source=unit.name, row=row.line, default_region=region)
