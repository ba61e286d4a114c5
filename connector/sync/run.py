"""One run for one tenant: source -> mapping -> keys & dedupe -> batches -> Kore -> state -> report.

``run_tenant`` is what both ``sync`` and the daemon call: it takes the tenant's lease (a dry run
needs none), keeps it alive while the run lives, and hands a ``RunContext`` to ``run_once``.
Batches an earlier run left in flight are settled first; then every new file is read, mapped and
deduplicated; numbers delivered before are skipped; the rest go out in batches. What the source
read is committed only when the run completes, so a crash costs a re-read, never a lost row.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector import logs
from connector.contacts import Contact, Rejection
from connector.errors import ConnectorError, RunInterrupted, code_of
from connector.mapping import (
    BoundMapping,
    load_mapping,
    read_otherwise,
    reading_of,
    reading_parts,
)
from connector.mapping.apply import REMOVED_IN_CRM, sample_updated_at
from connector.report import Report, contact_rejection, prune
from connector.settings import Settings
from connector.sources import Source, SourceRow, SourceUnit, open_source
from connector.staging import Staging
from connector.state import KnownRow, LeaseLost, Store, TenantState
from connector.sync import plan
from connector.sync.context import (
    KORE_ANSWERS,
    Counters,
    Event,
    Observer,
    Progress,
    RowRejected,
    RunContext,
    RunFinished,
    RunStarted,
    UnitRead,
)
from connector.sync.early import EarlyUploads, scan
from connector.sync.early import eligible as early_eligible
from connector.sync.lease import held
from connector.sync.pool import MappingPool, map_row
from connector.sync.sinks import DryRunSink, KoreSink, Sink

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

_CHUNK_ROWS = 2000
"""Rows read, looked up (known?) and mapped together."""
_KNOWN_CHUNK = 1000
"""Known rows the state records a statement."""


@dataclass
class RunResult:
    tenant: str
    run_id: str
    status: str
    counters: Counters
    report_dir: Path | None
    error: ConnectorError | None = None
    warnings: list[str] = field(default_factory=list)


@logs.scoped
def run_tenant(
    store: Store,
    name: str,
    *,
    settings: Settings,
    base_dir: Path,
    stop: threading.Event,
    dry_run: bool = False,
    full: bool = False,
    observers: Sequence[Observer] = (),
    transport: httpx.BaseTransport | None = None,
) -> RunResult:
    """One run of a tenant under its lease. Raises ``TenantBusy`` while another process runs it.

    Everything it logs, the lease's comings and goings included, carries the tenant (and, once
    the run has begun, its run id)."""
    logs.bind(tenant=name)
    tenant = settings.tenants[name]

    def context(state: TenantState) -> RunContext:
        return RunContext(
            tenant=name,
            settings=tenant,
            app=settings,
            state=state,
            base_dir=base_dir,
            dry_run=dry_run,
            full=full,
            stop=stop,
            observers=list(observers),
        )

    if dry_run:
        return run_once(context(store.tenant(name)), store=store, transport=transport)

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
        return run_once(context(store.tenant(name, lease)), store=store, transport=transport)


def run_once(
    ctx: RunContext, *, store: Store, transport: httpx.BaseTransport | None = None
) -> RunResult:
    """Run one tenant once. User errors end the run as ``failed`` and are returned, not raised;
    a stop ends it as ``interrupted`` at the next batch boundary or wait."""
    logs.bind(tenant=ctx.tenant, run_id=ctx.run_id)
    report = Report(ctx.app.reports_dir, ctx.tenant, ctx.run_id)
    ctx.observers.insert(0, report.observe)
    ctx.guards.append(report.check)
    counters = ctx.counters
    result = RunResult(ctx.tenant, ctx.run_id, "running", counters, None)
    started = datetime.now(UTC)
    ctx.emit(RunStarted(ctx.tenant, ctx.run_id))
    sink: Sink | None = None
    units: list[SourceUnit] = []
    try:
        if not ctx.dry_run:
            ctx.state.start_run(ctx.run_id)
        report.preflight()
        mapping = load_mapping(ctx.settings.mapping, base=ctx.base_dir)
        source = open_source(
            ctx.settings.source, state=ctx.state, full=ctx.full, id_columns=mapping.spec.id_columns
        )
        units = source.units()
        reading = reading_of(mapping, ctx.settings)
        if source.stats.remembered:
            stale = read_otherwise(source.stats.remembered, ctx.state.readings(), reading)
            if stale:
                result.warnings.append(stale)
        counters.files_seen = source.stats.files_seen
        counters.files_read = source.stats.files_read
        counters.files_skipped = source.stats.files_skipped
        counters.files_waiting = source.stats.files_waiting
        counters.unsafe_paths = source.stats.unsafe_paths
        result.warnings.extend(source.stats.waiting)
        result.warnings.extend(source.stats.unsafe)
        bound = {u.ident: _bind(ctx, mapping.bind, u, result.warnings) for u in units}
        sink = (
            DryRunSink(ctx, report, result.warnings)
            if ctx.dry_run
            else KoreSink(ctx, store, transport=transport)
        )
        sink.resume()
        unit_rows: Counter[str] = Counter()
        with (
            Staging() as staging,
            _pool(ctx) as pool,
            _uploads_while_reading(ctx, source, units, bound, sink, staging) as early,
        ):
            _read(ctx, units, bound, unit_rows, staging, pool, early)
            if early is not None:
                early.finish()
            for unit in units:
                late = bound[unit.ident].timestamp_warnings()
                result.warnings.extend(w for w in late if w not in result.warnings)
            flagged = [(key, f"{name} row {row}") for key, name, row in staging.flagged()]
            _suppress(ctx, staging)
            _duplicates(ctx, staging, {u.ident: u.name for u in units})
            changes = plan.build(
                ctx,
                staging,
                flagged=[key for key, _ in flagged],
                snapshot=_snapshot(source, units, bound, staging, result.warnings),
            )
            result.warnings.extend(changes.warnings)
            plan.execute(ctx, staging, sink, sent_early=early.batches if early else 0)
            if not ctx.dry_run:
                ctx.state.commit_checkpoint(
                    replace(source.checkpoint(unit_rows), reading=reading),
                    run_id=ctx.run_id,
                    flagged=flagged,
                    cleared=changes.cleared,
                    known=staging.outcomes(_KNOWN_CHUNK) if staging.any_outcomes() else None,
                )
        result.status = _drift(ctx, units, unit_rows, result.warnings)
    except RunInterrupted as exc:
        result.status = "interrupted"
        result.error = exc
    except ConnectorError as exc:
        result.status = "failed"
        result.error = exc
    finally:
        for unit in units:
            unit.release()
        if sink is not None:
            sink.close()
        _finish(ctx, report, result, started)
    return result


def _finish(ctx: RunContext, report: Report, result: RunResult, started: datetime) -> None:
    """Write the summary (when there is something to say), record the run, tell observers."""
    counters = ctx.counters
    counters.rejected = sum(n for why, n in report.reasons.items() if why not in KORE_ANSWERS)
    public = counters.as_dict()
    summary: dict[str, Any] = {
        "run_id": ctx.run_id,
        "tenant": ctx.tenant,
        "status": result.status,
        "dry_run": ctx.dry_run,
        "full": ctx.full,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "counters": public,
        "error": result.error.message if result.error else None,
        "warnings": result.warnings,
    }
    busy = (
        counters.rows_read - counters.unchanged_rows  # a SQL window re-read is not news
        or counters.uploads
        or counters.pending_resent
        or counters.updated
        or counters.deleted
    )
    keep = ctx.dry_run or bool(busy) or result.status != "completed" or bool(result.warnings)
    result.status, result.error, result.report_dir = conclude(
        ctx, report, summary, keep=keep, status=result.status, error=result.error
    )


def conclude(
    ctx: RunContext,
    report: Report,
    summary: dict[str, Any],
    *,
    keep: bool,
    status: str,
    error: ConnectorError | None,
) -> tuple[str, ConnectorError | None, Path | None]:
    """The end of every run (``sync`` and ``reconcile``): write the summary (when ``keep`` or
    the folder exists), prune old folders, record the run (unless dry), tell observers. Returns
    the final status, error and report folder: a failure here fails the run.

    A completed run that keeps no report folder found nothing new: it keeps no run record
    either, only the time of the check (``TenantState.finish_run``, ``quiet``). What it tells
    its caller and its observers is the same as for any run."""
    pending = None
    folder = None
    try:
        report.check()
    except ConnectorError as exc:
        status, error = "failed", error or exc
    message = error.message if error else None
    stopped = isinstance(error, RunInterrupted)
    summary = {
        **summary,
        "status": status,
        "error": None if stopped else message,
        "interruption": message if stopped else None,
    }
    try:
        if report.close(summary, keep=keep):
            folder = report.directory
    except ConnectorError as exc:
        status, error = "failed", error or exc
    try:
        prune(ctx.app.reports_dir, ctx.tenant, keep_days=ctx.app.reports_keep_days)
    except ConnectorError as exc:  # a refused tenant folder: the run is recorded all the same
        status, error = "failed", error or exc
    try:
        if not ctx.dry_run:
            ctx.state.finish_run(
                ctx.run_id,
                status=status,
                counters=summary["counters"],
                error=error.message if error else None,
                quiet=folder is None and status == "completed",
            )
            pending = ctx.state.pending_count()
    except LeaseLost as exc:
        log.error("%s", exc.message)
        status, error = "failed", error or exc
    except ConnectorError as exc:
        status, error = "failed", error or exc
    ctx.emit(
        RunFinished(
            ctx.tenant,
            ctx.run_id,
            status,
            ctx.counters,
            dict(report.reasons),
            pending,
            error.message if error else None,
        )
    )
    return status, error, folder


def _drift(
    ctx: RunContext, units: list[SourceUnit], unit_rows: Counter[str], warnings: list[str]
) -> str:
    """``completed``, or ``empty`` when a source that produced contacts before produced no rows.

    A new export with a header only, or a whole table that is now empty, is how a broken CRM
    export job looks from here; it must not pass for a quiet success.
    """
    counters = ctx.counters
    empty = [u.name for u in units if u.expect_rows and unit_rows[u.ident] == 0]
    if counters.rows_read and not counters.contacts and not counters.unchanged_rows:
        warnings.append(
            f"{'the only row was' if counters.rows_read == 1 else f'all {counters.rows_read:,} rows were'}"
            " rejected; see rejected.csv for the reasons"
        )
    if empty and not counters.rows_read and ctx.state.delivered_count():
        warnings.append(
            f"{', '.join(empty)} produced no rows, although this tenant's source produced "
            "contacts before; check the CRM's export"
        )
        return "empty"
    return "completed"


def _bind(
    ctx: RunContext,
    bind: Callable[[list[str], str], BoundMapping],
    unit: SourceUnit,
    warnings: list[str],
) -> BoundMapping:
    """The mapping bound to the unit's header; its warnings and the unit's join ``warnings``,
    but those the tenant acknowledges are only counted (``warnings_acknowledged``): they hold
    on every run, and the operator has accepted them."""
    bound = bind(unit.header(), unit.name)
    with closing(unit.rows()) as rows:
        bound = bound.learn_timestamps(sample_updated_at(bound, rows))
    acknowledged = set(ctx.settings.acknowledge)
    for warning in (*unit.warnings(), *bound.warnings):
        if code_of(warning) in acknowledged:
            ctx.counters.warnings_acknowledged += 1
        elif warning not in warnings:
            warnings.append(warning)
    return bound


HIDING = frozenset({"malformed_row", "phone_mangled", "country_unknown"})
"""Rejections that hide which number a row holds: a snapshot with such rows can tell which
numbers the CRM removed only by record id (the contacts delivered from those rows' records may
still be in it)."""


@dataclass
class _Chunk:
    """Rows read together: their hashes, what the state knows of them, and where the unit's
    reading stood (``done``). A unit's last chunk (``end``) holds no rows."""

    unit: SourceUnit
    rows: list[SourceRow]
    hashes: list[str]
    known: dict[str, KnownRow]
    done: int
    end: bool = False


def _read(
    ctx: RunContext,
    units: list[SourceUnit],
    bound: dict[str, BoundMapping],
    unit_rows: Counter[str],
    staging: Staging,
    pool: MappingPool,
    early: EarlyUploads | None,
) -> None:
    """Map every row: rejections go to the report, contacts to the staging file, rows whose
    number could not be read to the staging file's list of them. Rows are mapped in ``pool``'s
    processes, chunk by chunk, and taken in the order they were read; each chunk's contacts are
    offered to ``early`` (uploads while the run reads), when the run makes them.

    A row whose hash (its cells and the mapping that reads them) the state knows is not mapped
    again: one recorded beside a number delivered with exactly its values is unchanged
    (``unchanged_rows``) and holds its number; one rejected before is rejected again as then (a
    known rejection, ``rejected_known``); one that lost a duplicate contest loses it again to
    the same unchanged row. Such a row is mapped after all when another row of the run has its
    number or flags it, or its contest's winner is not there unchanged, to take its part.
    ``--full`` maps every row."""
    names = {u.ident: u for u in units}
    look_up = bool(units) and not ctx.full and ctx.state.any_rows()
    sizes = [u.progress()[1] for u in units]
    total = None if None in sizes else sum(s or 0 for s in sizes)

    def chunks() -> Iterator[tuple[_Chunk, str, BoundMapping, list[SourceRow]]]:
        before = 0
        for unit, size in zip(units, sizes, strict=True):
            mapping = bound[unit.ident]
            identity = _identity(ctx, mapping)
            for rows in _chunks(unit.rows(), _CHUNK_ROWS):
                ctx.check_stop()
                hashes = [_row_hash(identity, row.values) for row in rows]
                known = ctx.state.known(hashes) if look_up else {}
                todo = [r for r, h in zip(rows, hashes, strict=True) if h not in known]
                done = before + unit.progress()[0] if total is not None else -1
                yield _Chunk(unit, rows, hashes, known, done), unit.name, mapping, todo
            before += size or 0
            yield _Chunk(unit, [], [], {}, before, end=True), unit.name, mapping, []

    for chunk, mapped in pool.imap(chunks()):
        unit = chunk.unit
        if chunk.end:
            ctx.emit(UnitRead(ctx.tenant, unit.name, unit_rows[unit.ident], unit.tally()))
        results = iter(mapped)
        fresh: list[tuple[int, Contact]] = []
        for row, row_hash in zip(chunk.rows, chunk.hashes, strict=True):
            ctx.counters.rows_read += 1
            unit_rows[unit.ident] += 1
            ordinal = ctx.counters.rows_read
            found = chunk.known.get(row_hash)
            if found is None:
                if contact := _take(ctx, staging, next(results), row_hash, ordinal):
                    fresh.append((ordinal, contact))
            elif found.outcome == "rejected":
                item = found.rejection(unit.name, row.line)
                _take(ctx, staging, item, row_hash, ordinal, known=True)
            else:
                memo = found.memo if found.outcome == "lost" else None
                staging.skip(ordinal, found.key or "", unit.ident, row.line, row.values, memo)
                ctx.counters.unchanged_rows += memo is None
        done = chunk.done if total is not None else ctx.counters.rows_read
        ctx.emit(Progress(ctx.tenant, ctx.counters, "reading", done, total))
        if early is not None:
            early.offer(fresh)
    contested = list(staging.contested())
    for ordinal, ident, line, cells, lost in contested:
        unit, mapping = names[ident], bound[ident]
        ctx.counters.unchanged_rows -= not lost
        row_hash = _row_hash(_identity(ctx, mapping), cells)
        again = map_row(mapping, unit.name, SourceRow(cells, line), ctx.settings.default_region)
        _take(ctx, staging, again, row_hash, ordinal)


def _take(
    ctx: RunContext,
    staging: Staging,
    item: Contact | Rejection,
    row_hash: str,
    ordinal: int,
    *,
    known: bool = False,
) -> Contact | None:
    """A mapped row into the run: a contact to the staging file, a rejection to the report,
    and a rejection that hides the row's number also to the staging file's unreadable rows,
    with its record id (a snapshot's removals are judged by it). A row marked removed from the
    CRM (``removed_when``) goes to the staging file's removed rows, with its place, numbers
    and record id: the plan removes its numbers unless another row holds them.

    ``known``: a rejection the state remembered for this row's hash, replayed. A rejection of
    a row mapped now is recorded for the state to remember, unless it is a malformed row (its
    detail tells the reader's error, which is about where the row stood in its file). Returns
    the contact staged, if one was."""
    if isinstance(item, Contact):
        kept = _within_limits(ctx, item)
        if isinstance(kept, Contact):
            ctx.counters.names_cleaned += kept.cleaned
            kept = kept.hashed(row_hash)
            staging.add(kept, ordinal)
            return kept
        item = kept
    if not known and item.reason != "malformed_row":
        staging.outcome(row_hash, "rejected", None, item.remembered())
    if item.reason == "skip_when" and item.keys:
        staging.flag(item.keys, item.source, item.row)
    elif item.reason == REMOVED_IN_CRM:
        staging.remove(ordinal, item.keys, item.record_id, item.source, item.row)
    elif item.keys:
        staging.see(item.keys)
    if item.reason in HIDING:
        staging.unreadable(item.record_id, item.row, shifted=item.reason == "malformed_row")
    ctx.emit(RowRejected(ctx.tenant, item, known=known))
    return None


def _within_limits(ctx: RunContext, contact: Contact) -> Contact | Rejection:
    """A name longer than ``kore.max_name_length`` is cut to it (``names_truncated``), or the
    row is rejected as ``name_too_long`` with ``kore.long_names: reject``."""
    kore = ctx.settings.kore
    limit = kore.max_name_length
    if len(contact.first_name) <= limit and len(contact.last_name) <= limit:
        return contact
    if kore.long_names == "reject":
        longest = max(len(contact.first_name), len(contact.last_name))
        detail = f"a name of {longest:,} characters, longer than kore.max_name_length ({limit})"
        return replace(contact_rejection(contact, "name_too_long", detail), keys=(contact.key,))
    ctx.counters.names_truncated += 1
    return replace(
        contact,
        first_name=contact.first_name[:limit].rstrip(),
        last_name=contact.last_name[:limit].rstrip(),
    )


def _identity(ctx: RunContext, mapping: BoundMapping) -> bytes:
    """What a row's meaning depends on besides its cells: the mapping, the header, the region
    and the limit on names."""
    spec, region, limit, long_names = reading_parts(mapping.mapping, ctx.settings)
    what = (spec, mapping.header, region, limit, long_names)
    return hashlib.sha256(repr(what).encode()).digest()


def _row_hash(identity: bytes, cells: list[str]) -> str:
    return hashlib.sha256(identity + "\x1f".join(cells).encode()).hexdigest()[:32]


def _chunks(rows: Iterator[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    chunk: list[SourceRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _snapshot(
    source: Source,
    units: list[SourceUnit],
    bound: dict[str, BoundMapping],
    staging: Staging,
    warnings: list[str],
) -> plan.Snapshot | None:
    """The export that is the whole contact list, when this run read one that removals can be
    judged on: every row showed its number, or every row that did not carries a record id
    (the mapping's ``id``), so that only the contacts of those records need be kept."""
    if not source.complete:
        return None
    name = ", ".join(u.name for u in units)
    unreadable, without_id = staging.unreadable_rows()
    if not unreadable:
        return plan.Snapshot(name)
    damaged = (
        f"the snapshot {name} has {unreadable:,} rows whose number could not be read "
        "(malformed_row, phone_mangled, country_unknown)"
    )
    if not all(bound[u.ident].positions.get("id") for u in units):
        warnings.append(
            f"{damaged}; removed contacts are not judged on it; map the export's record id as "
            "id: to judge the others"
        )
        return None
    if without_id:
        warnings.append(
            f"{damaged}, {without_id:,} of them without a record id; removed contacts are not "
            "judged on it"
        )
        return None
    return plan.Snapshot(name, unreadable)


@contextmanager
def _uploads_while_reading(
    ctx: RunContext,
    source: Source,
    units: list[SourceUnit],
    bound: dict[str, BoundMapping],
    sink: Sink,
    staging: Staging,
) -> Iterator[EarlyUploads | None]:
    """Uploads while the run reads, when this run makes them (``connector.sync.early``)."""
    if not early_eligible(ctx, source, units):
        yield None
        return
    uploads = EarlyUploads(ctx, sink, staging, scan(ctx, units, bound))
    try:
        yield uploads
    finally:
        uploads.close()


def _duplicates(ctx: RunContext, staging: Staging, names: dict[str, str]) -> None:
    """Every row that lost its number's contest, in the order read: those mapped now (each
    recorded, for the state to know it as a loser next time), and the unchanged losers of an
    earlier run that lose to the same unchanged row again (known, not mapped)."""

    def fresh() -> Iterator[tuple[int, Rejection, Contact | None]]:
        for ordinal, loser, name, row, sent in staging.duplicates():
            detail = f"same number as {name} row {row}"
            if sent:
                detail += "; it was uploaded before that row was read, then overwritten by it"
            yield ordinal, contact_rejection(loser, "duplicate_in_source", detail), loser

    def again() -> Iterator[tuple[int, Rejection, Contact | None]]:
        for ordinal, memo, unit, line, winner, row in staging.losers():
            known = Rejection.recalled(memo, source=names[unit], row=line)
            detail = f"same number as {names[winner]} row {row}"
            yield ordinal, replace(known, detail=detail), None

    for _, rejection, loser in heapq.merge(fresh(), again(), key=lambda item: item[0]):
        if loser is not None:
            memo = replace(rejection, detail="").remembered()
            staging.outcome(loser.row_hash, "lost", loser.key, memo)
        ctx.emit(RowRejected(ctx.tenant, rejection, known=loser is None))


_INLINE_ROWS = 10_000
"""Rows a run maps in its own process before it starts workers, when ``mapping_processes`` is
not set: a run with fewer (a small export, a SQL source's increment) starts none, since starting
them would cost more than they save."""


def _pool(ctx: RunContext) -> MappingPool:
    """The processes this run maps in: ``mapping_processes`` from the first row when set; else
    one per core, after the first ``_INLINE_ROWS``."""
    explicit = ctx.app.mapping_processes is not None
    return MappingPool(
        ctx.app.mapping_processes_resolved,
        ctx.settings.default_region,
        inline_rows=0 if explicit else _INLINE_ROWS,
    )


def _suppress(ctx: RunContext, staging: Staging) -> None:
    """Do-not-call belongs to the number: every row of a number some row flagged is held back."""
    for contact, name, row in staging.suppressed():
        detail = f"the number is flagged do-not-call by {name} row {row}"
        ctx.emit(RowRejected(ctx.tenant, contact_rejection(contact, "skip_when", detail)))
