"""Holding a tenant's lease for the length of a run, renewed in the background.

The keeper renews the lease every third of its time. If the lease was taken over, or cannot be
renewed before it expires (the state database is unreachable), the run's stop event is set: the
run stops at its next batch boundary, and its fenced writes commit nothing in any case. The
lease's lock (``state.leases``) dies with the process: a run that dies, however it dies, hands
the tenant over at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from connector.errors import ConnectorError, TenantBusy
from connector.state import Lease, LeaseLost, Store
from connector.sync.context import Event, LeaseChanged

log = logging.getLogger(__name__)


@contextmanager
def held(
    store: Store,
    tenant: str,
    *,
    seconds: float,
    locks: bool,
    stop: threading.Event,
    emit: Callable[[Event], None],
) -> Iterator[Lease]:
    """The tenant's lease for as long as the block runs; ``seconds`` and ``locks`` are
    ``daemon.lease_seconds`` and ``daemon.lease_locks``."""
    lease = store.leases.acquire(tenant, seconds=seconds, locks=locks)
    if lease is None:
        current = store.leases.current(tenant)
        who = f"{current.holder} until {current.expires_at:%H:%M:%S} UTC" if current else "?"
        raise TenantBusy(
            f"tenant {tenant} is being run by another process ({who})",
            hint="wait for that run to end; "
            + (
                "its process is alive (one that dies lets go of the tenant at once)"
                if store.leases.notices_death(locks=locks)
                else "a lease whose holder died expires after daemon.lease_seconds"
            ),
        )
    emit(LeaseChanged(tenant, True, lease.token))
    done = threading.Event()
    keeper = threading.Thread(
        target=_keep, args=(store, lease, stop, done), name=f"lease-{tenant}", daemon=True
    )
    keeper.start()
    try:
        yield lease
    finally:
        done.set()
        keeper.join()
        try:
            store.leases.release(lease)
        except ConnectorError as exc:
            # Its lock went all the same (``Leases.release``): where one tells, the tenant is
            # free at once, and the failure is the run's own error, said already.
            log.log(
                logging.DEBUG if lease.lock is not None else logging.WARNING,
                "lease on tenant %s not released (%s); it is free at once where a lease "
                "lock tells, at expiry otherwise",
                tenant,
                exc,
            )
        emit(LeaseChanged(tenant, False, lease.token))


def _keep(store: Store, lease: Lease, stop: threading.Event, done: threading.Event) -> None:
    deadline = time.monotonic() + lease.seconds
    while not done.wait(lease.seconds / 3):
        try:
            store.leases.renew(lease)
            deadline = time.monotonic() + lease.seconds
        except LeaseLost as exc:
            log.error("%s", exc.message)
            stop.set()
            return
        except ConnectorError as exc:
            if time.monotonic() >= deadline:
                log.error("lease on tenant %s expired unrenewed (%s); stopping", lease.tenant, exc)
                stop.set()
                return
            log.warning("lease on tenant %s not renewed yet: %s", lease.tenant, exc)
