"""What the state remembers of tenants' runs, read in one look: the daemon's view at a turn.

A daemon that starts knows nothing of its own: whether a tenant's last run was cut short, when it
last succeeded, how many of its contacts were delivered and how many are still in flight are all
in the state database, written by whichever process ran the tenant (an earlier daemon, a replica,
a ``sync``). The daemon reads them here to resume unfinished work at once and to show them on
``/metrics`` from its first scrape. Reads only: nothing here needs a lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select

from connector.state.store import aware, database_now
from connector.state.tables import batch_rows, batches, deliveries, leases, runs
from connector.state.tenant import SUCCESS, RunRecord, last_check, latest_run

if TYPE_CHECKING:
    from connector.state.store import Store


@dataclass(frozen=True)
class History:
    tenant: str
    last_run: RunRecord | None
    """The newest run by start time, whatever its status and whoever ran it."""
    last_success: datetime | None
    """When the newest run that succeeded ended (for a run that found nothing new and left no
    record, when it started); None when none ever did."""
    last_check: datetime | None
    """When the newest run started, recorded or not; None when there was none."""
    delivered: int
    """Numbers the state records as delivered to Kore."""
    pending: int
    """Rows of batches recorded as pending: handed to Kore, outcome not settled."""
    read_at: datetime
    """The state database's time when this was read: the times above are in its clock."""


def histories(store: Store, tenants: Sequence[str]) -> dict[str, History]:
    """Each tenant's ``History``, read in one transaction so that its parts agree.

    The last run and the last success are one indexed look-up each (newest first on
    ``tenant, started_at``), so the cost does not grow with the number of runs kept; the counts
    are one grouped query each for every tenant asked about."""
    names = list(tenants)
    if not names:
        return {}
    with store.transaction() as conn:
        delivered: dict[str, int] = {
            tenant: int(count)
            for tenant, count in conn.execute(
                select(deliveries.c.tenant, func.count())
                .where(deliveries.c.tenant.in_(names))
                .group_by(deliveries.c.tenant)
            )
        }
        pending: dict[str, int] = {
            tenant: int(count)
            for tenant, count in conn.execute(
                select(batches.c.tenant, func.count())
                .select_from(batch_rows.join(batches))
                .where(batches.c.tenant.in_(names), batches.c.status == "pending")
                .group_by(batches.c.tenant)
            )
        }
        stamp = database_now(conn)
        found = {}
        for name in names:
            last = latest_run(conn, name)
            found[name] = History(
                tenant=name,
                last_run=last,
                last_success=_last_success(conn, name),
                last_check=last_check(conn, name, last),
                delivered=delivered.get(name, 0),
                pending=pending.get(name, 0),
                read_at=stamp,
            )
        return found


def _last_success(conn: Connection, tenant: str) -> datetime | None:
    checked = aware(
        conn.execute(
            select(leases.c.checked_at).where(leases.c.tenant == tenant)
        ).scalar_one_or_none()
    )
    finished = conn.execute(
        select(runs.c.finished_at)
        .where(
            runs.c.tenant == tenant,
            runs.c.dry_run.is_(False),
            runs.c.status.in_(SUCCESS),
            runs.c.finished_at.is_not(None),
        )
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    found = [stamp for stamp in (aware(finished), checked) if stamp is not None]
    return max(found) if found else None
