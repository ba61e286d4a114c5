"""Leases: a tenant is run by at most one process at a time, across daemons and ``sync``.

A lease is a row per tenant: who holds it, until when, and a fencing token that grows by one
each time the lease changes hands. A holder renews it while its run lives; a holder that died
stops renewing and the lease expires. Every write of a tenant's state first renews the lease
with the holder's token in the same transaction (``fence``): a process whose lease was taken
over finds no row to renew, and its transaction commits nothing. That is the shape of
APScheduler's ``acquired_by`` / ``acquired_until`` data stores, plus the token.

Expiry is judged by each process's clock: replicas need clocks kept in step (NTP), well within
the lease time.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connector.errors import StateError
from connector.state.store import aware, now
from connector.state.tables import leases

if TYPE_CHECKING:
    from connector.state.store import Store

PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
"""Who this process is, in leases and in ``status``."""


class LeaseLost(StateError):
    """Another process holds the tenant now; this one must stop and commit nothing."""


@dataclass(frozen=True)
class Lease:
    tenant: str
    holder: str
    token: int
    seconds: float


@dataclass(frozen=True)
class LeaseInfo:
    holder: str
    token: int
    expires_at: datetime

    @property
    def held(self) -> bool:
        return self.expires_at > now()


class Leases:
    def __init__(self, store: Store) -> None:
        self._store = store

    def acquire(self, tenant: str, *, seconds: float, holder: str = PROCESS_ID) -> Lease | None:
        """The tenant's lease, or None while another process holds it."""
        stamp = now()
        values = {
            "holder": holder,
            "acquired_at": stamp,
            "expires_at": stamp + timedelta(seconds=seconds),
        }
        with self._store.transaction() as conn:
            taken = conn.execute(
                update(leases)
                .where(leases.c.tenant == tenant, leases.c.expires_at <= stamp)
                .values(token=leases.c.token + 1, **values)
            ).rowcount
            if taken:
                token = conn.execute(
                    select(leases.c.token).where(leases.c.tenant == tenant)
                ).scalar_one()
                return Lease(tenant, holder, int(token), seconds)
            exists = conn.execute(select(leases.c.token).where(leases.c.tenant == tenant)).first()
        if exists is not None:
            return None
        try:
            with self._store.engine.begin() as conn:
                conn.execute(insert(leases).values(tenant=tenant, token=1, **values))
        except IntegrityError:
            return None  # another process created it first, and holds it
        except SQLAlchemyError as exc:
            raise self._store.error(exc) from exc
        return Lease(tenant, holder, 1, seconds)

    def renew(self, lease: Lease) -> None:
        """Push the expiry on; raises ``LeaseLost`` if the lease changed hands."""
        with self._store.transaction() as conn:
            fence(conn, lease)

    def release(self, lease: Lease) -> None:
        """Let the next process take the tenant now rather than at expiry."""
        with self._store.transaction() as conn:
            conn.execute(
                update(leases)
                .where(
                    leases.c.tenant == lease.tenant,
                    leases.c.holder == lease.holder,
                    leases.c.token == lease.token,
                )
                .values(expires_at=now())
            )

    def current(self, tenant: str) -> LeaseInfo | None:
        with self._store.transaction() as conn:
            row = conn.execute(
                select(leases.c.holder, leases.c.token, leases.c.expires_at).where(
                    leases.c.tenant == tenant
                )
            ).first()
        if row is None:
            return None
        return LeaseInfo(row.holder, row.token, aware(row.expires_at) or now())


def fence(conn: Connection, lease: Lease) -> None:
    """Renew ``lease`` inside the caller's transaction, or raise ``LeaseLost`` (rolling it back).

    The renewal is an UPDATE, so it also locks the lease row (PostgreSQL) or the database
    (SQLite) until the caller commits: nobody can take the lease over half-way through.
    """
    renewed = conn.execute(
        update(leases)
        .where(
            leases.c.tenant == lease.tenant,
            leases.c.holder == lease.holder,
            leases.c.token == lease.token,
        )
        .values(expires_at=now() + timedelta(seconds=lease.seconds))
    ).rowcount
    if not renewed:
        raise LeaseLost(
            f"tenant {lease.tenant}: another process took over its lease; "
            "this process stops and commits nothing more",
            hint="the lease expired while this process was stalled; raise daemon.lease_seconds",
        )
