"""Old history goes: run records and settled batches older than ``runs_keep_days``.

The daemon prunes every few minutes (``prune_once``), under a lease of its own (``PRUNING``), so
that two replicas never delete at once. Rows go in chunks of ``CHUNK``: each chunk is one SELECT
of ids and one DELETE of those ids, each a short transaction of its own, never a statement per
row nor one that holds a table for long; a pass stops after ``MAX_CHUNKS`` chunks of each table
and the next pass goes on. Times are the state database's clock, as the rows were written.

Kept whatever their age, because something still reads them: each tenant's newest run (the last
run ``status`` shows, and what the daemon resumes), its newest success (the last-success gauge),
its newest delivery (``status``'s last delivery), runs still marked running, and runs whose
batches are still pending. Batches go only once settled; a pending batch is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, tuple_

from connector.state.store import database_now
from connector.state.tables import batches, runs
from connector.state.tenant import SUCCESS, last_delivery, latest_run

if TYPE_CHECKING:
    from connector.state import Store

CHUNK = 2000
"""Rows a statement deletes at most."""
MAX_CHUNKS = 50
"""Chunks of each table one pass deletes at most (100,000 rows)."""
PRUNING = "(pruning)"
"""The lease the pruning process holds: no tenant can have this name."""


@dataclass(frozen=True)
class Pruned:
    runs: int
    batches: int


def prune_once(
    store: Store, *, keep_days: int, seconds: float, locks: bool, chunk: int = CHUNK
) -> Pruned | None:
    """One pass, under the ``PRUNING`` lease (``seconds`` and ``locks`` as for a tenant's);
    None when another process holds it, pruning now. Raises ``StateError``."""
    lease = store.leases.acquire(PRUNING, seconds=seconds, locks=locks)
    if lease is None:
        return None
    try:
        return prune(store, keep_days=keep_days, chunk=chunk)
    finally:
        store.leases.release(lease)


def prune(store: Store, *, keep_days: int, chunk: int = CHUNK) -> Pruned:
    """Delete what is older than ``keep_days`` days and kept by nothing (see the module's
    docstring); ``keep_days`` 0 keeps everything. Raises ``StateError``."""
    if keep_days <= 0:
        return Pruned(0, 0)
    with store.transaction() as conn:
        cutoff = database_now(conn) - timedelta(days=keep_days)
    return Pruned(_runs(store, cutoff, chunk), _batches(store, cutoff, chunk))


def _runs(store: Store, cutoff: datetime, chunk: int) -> int:
    """Old runs, oldest first; the ones kept are stepped over (keyset, on start and id)."""
    with store.transaction() as conn:
        in_flight = set(
            conn.execute(
                select(batches.c.run_id).where(batches.c.status == "pending").distinct()
            ).scalars()
        )
    kept: dict[str, set[str]] = {}
    deleted = 0
    after: tuple[datetime, str] | None = None
    for _ in range(MAX_CHUNKS):
        query = (
            select(runs.c.id, runs.c.tenant, runs.c.started_at)
            .where(runs.c.started_at < cutoff, runs.c.status != "running")
            .order_by(runs.c.started_at, runs.c.id)
            .limit(chunk)
        )
        if after is not None:
            query = query.where(tuple_(runs.c.started_at, runs.c.id) > tuple_(*after))
        with store.transaction() as conn:
            rows = conn.execute(query).all()
        for tenant in {row.tenant for row in rows} - kept.keys():
            kept[tenant] = _kept(store, tenant)
        doomed = [r.id for r in rows if r.id not in in_flight and r.id not in kept[r.tenant]]
        if doomed:
            with store.transaction() as conn:
                deleted += conn.execute(
                    delete(runs).where(runs.c.id.in_(doomed), runs.c.status != "running")
                ).rowcount
        if len(rows) < chunk:
            break
        after = (rows[-1].started_at, rows[-1].id)
    return deleted


def _kept(store: Store, tenant: str) -> set[str]:
    """The runs of ``tenant`` that something reads whatever their age."""
    with store.transaction() as conn:
        newest = latest_run(conn, tenant)
        success = conn.execute(
            select(runs.c.id)
            .where(runs.c.tenant == tenant, runs.c.dry_run.is_(False), runs.c.status.in_(SUCCESS))
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()
    delivery = last_delivery(store.tenant(tenant))
    found = [success, newest.id if newest else None, delivery.id if delivery else None]
    return {str(run_id) for run_id in found if run_id is not None}


def _batches(store: Store, cutoff: datetime, chunk: int) -> int:
    """Old settled batches (their rows went when they settled)."""
    deleted = 0
    for _ in range(MAX_CHUNKS):
        with store.transaction() as conn:
            ids = list(
                conn.execute(
                    select(batches.c.id)
                    .where(batches.c.status == "settled", batches.c.settled_at < cutoff)
                    .limit(chunk)
                ).scalars()
            )
        if ids:
            with store.transaction() as conn:
                deleted += conn.execute(
                    delete(batches).where(batches.c.id.in_(ids), batches.c.status == "settled")
                ).rowcount
        if len(ids) < chunk:
            break
    return deleted
