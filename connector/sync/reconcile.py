"""``reconcile``: Kore's contact list compared with the state, and (``--apply``) brought back in
line with it.

Three differences are found: numbers the state delivered that Kore no longer has (deleted by
hand in Kore, say), contacts Kore has that the state does not know, and names that differ from
what was last sent. With ``--apply`` the missing are created again from the state's last-sent
values (through the same pending-batch protocol as every upload, so a crash at any point costs
a retry, never a second contact); unknown contacts whose number the source has are recorded as
known (``found``: Kore had them before us, so they are never updated or deleted); and names are
corrected when ``changes.renamed`` is ``update``. Numbers flagged do-not-call are never created
again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from connector import logs
from connector.contacts import Contact, PhoneKey
from connector.delivery import kore_key
from connector.errors import ConnectorError, RunInterrupted
from connector.kore.wire import kore_row
from connector.mapping import load_mapping
from connector.report import Report
from connector.settings import Settings
from connector.sources import open_source
from connector.state import Delivered, Delivery, Store, TenantState
from connector.sync.context import Event, Listing, Observer, RunContext, RunStarted
from connector.sync.lease import held
from connector.sync.run import conclude
from connector.sync.sinks import KoreSink

log = logging.getLogger(__name__)


@dataclass
class Found:
    """What reconcile found, and what ``--apply`` did about it."""

    in_kore: int = 0
    in_state: int = 0
    missing: int = 0
    unknown: int = 0
    unknown_in_source: int = 0
    names_differ: int = 0
    recreated: int = 0
    adopted: int = 0
    corrected: int = 0
    held_back: int = 0
    """Missing from Kore but not created again: flagged do-not-call, or nothing to send."""

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class ReconcileResult:
    tenant: str
    run_id: str
    status: str
    found: Found
    report_dir: Path | None
    applied: bool
    error: ConnectorError | None = None
    warnings: list[str] = field(default_factory=list)


_NAMES_DIFFER_COLUMNS = (
    "phone_key",
    "kore_id",
    "kore_first_name",
    "kore_last_name",
    "kore_salutation",
    "sent_first_name",
    "sent_last_name",
    "sent_salutation",
    "plan",
)


@dataclass(frozen=True)
class _KoreContact:
    kore_id: str
    names: tuple[str, str, str]


@logs.scoped
def reconcile_tenant(
    store: Store,
    name: str,
    *,
    settings: Settings,
    base_dir: Path,
    stop: threading.Event,
    apply: bool = False,
    observers: Sequence[Observer] = (),
    transport: httpx.BaseTransport | None = None,
) -> ReconcileResult:
    """Compare one tenant's state with Kore; with ``apply``, under the tenant's lease."""
    logs.bind(tenant=name)

    def context(state: TenantState) -> RunContext:
        return RunContext(
            tenant=name,
            settings=settings.tenants[name],
            app=settings,
            state=state,
            base_dir=base_dir,
            dry_run=not apply,
            stop=stop,
            observers=list(observers),
        )

    if not apply:
        return _reconcile(context(store.tenant(name)), store, transport)

    def emit(event: Event) -> None:
        for observe in observers:
            observe(event)

    with held(
        store,
        name,
        seconds=settings.daemon.lease_seconds,
        locks=settings.daemon.lease_locks,
        stop=stop,
        emit=emit,
    ) as lease:
        return _reconcile(context(store.tenant(name, lease)), store, transport)


def _reconcile(
    ctx: RunContext, store: Store, transport: httpx.BaseTransport | None
) -> ReconcileResult:
    logs.bind(tenant=ctx.tenant, run_id=ctx.run_id)
    apply = not ctx.dry_run
    report = Report(ctx.app.reports_dir, ctx.tenant, ctx.run_id)
    ctx.observers.insert(0, report.observe)
    ctx.guards.append(report.check)
    found = Found()
    result = ReconcileResult(ctx.tenant, ctx.run_id, "running", found, None, apply)
    started = datetime.now(UTC)
    ctx.emit(RunStarted(ctx.tenant, ctx.run_id))
    sink = KoreSink(ctx, store, transport=transport)
    try:
        if apply:
            ctx.state.start_run(ctx.run_id)
            sink.resume()
        _compare(ctx, sink, found, apply)
        result.status = "completed"
    except RunInterrupted as exc:
        result.status, result.error = "interrupted", exc
    except ConnectorError as exc:
        result.status, result.error = "failed", exc
    finally:
        sink.close()
        _finish(ctx, report, result, started)
    return result


def _compare(ctx: RunContext, sink: KoreSink, found: Found, apply: bool) -> None:
    kore = _kore_contacts(sink)
    found.in_kore = len(kore)
    missing: list[tuple[str, Delivered]] = []
    differ: list[tuple[str, Delivered, _KoreContact]] = []
    known: set[str] = set()
    for chunk in ctx.state.every_delivered():
        for key, delivered in chunk:
            known.add(key)
            there = kore.get(key)
            if there is None:
                missing.append((key, delivered))
            elif delivered.values and _sent_names(ctx, key, delivered) != there.names:
                differ.append((key, delivered, there))
    found.in_state = len(known)
    unknown = {key: kore[key] for key in kore.keys() - known}
    found.missing, found.unknown, found.names_differ = len(missing), len(unknown), len(differ)
    wanted = set(unknown) | {key for key, d in missing if not d.values}
    in_source = _in_source(ctx, wanted) if wanted else {}
    flagged = ctx.state.flagged([key for key, _ in missing])

    recreate = _missing(ctx, missing, in_source, flagged, found)
    adopt = _unknown(ctx, unknown, in_source, found)
    correct = _differ(ctx, differ)
    ctx.check_stop()
    if not apply:
        return
    before = ctx.counters.created + ctx.counters.adopted
    size = ctx.settings.kore.batch_size
    for start in range(0, len(recreate), size):
        ctx.check_stop()
        sink.send(recreate[start : start + size])
    found.recreated = ctx.counters.created + ctx.counters.adopted - before
    if adopt:
        ctx.check_stop()
        ctx.state.adopt(ctx.run_id, adopt)
        found.adopted = len(adopt)
    if correct:
        ctx.check_stop()
        sink.update(correct)
        found.corrected = ctx.counters.updated


def _kore_contacts(sink: KoreSink) -> dict[str, _KoreContact]:
    """Kore's active contacts by phone key (read once, page by page where Kore pages)."""
    contacts: dict[str, _KoreContact] = {}
    for item in sink.client.list_contacts():
        key = kore_key(item)
        if key and item.get("status", "ACTIVE") == "ACTIVE" and item.get("id"):
            names = tuple(str(item.get(k) or "") for k in ("firstName", "lastName", "salutation"))
            contacts[key] = _KoreContact(str(item["id"]), names)  # type: ignore[arg-type]
    return contacts


def _stored(key: str, delivered: Delivered) -> Contact:
    """The contact as it was last sent, from the state."""
    assert delivered.values is not None
    first, last, salutation, number, code, extension = delivered.values
    return Contact(
        key=key,
        first_name=first,
        last_name=last,
        salutation=salutation,
        phone=PhoneKey(key, number, code, extension),
        source="reconcile (state)",
        row=0,
        record_id=delivered.record_id or "",
        updated_at=None,
    )


def _sent_names(ctx: RunContext, key: str, delivered: Delivered) -> tuple[str, str, str]:
    first, last, salutation, *_ = kore_row(_stored(key, delivered), ctx.settings.kore)
    return first, last, salutation


def _in_source(ctx: RunContext, wanted: set[str]) -> dict[str, Contact | None]:
    """Which of ``wanted`` the source has now: its contact, or None when a row flags the
    number do-not-call. Every file is read (a snapshot: the newest)."""
    mapping = load_mapping(ctx.settings.mapping, base=ctx.base_dir)
    source = open_source(
        ctx.settings.source, state=None, full=True, id_columns=mapping.spec.id_columns
    )
    have: dict[str, Contact | None] = {}
    region = ctx.settings.default_region
    for unit in source.units():
        bound = mapping.bind(unit.header(), unit.name)
        for row in unit.rows():
            if row.error or len(row.values) != len(bound.header):
                continue
            item = bound.apply(row.values, source=unit.name, row=row.line, default_region=region)
            if isinstance(item, Contact):
                if item.key in wanted and have.get(item.key, item) is not None:
                    have[item.key] = item
            elif item.reason == "skip_when":
                have.update(dict.fromkeys((k for k in item.keys if k in wanted), None))
    return have


def _missing(
    ctx: RunContext,
    missing: list[tuple[str, Delivered]],
    in_source: dict[str, Contact | None],
    flagged: set[str],
    found: Found,
) -> list[Contact]:
    """Numbers Kore no longer has: created again from what was last sent (or, for a number an
    older version recorded without its values, from the source's row)."""
    recreate: list[Contact] = []
    header = ("phone_key", "old_kore_id", "first_name", "last_name", "plan")
    with Listing(ctx, "missing_in_kore.csv", header) as rows:
        for key, delivered in missing:
            contact = _stored(key, delivered) if delivered.values else in_source.get(key)
            if key in flagged or contact is None:
                found.held_back += 1
                why = (
                    "flagged do-not-call" if key in flagged else "no values recorded, not in source"
                )
                rows.add((key, delivered.kore_id or "", "", "", f"keep ({why})"))
                continue
            recreate.append(contact)
            rows.add(
                (key, delivered.kore_id or "", contact.first_name, contact.last_name, "create")
            )
    return recreate


def _unknown(
    ctx: RunContext,
    unknown: dict[str, _KoreContact],
    in_source: dict[str, Contact | None],
    found: Found,
) -> list[Delivery]:
    """Contacts Kore has that the state does not know: recorded as ``found`` when the source
    has their number (with Kore's names, so a later sync sees what Kore really holds)."""
    adopt: list[Delivery] = []
    header = ("phone_key", "kore_id", "first_name", "last_name", "salutation", "plan")
    with Listing(ctx, "unknown_in_kore.csv", header) as rows:
        for key, there in sorted(unknown.items()):
            contact = in_source.get(key)
            plan = "keep (not in the source)" if key not in in_source else "adopt"
            if key in in_source and contact is None:
                plan = "keep (the source flags it do-not-call)"
            if contact is not None:
                found.unknown_in_source += 1
                first, last, salutation = there.names
                kept = replace(contact, first_name=first, last_name=last, salutation=salutation)
                adopt.append(Delivery(kept, there.kore_id, "found"))
            rows.add((key, there.kore_id, *there.names, plan))
    return adopt


def _differ(
    ctx: RunContext, differ: list[tuple[str, Delivered, _KoreContact]]
) -> list[tuple[Contact, str]]:
    """Names in Kore that differ from what was last sent: corrected (to what was sent) when
    the tenant updates renamed contacts and the contact is ours."""
    correct: list[tuple[Contact, str]] = []
    with Listing(ctx, "names_differ.csv", _NAMES_DIFFER_COLUMNS) as rows:
        for key, delivered, there in differ:
            sent = _sent_names(ctx, key, delivered)
            if not ctx.settings.update_renamed:
                plan = "keep (renamed: skip)"
            elif not delivered.updatable:
                plan = "keep (not ours)"
            else:
                plan = "correct"
                correct.append((_stored(key, delivered), there.kore_id))
            rows.add((key, there.kore_id, *there.names, *sent, plan))
    return correct


def _finish(ctx: RunContext, report: Report, result: ReconcileResult, started: datetime) -> None:
    summary: dict[str, Any] = {
        "run_id": ctx.run_id,
        "tenant": ctx.tenant,
        "command": "reconcile --apply" if result.applied else "reconcile",
        "status": result.status,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "found": result.found.as_dict(),
        "counters": {**ctx.counters.as_dict(), **result.found.as_dict()},
        "error": result.error.message if result.error else None,
        "warnings": result.warnings,
    }
    result.status, result.error, result.report_dir = conclude(
        ctx, report, summary, keep=True, status=result.status, error=result.error
    )
