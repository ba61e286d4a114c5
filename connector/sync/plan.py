"""A run's plan of changes: what it read plus the state become creates, updates, deletes and the
unchanged, all decided before anything is sent, then carried out through a sink.

Creates are the numbers never delivered; updates the delivered ones whose names changed
(``changes.renamed: update``); deletes the delivered numbers flagged do-not-call
(``changes.do_not_call: delete``) and the numbers removed from the CRM (``changes.removed:
delete``): for a snapshot source, those the snapshot no longer has; for any source, those of rows
a ``removed_when`` rule marks (a soft delete) that no other row of the run holds. Only contacts
that are ours are updated or deleted: a contact Kore had before we sent it is left alone
(``not_ours``). Removals of more than ``changes.max_delete_fraction`` of the tenant's contacts
refuse the whole run before anything is sent. A snapshot with rows whose number could not be
read judges removals by record id: such a row holds back the contacts delivered from its record
(``removal_held_back``), not the others; a number delivered from another record than the rows
marked removed is held back likewise.
The plan lives in the run's staging database, so memory stays flat whatever its size; its
tables for people (``updates.csv``, ``dnc_in_kore.csv``, ``deletes.csv``) reach the report as
events (``Listed``), a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from connector.contacts import Contact
from connector.errors import ConnectorError
from connector.mapping.apply import REMOVED_IN_CRM
from connector.report import contact_rejection
from connector.staging import Absent, Staging
from connector.state import Delivered
from connector.sync.context import Listing, Progress, RowRejected, RunContext
from connector.sync.sinks import Sink

_STATE_CHUNK = 1000

UPDATES_COLUMNS = (
    "phone_key",
    "kore_id",
    "source",
    "row",
    "record_id",
    "old_first_name",
    "old_last_name",
    "old_salutation",
    "first_name",
    "last_name",
    "salutation",
    "plan",
)
DELETES_COLUMNS = ("phone_key", "kore_id", "why", "plan")
DNC_IN_KORE_COLUMNS = ("phone_key", "kore_id")


class DeletesRefused(ConnectorError):
    """A snapshot, or rows marked removed, would remove more of the tenant's contacts than
    ``max_delete_fraction``."""


@dataclass(frozen=True)
class Snapshot:
    """The export that is the whole contact list, read by this run. ``unreadable``: its rows
    whose number could not be read, each carrying a record id (the run judges no removals
    on a snapshot with such a row that carries none)."""

    name: str
    unreadable: int = 0


@dataclass
class Plan:
    """What planning learnt that the run commits when it completes: the numbers whose
    do-not-call flag this export lifts; and what the run should warn about. The changes
    themselves wait in the staging database."""

    cleared: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def build(
    ctx: RunContext,
    staging: Staging,
    *,
    flagged: list[str],
    snapshot: Snapshot | None,
) -> Plan:
    """Decide every change. ``flagged``: numbers this run flagged do-not-call; ``snapshot``:
    the export that is the whole contact list, when this run read one to judge removals on.

    The report's tables go out as ``Listed`` events; the plan ends at a boundary
    (``check_stop``), so a table the report could not write fails the run before anything is
    sent. Raises ``DeletesRefused`` for removals beyond ``max_delete_fraction``."""
    plan = Plan()
    with Listing(ctx, "updates.csv", UPDATES_COLUMNS, chunk=_STATE_CHUNK) as updates:
        any_delivered = ctx.state.delivered_count() > 0  # none on a first sync: no look-ups
        unfinished = ctx.state.unfinished_runs() if any_delivered else set()
        for chunk in staging.winners(_STATE_CHUNK):
            _classify(ctx, staging, chunk, plan, updates, unfinished, any_delivered=any_delivered)
    with Listing(ctx, "deletes.csv", DELETES_COLUMNS, chunk=_STATE_CHUNK) as deletes:
        planned = _do_not_call(ctx, staging, flagged, plan, deletes)
        _withdrawn(ctx, staging)
        if snapshot is not None:
            _removed(ctx, staging, snapshot, plan, planned, deletes)
        else:
            _removed_in_crm(ctx, staging, planned, deletes)
    ctx.check_stop()
    return plan


def _classify(
    ctx: RunContext,
    staging: Staging,
    chunk: list[tuple[int, Contact, int | None]],
    plan: Plan,
    updates: Listing,
    unfinished: set[str],
    *,
    any_delivered: bool,
) -> None:
    """One chunk of distinct contacts: held back (flagged by an earlier export), created,
    unchanged, or renamed (updated, or skipped and counted); or uploaded early (from this
    row, or from an earlier row of the number that lost to this one: then updated to it)."""
    counters = ctx.counters
    remembered = ctx.state.flagged([c.key for _, c, _ in chunk])
    early = {c.key: sent for _, c, sent in chunk if sent is not None}
    kept: list[tuple[int, Contact]] = []
    for ordinal, contact, _ in chunk:
        if contact.key not in remembered:
            kept.append((ordinal, contact))
        elif contact.dnc_known:
            plan.cleared.append(contact.key)
            kept.append((ordinal, contact))
        else:
            detail = "flagged do-not-call by an earlier export; this one cannot lift the flag"
            ctx.emit(RowRejected(ctx.tenant, contact_rejection(contact, "skip_when", detail)))
    counters.contacts += len(kept)
    delivered = ctx.state.delivered([c.key for _, c in kept]) if any_delivered else {}
    rows: list[tuple[int, str, str | None]] = []
    seen: list[tuple[str, str, str]] = []
    record_ids: dict[str, str] = {}
    lost = [early[c.key] for o, c in kept if early.get(c.key, o) != o]
    first = staging.contacts_at(lost) if lost else {}
    for ordinal, contact in kept:
        if contact.key in early:
            sent = first.get(early[contact.key])
            if sent is not None and sent.fingerprint != contact.fingerprint:
                _overwrite(ctx, contact, sent, delivered.get(contact.key), rows, updates, ordinal)
            continue
        before = delivered.get(contact.key)
        if before is None:
            rows.append((ordinal, "create", None))
            counters.unsent += 1
            continue
        counters.already_delivered += 1
        if before.fingerprint == contact.fingerprint:
            if contact.row_hash and before.row_hash != contact.row_hash:
                seen.append((contact.row_hash, contact.key, contact.fingerprint))
                record_ids[contact.key] = contact.record_id
            continue
        if not before.kore_id:
            continue
        action = _renamed(ctx, before, unfinished)
        updates.add(_update_row(contact, before, action))
        if action.startswith("update"):
            rows.append((ordinal, "update", before.kore_id))
    staging.plan(rows)
    if seen and not ctx.dry_run:
        # Unchanged contacts whose row the state does not know yet (a first run after an
        # upgrade, or --full); what is created or updated brings its row along.
        ctx.state.remember_rows(seen, record_ids)


def _overwrite(
    ctx: RunContext,
    contact: Contact,
    sent: Contact,
    before: Delivered | None,
    rows: list[tuple[int, str, str | None]],
    updates: Listing,
    ordinal: int,
) -> None:
    """A later row of a number uploaded early won its contest: the contact this run created
    takes the winner's names, whatever ``changes.renamed`` says (``connector.sync.early``)."""
    if before is None:  # a dry run, or the early upload was not delivered
        before = Delivered(None, sent.fingerprint, "created", sent.csv_row())
        action = (
            "update (a later row of this run won)"
            if ctx.dry_run
            else "skip (the early upload of its number was not delivered)"
        )
    elif not before.updatable:
        ctx.counters.not_ours += 1
        action = "skip (not ours: Kore had it before we sent it)"
    elif not before.kore_id:
        action = "skip (Kore gave no id for its early upload)"
    else:
        action = "update (a later row of this run won)"
    updates.add(_update_row(contact, before, action))
    if action.startswith("update"):
        rows.append((ordinal, "update", before.kore_id))


def _renamed(ctx: RunContext, before: Delivered, unfinished: set[str]) -> str:
    """What becomes of a delivered number whose row now has other names. One delivered by a
    run that did not finish may have gone out early from a row that lost its contest there
    (``connector.sync.early``): it takes this row's names whatever ``changes.renamed`` says."""
    if before.run_id in unfinished and before.updatable and before.origin != "legacy":
        return "update (sent by a run that did not finish, from a row this one beats)"
    if not ctx.settings.update_renamed:
        ctx.counters.changed_skipped += 1
        return "skip (renamed: skip)"
    if not before.updatable:
        ctx.counters.not_ours += 1
        return "skip (not ours: Kore had it before we sent it)"
    return "update"


def _update_row(contact: Contact, before: Delivered, action: str) -> tuple[str, ...]:
    old = before.values[:3] if before.values else ("", "", "")
    return (
        contact.key,
        before.kore_id or "",
        contact.source,
        str(contact.row),
        contact.record_id,
        *old,
        contact.first_name,
        contact.last_name,
        contact.salutation,
        action,
    )


def _do_not_call(
    ctx: RunContext,
    staging: Staging,
    flagged: list[str],
    plan: Plan,
    deletes: Listing,
) -> set[str]:
    """Flagged numbers Kore has from us: counted as ``dnc_in_kore`` and listed; deleted with
    ``changes.do_not_call: delete``, along with numbers an earlier export flagged while the
    tenant kept them (unless this export lifts the flag). Returns the numbers it lists in
    ``deletes.csv``."""
    in_kore = ctx.state.delivered(flagged)
    ctx.counters.dnc_in_kore = len(in_kore)
    with Listing(ctx, "dnc_in_kore.csv", DNC_IN_KORE_COLUMNS, chunk=_STATE_CHUNK) as listed:
        for key, found in sorted(in_kore.items()):
            listed.add((key, found.kore_id or ""))
    delete = ctx.settings.changes.do_not_call == "delete"
    if delete:
        cleared = set(plan.cleared)
        earlier = ctx.state.flagged_in_kore()
        in_kore |= {k: d for k, d in earlier.items() if k not in cleared}
    for key, found in sorted(in_kore.items()):
        action = _deletion(
            ctx, staging, (key, found.kore_id, found.deletable), delete, "do_not_call"
        )
        deletes.add((key, found.kore_id or "", "do_not_call", action))
    return set(in_kore)


def _removed(
    ctx: RunContext,
    staging: Staging,
    snapshot: Snapshot,
    plan: Plan,
    planned: set[str],
    deletes: Listing,
) -> None:
    """Numbers delivered before that the snapshot no longer has were removed from the CRM,
    unless a row whose number could not be read may be theirs: one carrying their record id,
    or any such row when their record id is not known. Those are held back and listed."""
    staging.know(
        [(key, d.kore_id, d.deletable, d.record_id) for key, d in chunk]
        for chunk in ctx.state.every_delivered()
    )
    if snapshot.unreadable and (stray := staging.stray()):
        plan.warnings.append(
            f"the snapshot {snapshot.name} has {stray:,} malformed rows whose record id cell "
            "names no contact delivered (their cells are shifted, so that cell may hold another "
            "column); removed contacts are not judged on it"
        )
        return
    absent = [row for row in staging.absent() if row.key not in planned]
    held = {row.key: _held_back(row, snapshot) for row in absent}
    gone = [row for row in absent if not held[row.key]]
    counters = ctx.counters
    counters.removed = len(gone)
    counters.removal_held_back = len(absent) - len(gone)
    delete = ctx.settings.changes.removed == "delete"
    if delete and gone:
        _within_fraction(
            ctx,
            len(gone),
            f"the snapshot {snapshot.name} lacks",
            hint="a truncated export looks like this; if the CRM really dropped them, raise "
            "changes.max_delete_fraction for one run",
        )
    for row in absent:
        action = held[row.key] or _deletion(
            ctx, staging, (row.key, row.kore_id, row.deletable), delete, "removed"
        )
        deletes.add((row.key, row.kore_id or "", "removed", action))


def _removed_in_crm(ctx: RunContext, staging: Staging, planned: set[str], deletes: Listing) -> None:
    """Numbers delivered before that rows marked removed (``removed_when``) have, and that no
    other row of the run holds, were removed from the CRM: counted ``removed`` and listed, and
    deleted with ``changes.removed: delete`` under ``max_delete_fraction``, as a snapshot's.

    A number delivered from another record than those rows' is held back
    (``removal_held_back``): two records shared it (a duplicate merged away, as CRMs soft-delete
    them), and an incremental read, which sees only what changed, may not have read the one
    still holding it. Judged by number otherwise: when either side has no record id."""
    removals: list[tuple[str, Delivered, str]] = []
    for chunk in staging.removals(_STATE_CHUNK):
        delivered = ctx.state.delivered([key for key, _ in chunk if key not in planned])
        for key, record_ids in chunk:
            found = delivered.get(key)
            if found is None:
                continue  # never delivered: its row is reported, nothing is in Kore
            other = found.record_id and not record_ids & {"", found.record_id}
            held = f"keep (delivered from record {found.record_id}, not marked removed)"
            removals.append((key, found, held if other else ""))
    counters = ctx.counters
    counters.removed = sum(not held for _, _, held in removals)
    counters.removal_held_back = len(removals) - counters.removed
    delete = ctx.settings.changes.removed == "delete"
    if delete and counters.removed:
        _within_fraction(
            ctx,
            counters.removed,
            "rows marked removed in the CRM (removed_when) name",
            hint="a removed_when rule that matches live contacts looks like this (`check` "
            "counts the rows it marks); if the CRM really removed them, raise "
            "changes.max_delete_fraction for one run",
        )
    for key, found, held in removals:
        action = held or _deletion(
            ctx, staging, (key, found.kore_id, found.deletable), delete, "removed"
        )
        deletes.add((key, found.kore_id or "", "removed", action))


def _withdrawn(ctx: RunContext, staging: Staging) -> None:
    """Rows of a record that a row read after them marks removed (an older export of the run
    still had the contact) are not sent: reported as removed, with the row that says so."""
    for contact, source, row in staging.withdrawn():
        detail = (
            f"record {contact.record_id} is marked removed by {source} row {row}, read after it"
        )
        ctx.emit(RowRejected(ctx.tenant, contact_rejection(contact, REMOVED_IN_CRM, detail)))


def _within_fraction(ctx: RunContext, gone: int, what: str, *, hint: str) -> None:
    """Refuse the run when removals would delete more than ``max_delete_fraction``; ``what``
    says what removes them, ahead of the count."""
    total = ctx.state.delivered_count()
    limit = ctx.settings.changes.max_delete_fraction
    if gone > limit * total:
        raise DeletesRefused(
            f"tenant {ctx.tenant}: {what} {gone:,} of the {total:,} contacts delivered "
            f"({gone / total:.0%}), more than changes.max_delete_fraction ({limit:.0%}); "
            "nothing was deleted or sent",
            hint=hint,
        )


def _held_back(row: Absent, snapshot: Snapshot) -> str:
    """Why a number the snapshot lacks is kept although it looks removed ("" when it is not):
    its record may be on a row whose number could not be read."""
    if row.unreadable_row is not None:
        return f"keep (its row {row.unreadable_row} could not be read)"
    if snapshot.unreadable and row.record_id is None:
        unreadable = f"{snapshot.unreadable:,} rows could not be read"
        return f"keep (delivered without its record id; {unreadable})"
    return ""


def _deletion(
    ctx: RunContext,
    staging: Staging,
    candidate: tuple[str, str | None, bool],
    delete: bool,
    setting: str,
) -> str:
    """What becomes of one ``(key, kore_id, deletable)`` a change would delete."""
    key, kore_id, deletable = candidate
    if not delete:
        return f"keep ({setting}: keep)"
    if not deletable:
        ctx.counters.not_ours += 1
        return "keep (not ours: Kore had it before we sent it, or an older version recorded it)"
    staging.doom([(key, kore_id)])
    return "delete"


def execute(ctx: RunContext, staging: Staging, sink: Sink, *, sent_early: int = 0) -> None:
    """Carry the plan out: deletes first (a number flagged do-not-call must not wait behind a
    long upload), then updates, then creates in batches; a stop is heeded before each. Batches
    are numbered after the ``sent_early`` the run uploaded while it read."""
    size = ctx.settings.kore.batch_size
    doomed = staging.doomed()
    counts = (len(doomed), *map(staging.count, ("update", "create")))
    total = sent_early + sum(-(-n // size) for n in counts)
    done = sent_early

    def step() -> None:
        nonlocal done
        done += 1
        ctx.emit(Progress(ctx.tenant, ctx.counters, "sending", done, total))

    if total > done:
        ctx.emit(Progress(ctx.tenant, ctx.counters, "sending", done, total))
    for start in range(0, len(doomed), size):
        ctx.check_stop()
        sink.delete(doomed[start : start + size])
        step()
    for changed in staging.planned("update", size):
        ctx.check_stop()
        sink.update(changed)
        step()
    for batch in _batches(staging, size):
        ctx.check_stop()
        sink.send(batch)
        ctx.counters.unsent -= len(batch)
        step()


def _batches(staging: Staging, size: int) -> Iterator[list[Contact]]:
    for chunk in staging.planned("create", size):
        yield [contact for contact, _ in chunk]
