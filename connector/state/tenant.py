"""One tenant's state: every read and write of it, each write fenced by the tenant's lease.

Every method works on this tenant only, so tenants never see each other's rows. A write opens
its transaction by renewing the lease with the holder's token (``leases.fence``): a process
that lost its lease raises ``LeaseLost`` there, and nothing of that transaction is committed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    Column,
    Connection,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from connector.contacts import Contact, PhoneKey, Rejection
from connector.state.leases import Lease, fence
from connector.state.store import aware, database_now, now
from connector.state.tables import (
    batch_rows,
    batches,
    deliveries,
    dnc_numbers,
    known_rows,
    leases,
    processed_files,
    runs,
    source_cursors,
)

if TYPE_CHECKING:
    from connector.state.store import Store

_CHUNK = 500
_HASH_CHUNK = 2000
KNOWN_DAYS = 30
"""Days a known row (``known_rows``) is remembered: after that the row is mapped once more and
remembered again, so rows no export has any more do not pile up."""


class KnownRow(NamedTuple):
    """What became of a source row, by its hash: ``delivered`` as the number ``key``; ``lost``
    a duplicate contest for the number ``key``; or ``rejected``. ``memo``: what the report said
    of it (``Rejection.remembered``; for ``lost``, its record id and the values it would have
    sent); empty for ``delivered``. (A named tuple: a run makes one for every row it knows.)"""

    outcome: str
    key: str | None = None
    memo: str = ""

    def rejection(self, source: str, row: int) -> Rejection:
        """The remembered rejection, for the row ``row`` of ``source`` (the row's place in the
        export being read is its own). Raises ``ValueError`` for a memo it cannot read."""
        return Rejection.recalled(self.memo, source=source, row=row)


_VALUES = ("first_name", "last_name", "salutation", "number", "country_code", "extension")


@dataclass(frozen=True, slots=True)
class Delivered:
    """A number delivered before: its Kore id, what was sent, and how it became ours.

    ``origin`` is ``created`` or ``adopted`` (ours: updates and deletes may touch it), ``found``
    (Kore had it before we sent it: never updated or deleted) or ``legacy`` (recorded before
    the difference was kept: updated, as earlier versions did, but never deleted)."""

    kore_id: str | None
    fingerprint: str
    origin: str = "created"
    values: tuple[str, str, str, str, str, str] | None = None
    """firstName, lastName, salutation, number, country code, extension as last sent."""
    row_hash: str | None = None
    """The source row last seen with exactly these values (see ``Contact.row_hash``)."""
    record_id: str | None = None
    """The record id of the source row it was sent from or last seen in; None when that row
    had none, or when it was delivered before record ids were kept (migration 0009). A snapshot
    whose rows cannot all be read judges removals by it."""
    run_id: str | None = None
    """The run that delivered it, or last updated it."""

    @property
    def deletable(self) -> bool:
        return self.origin in ("created", "adopted")

    @property
    def updatable(self) -> bool:
        return self.origin in ("created", "adopted", "legacy")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one sent row: its Kore id and how it became ours (see ``Delivered``)."""

    contact: Contact
    kore_id: str | None
    origin: str


@dataclass(frozen=True)
class PendingBatch:
    id: int
    run_id: str
    attempts: int
    contacts: list[Contact]
    created_at: datetime
    """When the batch was recorded as pending: Kore contacts older than that are not ours."""


@dataclass(frozen=True)
class RunRecord:
    id: str
    tenant: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    holder: str | None
    counters: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """What a completed run lets a source skip next time: files read (content hash, name,
    rows) and how they were read (``reading``: a hash of the mapping and the settings that
    shape rows), and the positions of incremental tables. Sources return it; the run commits it."""

    processed: list[tuple[str, str, int]] = field(default_factory=list)
    cursors: dict[str, str] = field(default_factory=dict)
    reading: str | None = None


class TenantState:
    def __init__(self, store: Store, tenant: str, lease: Lease | None) -> None:
        self.store = store
        self.tenant = tenant
        self.lease = lease

    def __repr__(self) -> str:
        return f"TenantState({self.tenant!r}, token={self.lease.token if self.lease else None})"

    def _by_keys(
        self, conn: Connection, columns: Sequence[Column[Any]], keys: Sequence[str]
    ) -> Iterator[tuple[Any, ...]]:
        """This tenant's rows of the columns' table for ``keys``, ``_CHUNK`` keys a query."""
        table = columns[0].table
        for start in range(0, len(keys), _CHUNK):
            rows = conn.execute(
                select(*columns).where(
                    table.c.tenant == self.tenant,
                    table.c.phone_key.in_(keys[start : start + _CHUNK]),
                )
            )
            yield from (tuple(row) for row in rows)

    def _delete_keys(self, conn: Connection, table: Table, keys: Sequence[str]) -> None:
        """Delete this tenant's rows of ``table`` for ``keys``, ``_CHUNK`` keys a statement."""
        for start in range(0, len(keys), _CHUNK):
            conn.execute(
                delete(table).where(
                    table.c.tenant == self.tenant,
                    table.c.phone_key.in_(keys[start : start + _CHUNK]),
                )
            )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self.lease is None:
            raise RuntimeError(f"tenant {self.tenant}: a state write without its lease")
        with self.store.transaction() as conn:
            fence(conn, self.lease)
            yield conn

    # runs

    def start_run(self, run_id: str) -> None:
        """Record a run; runs of this tenant still marked running were left by a process that
        died or lost the lease (this one holds it now), and are marked abandoned. Its start is
        the state database's time (``database_now``): replicas judge "ran recently" by it."""
        with self._write() as conn:
            stamp = database_now(conn)
            conn.execute(
                update(runs)
                .where(runs.c.tenant == self.tenant, runs.c.status == "running")
                .values(status="abandoned")
            )
            conn.execute(
                insert(runs).values(
                    id=run_id,
                    tenant=self.tenant,
                    started_at=stamp,
                    status="running",
                    dry_run=False,
                    counters="{}",
                    holder=self.lease.holder if self.lease else None,
                )
            )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        counters: dict[str, Any],
        error: str | None = None,
        quiet: bool = False,
    ) -> None:
        """Record how the run ended (the state database's time). A ``quiet`` run (it completed
        and found nothing new) leaves no record: its row goes, and its start becomes the
        tenant's last check (``leases.checked_at``), which schedules and ``status`` read beside
        the last run; a daemon on a short schedule would otherwise add a row a turn for ever
        (issue 13: 480,000 a day for 30 tenants on ``every: 5s``). It is recorded all the same
        when the run before it did not succeed: it closes that run's unfinished work, and
        ``status`` shows how that ended."""
        with self._write() as conn:
            if quiet and _after_success(conn, self.tenant, run_id):
                started = conn.execute(
                    select(runs.c.started_at).where(runs.c.id == run_id)
                ).scalar_one_or_none()
                conn.execute(delete(runs).where(runs.c.id == run_id))
                conn.execute(
                    update(leases)
                    .where(leases.c.tenant == self.tenant)
                    .values(checked_at=started if started is not None else database_now(conn))
                )
                return
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    status=status,
                    finished_at=database_now(conn),
                    counters=json.dumps(counters, sort_keys=True),
                    error=error,
                )
            )

    def last_run(self) -> RunRecord | None:
        with self.store.transaction() as conn:
            return latest_run(conn, self.tenant)

    def last_check(self) -> datetime | None:
        """When the tenant's newest run started, recorded or not; None if never."""
        with self.store.transaction() as conn:
            return last_check(conn, self.tenant, latest_run(conn, self.tenant))

    # delivered keys

    def delivered(self, keys: Iterable[str]) -> dict[str, Delivered]:
        """Which of ``keys`` were delivered before, in chunked ``IN`` queries."""
        with self.store.transaction() as conn:
            return {
                row[0]: _delivered(row[1:]) for row in self._by_keys(conn, _DELIVERED, list(keys))
            }

    def every_delivered(self, chunk: int = 5000) -> Iterator[list[tuple[str, Delivered]]]:
        """Every number this tenant delivered, ``chunk`` at a time in key order (keyset paging:
        no transaction stays open between chunks, and memory stays flat)."""
        after = ""
        while True:
            with self.store.transaction() as conn:
                rows = conn.execute(
                    select(*_DELIVERED)
                    .where(deliveries.c.tenant == self.tenant, deliveries.c.phone_key > after)
                    .order_by(deliveries.c.phone_key)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            yield [(row[0], _delivered(tuple(row)[1:])) for row in rows]
            after = rows[-1][0]

    def known(self, hashes: Sequence[str]) -> dict[str, KnownRow]:
        """What became of the source rows with these hashes, where the state knows: last seen
        beside a number delivered with exactly that row's values (``delivered``), or recorded as
        rejected or a duplicate contest's loser (``known_rows``). Two chunked ``IN`` queries."""
        found: dict[str, KnownRow] = {}
        since = now() - timedelta(days=KNOWN_DAYS)  # older ones are forgotten at the next commit
        with self.store.transaction() as conn:
            for start in range(0, len(hashes), _HASH_CHUNK):
                part = hashes[start : start + _HASH_CHUNK]
                rows = conn.execute(
                    select(deliveries.c.row_hash, deliveries.c.phone_key).where(
                        deliveries.c.tenant == self.tenant, deliveries.c.row_hash.in_(part)
                    )
                )
                found.update({str(h): KnownRow("delivered", str(k)) for h, k in rows})
                rest = [h for h in part if h not in found]
                if not rest:
                    continue
                remembered = conn.execute(
                    select(
                        known_rows.c.row_hash,
                        known_rows.c.outcome,
                        known_rows.c.phone_key,
                        known_rows.c.rejection,
                    ).where(
                        known_rows.c.tenant == self.tenant,
                        known_rows.c.row_hash.in_(rest),
                        known_rows.c.recorded_at >= since,
                    )
                )
                found.update({str(h): _known(o, k, m) for h, o, k, m in remembered})
        return found

    def any_rows(self) -> bool:
        """Whether any source row is remembered (a first sync has none to look up)."""
        with self.store.transaction() as conn:
            for table in (deliveries, known_rows):
                found = conn.execute(
                    select(table.c.tenant)
                    .where(table.c.tenant == self.tenant, table.c.row_hash.is_not(None))
                    .limit(1)
                ).first()
                if found is not None:
                    return True
        return False

    def remember_rows(
        self, rows: Sequence[tuple[str, str, str]], record_ids: Mapping[str, str] | None = None
    ) -> None:
        """``(row_hash, phone_key, fingerprint)``: the source row a delivered number was seen
        in, recorded only where the number was delivered with exactly those values, with that
        row's record id (``record_ids`` by phone key; none when the row had none). This is how
        numbers delivered before record ids were kept learn theirs."""
        if not rows:
            return
        ids = record_ids or {}
        statement = (
            update(deliveries)
            .where(
                deliveries.c.tenant == self.tenant,
                deliveries.c.phone_key == bindparam("k"),
                deliveries.c.fingerprint == bindparam("f"),
            )
            .values(row_hash=bindparam("h"), record_id=bindparam("r"))
        )
        with self._write() as conn:
            conn.execute(
                statement, [{"h": h, "k": k, "f": f, "r": ids.get(k) or None} for h, k, f in rows]
            )

    def unfinished_runs(self) -> set[str]:
        """This tenant's runs that ended without completing (failed, interrupted, abandoned) or
        are still running (this one: what it re-sent of theirs): what they delivered may have
        gone out early, from a row that a later row of their export beats
        (``connector.sync.early``)."""
        with self.store.transaction() as conn:
            rows = conn.execute(
                select(runs.c.id).where(
                    runs.c.tenant == self.tenant,
                    runs.c.dry_run.is_(False),
                    runs.c.status.not_in(SUCCESS),
                )
            )
            return {str(run_id) for (run_id,) in rows}

    def flagged_in_kore(self) -> dict[str, Delivered]:
        """Delivered numbers that an earlier export flagged do-not-call."""
        with self.store.transaction() as conn:
            rows = conn.execute(
                select(*_DELIVERED)
                .join(
                    dnc_numbers,
                    (dnc_numbers.c.tenant == deliveries.c.tenant)
                    & (dnc_numbers.c.phone_key == deliveries.c.phone_key),
                )
                .where(deliveries.c.tenant == self.tenant)
            ).all()
        return {row[0]: _delivered(tuple(row)[1:]) for row in rows}

    def delivered_count(self) -> int:
        with self.store.transaction() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(deliveries)
                .where(deliveries.c.tenant == self.tenant)
            ).scalar_one()
        return int(count)

    def record_updates(self, run_id: str, updated: Sequence[Contact]) -> None:
        """What Kore confirmed it updated in place: new values and fingerprints (one executemany)."""
        if not updated:
            return
        statement = (
            update(deliveries)
            .where(deliveries.c.tenant == self.tenant, deliveries.c.phone_key == bindparam("k"))
            .values(
                fingerprint=bindparam("f"),
                run_id=run_id,
                delivered_at=now(),
                row_hash=bindparam("h"),
                # an update that carries no record id (reconcile's, from the state) keeps it
                record_id=func.coalesce(bindparam("r"), deliveries.c.record_id),
                **{name: bindparam(f"v_{name}") for name in _VALUES},
            )
        )
        with self._write() as conn:
            conn.execute(
                statement,
                [
                    {
                        "k": c.key,
                        "f": c.fingerprint,
                        "h": c.row_hash or None,
                        "r": c.record_id or None,
                        **_values(c, prefix="v_"),
                    }
                    for c in updated
                ],
            )

    def forget(self, keys: Sequence[str]) -> None:
        """Numbers whose Kore contacts were deleted: no longer delivered, so a later export
        that has them again creates them again."""
        if keys:
            with self._write() as conn:
                self._delete_keys(conn, deliveries, keys)

    def adopt(self, run_id: str, found: Sequence[Delivery]) -> None:
        """Record contacts Kore has that the state did not know (``reconcile --apply``)."""
        with self._write() as conn:
            self._deliver(conn, run_id, found)

    # batches in flight

    def add_batch(
        self, run_id: str, contacts: Sequence[Contact], *, at: datetime | None = None
    ) -> int:
        """Record a batch as pending (``at``), before its upload: a crash after this costs a
        retry only."""
        with self._write() as conn:
            inserted = conn.execute(
                insert(batches).values(
                    tenant=self.tenant,
                    run_id=run_id,
                    status="pending",
                    attempts=0,
                    created_at=at or now(),
                )
            ).inserted_primary_key
            assert inserted is not None
            batch_id = inserted[0]
            conn.execute(
                insert(batch_rows),
                [
                    {
                        "batch_id": batch_id,
                        "position": i,
                        "phone_key": c.key,
                        "first_name": c.first_name,
                        "last_name": c.last_name,
                        "salutation": c.salutation,
                        "number": c.phone.national,
                        "country_code": c.phone.country_code,
                        "extension": c.phone.extension,
                        "source": c.source,
                        "row_no": c.row,
                        "record_id": c.record_id,
                    }
                    for i, c in enumerate(contacts)
                ],
            )
        return int(batch_id)

    def note_attempt(self, batch_id: int) -> None:
        with self._write() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(attempts=batches.c.attempts + 1)
            )

    def pending_batches(self) -> list[PendingBatch]:
        with self.store.transaction() as conn:
            heads = conn.execute(
                select(batches.c.id, batches.c.run_id, batches.c.attempts, batches.c.created_at)
                .where(batches.c.tenant == self.tenant, batches.c.status == "pending")
                .order_by(batches.c.id)
            ).all()
            rows = conn.execute(
                select(batch_rows)
                .where(batch_rows.c.batch_id.in_([head.id for head in heads]))
                .order_by(batch_rows.c.batch_id, batch_rows.c.position)
            ).all()
        by_batch: dict[int, list[Contact]] = {head.id: [] for head in heads}
        for r in rows:
            by_batch[r.batch_id].append(
                Contact(
                    key=r.phone_key,
                    first_name=r.first_name,
                    last_name=r.last_name,
                    salutation=r.salutation,
                    phone=PhoneKey(r.phone_key, r.number, r.country_code, r.extension),
                    source=r.source,
                    row=r.row_no,
                    record_id=r.record_id,
                    updated_at=None,
                )
            )
        return [
            PendingBatch(h.id, h.run_id, h.attempts, by_batch[h.id], aware(h.created_at) or now())
            for h in heads
        ]

    def pending_count(self) -> int:
        with self.store.transaction() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(batch_rows)
                .join(batches)
                .where(batches.c.tenant == self.tenant, batches.c.status == "pending")
            ).scalar_one()
        return int(count)

    def _deliver(self, conn: Connection, run_id: str, delivered: Sequence[Delivery]) -> None:
        stamp = now()
        self._delete_keys(conn, deliveries, [d.contact.key for d in delivered])
        if delivered:
            conn.execute(
                insert(deliveries),
                [
                    {
                        "tenant": self.tenant,
                        "phone_key": d.contact.key,
                        "kore_id": d.kore_id,
                        "fingerprint": d.contact.fingerprint,
                        "run_id": run_id,
                        "delivered_at": stamp,
                        "origin": d.origin,
                        "row_hash": d.contact.row_hash or None,
                        "record_id": d.contact.record_id or None,
                        **_values(d.contact),
                    }
                    for d in delivered
                ],
            )

    def settle_batch(self, batch_id: int, run_id: str, delivered: Sequence[Delivery]) -> None:
        """Record what was delivered and close the batch, atomically."""
        stamp = now()
        with self._write() as conn:
            self._deliver(conn, run_id, delivered)
            conn.execute(delete(batch_rows).where(batch_rows.c.batch_id == batch_id))
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(status="settled", settled_at=stamp)
            )

    # do-not-call

    def flagged(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` an earlier export flagged do-not-call (chunked ``IN`` queries)."""
        with self.store.transaction() as conn:
            return {row[0] for row in self._by_keys(conn, (dnc_numbers.c.phone_key,), keys)}

    def any_flagged(self) -> bool:
        """Whether an earlier export flagged any number of this tenant do-not-call."""
        with self.store.transaction() as conn:
            found = conn.execute(
                select(dnc_numbers.c.phone_key).where(dnc_numbers.c.tenant == self.tenant).limit(1)
            ).first()
        return found is not None

    def _record_dnc(
        self,
        conn: Connection,
        run_id: str,
        flagged: Sequence[tuple[str, str]],
        cleared: Sequence[str],
    ) -> None:
        """Flagged numbers are remembered (the newest flag wins); cleared ones are forgotten. A
        flagged number's source row is no longer "unchanged": the row that lifts the flag may be
        the very row it was delivered from, and it must be read to lift it."""
        stamp = now()
        self._delete_keys(conn, dnc_numbers, [key for key, _ in flagged] + list(cleared))
        keys = [key for key, _ in flagged]
        for start in range(0, len(keys), _CHUNK):
            conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.tenant == self.tenant,
                    deliveries.c.phone_key.in_(keys[start : start + _CHUNK]),
                )
                .values(row_hash=None)
            )
        if flagged:
            conn.execute(
                insert(dnc_numbers),
                [
                    {
                        "tenant": self.tenant,
                        "phone_key": key,
                        "source": where,
                        "run_id": run_id,
                        "flagged_at": stamp,
                    }
                    for key, where in flagged
                ],
            )

    # what sources may skip

    def processed_hashes(self) -> set[str]:
        with self.store.transaction() as conn:
            result = conn.execute(
                select(processed_files.c.content_hash).where(
                    processed_files.c.tenant == self.tenant
                )
            )
            return {h for (h,) in result}

    def readings(self) -> dict[str, str | None]:
        """How each remembered file was read (content hash -> reading; None before 0008)."""
        with self.store.transaction() as conn:
            result = conn.execute(
                select(processed_files.c.content_hash, processed_files.c.reading).where(
                    processed_files.c.tenant == self.tenant
                )
            )
            return {h: r for h, r in result}

    def cursor(self, source: str) -> str | None:
        """Where an incremental source stopped: an opaque string the source wrote."""
        with self.store.transaction() as conn:
            value = conn.execute(
                select(source_cursors.c.position).where(
                    source_cursors.c.tenant == self.tenant, source_cursors.c.source == source
                )
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def _remember_known(
        self,
        conn: Connection,
        known: Iterable[list[tuple[str, str, str | None, str]]],
        stamp: datetime,
    ) -> None:
        """Record known rows chunk by chunk (each chunk one DELETE and one INSERT, which works
        on every database as an upsert), and forget those older than ``KNOWN_DAYS``."""
        conn.execute(
            delete(known_rows).where(
                known_rows.c.tenant == self.tenant,
                known_rows.c.recorded_at < stamp - timedelta(days=KNOWN_DAYS),
            )
        )
        for chunk in known:
            conn.execute(
                delete(known_rows).where(
                    known_rows.c.tenant == self.tenant,
                    known_rows.c.row_hash.in_([h for h, _, _, _ in chunk]),
                )
            )
            conn.execute(
                insert(known_rows),
                [
                    {
                        "tenant": self.tenant,
                        "row_hash": h,
                        "outcome": outcome,
                        "phone_key": key,
                        "rejection": rejection,
                        "recorded_at": stamp,
                    }
                    for h, outcome, key, rejection in chunk
                ],
            )

    def commit_checkpoint(
        self,
        checkpoint: Checkpoint,
        *,
        run_id: str = "",
        flagged: Sequence[tuple[str, str]] = (),
        cleared: Sequence[str] = (),
        known: Iterable[list[tuple[str, str, str | None, str]]] | None = None,
    ) -> None:
        """Remember what a completed run read, in one transaction: the source's checkpoint, the
        numbers it flagged do-not-call (``(key, where)``), those its export showed unflagged,
        and the rows it rejected or that lost a duplicate contest (``known``: chunks of
        ``(row_hash, outcome, phone_key, rejection JSON)``, see ``KnownRow``). Known rows older
        than ``KNOWN_DAYS`` are forgotten then."""
        idle = not checkpoint.processed and not checkpoint.cursors and not flagged and not cleared
        if idle and known is None:
            return
        stamp = now()
        with self._write() as conn:
            if known is not None:
                self._remember_known(conn, known, stamp)
            self._record_dnc(conn, run_id, flagged, cleared)
            if checkpoint.processed:
                conn.execute(
                    delete(processed_files).where(
                        processed_files.c.tenant == self.tenant,
                        processed_files.c.content_hash.in_([h for h, _, _ in checkpoint.processed]),
                    )
                )
                conn.execute(
                    insert(processed_files),
                    [
                        {
                            "tenant": self.tenant,
                            "content_hash": h,
                            "name": name,
                            "rows": rows,
                            "processed_at": stamp,
                            "reading": checkpoint.reading,
                        }
                        for h, name, rows in checkpoint.processed
                    ],
                )
            for source, position in checkpoint.cursors.items():
                conn.execute(
                    delete(source_cursors).where(
                        source_cursors.c.tenant == self.tenant, source_cursors.c.source == source
                    )
                )
                conn.execute(
                    insert(source_cursors).values(
                        tenant=self.tenant, source=source, position=position, updated_at=stamp
                    )
                )


def _known(outcome: str, key: str | None, memo: str) -> KnownRow:
    return KnownRow(str(outcome), None if key is None else str(key), str(memo))


_DELIVERED = (
    deliveries.c.phone_key,
    deliveries.c.kore_id,
    deliveries.c.fingerprint,
    deliveries.c.origin,
    deliveries.c.row_hash,
    deliveries.c.record_id,
    deliveries.c.run_id,
    *(deliveries.c[name] for name in _VALUES),
)


def _delivered(row: Sequence[Any]) -> Delivered:
    kore_id, print_, origin, row_hash, record_id, run_id, *values = row
    sent = None if values[0] is None else tuple(str(v or "") for v in values)
    return Delivered(kore_id, print_, origin, sent, row_hash, record_id, run_id)  # type: ignore[arg-type]


def _values(contact: Contact, prefix: str = "") -> dict[str, str]:
    return {f"{prefix}{name}": v for name, v in zip(_VALUES, contact.csv_row(), strict=True)}


SUCCESS = ("completed", "empty")
"""The statuses of a run that did its work (``empty`` is a broken export, read and remembered)."""

_DELIVERING = ("created", "adopted", "updated", "deleted")
"""The counters of a run that changed what Kore holds."""


def last_delivery(state: TenantState, *, page: int = 50) -> RunRecord | None:
    """The tenant's newest run that changed Kore (``_DELIVERING`` counters above 0): ``status``
    shows it beside the last run, which after a quiet turn has delivered nothing. Counters are
    stored as JSON text, which databases query each in their own way, so runs are read newest
    first, a page at a time, until one delivered."""
    query = (
        select(runs)
        .where(runs.c.tenant == state.tenant, runs.c.dry_run.is_(False))
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
    )
    offset = 0
    while True:
        with state.store.transaction() as conn:
            rows = conn.execute(query.limit(page).offset(offset)).all()
        for row in rows:
            counters = json.loads(row.counters)
            if any(counters.get(name, 0) for name in _DELIVERING):
                return RunRecord(
                    id=row.id,
                    tenant=row.tenant,
                    started_at=aware(row.started_at) or now(),
                    finished_at=aware(row.finished_at),
                    status=row.status,
                    holder=row.holder,
                    counters=counters,
                    error=row.error,
                )
        if len(rows) < page:
            return None
        offset += page


def latest_run(conn: Connection, tenant: str) -> RunRecord | None:
    """The tenant's newest run that was not a dry run, or None."""
    row = conn.execute(
        select(runs)
        .where(runs.c.tenant == tenant, runs.c.dry_run.is_(False))
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return RunRecord(
        id=row.id,
        tenant=row.tenant,
        started_at=aware(row.started_at) or now(),
        finished_at=aware(row.finished_at),
        status=row.status,
        holder=row.holder,
        counters=json.loads(row.counters),
        error=row.error,
    )


def last_check(conn: Connection, tenant: str, last: RunRecord | None) -> datetime | None:
    """When the tenant's newest run started, the ones that left no record (``finish_run``,
    ``quiet``) included: the later of ``last`` (its newest recorded run, read before, in the same
    transaction) and ``leases.checked_at``. Judged from ``last`` rather than read again: on
    PostgreSQL each statement sees what was committed when it began, and a run recorded in
    between must not show as a check without its run."""
    checked = aware(
        conn.execute(
            select(leases.c.checked_at).where(leases.c.tenant == tenant)
        ).scalar_one_or_none()
    )
    found = [stamp for stamp in (checked, last.started_at if last else None) if stamp]
    return max(found) if found else None


def _after_success(conn: Connection, tenant: str, run_id: str) -> bool:
    """Whether the tenant's newest run before ``run_id`` succeeded (or there is none)."""
    before = conn.execute(
        select(runs.c.status)
        .where(runs.c.tenant == tenant, runs.c.id != run_id, runs.c.dry_run.is_(False))
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return before is None or before in SUCCESS
