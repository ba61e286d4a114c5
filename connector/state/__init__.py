"""Durable state: what was delivered, what is in flight, what was read, every run, who holds
each tenant, and how much of each bot's upload budget is spent.

The modules build on one another in one direction: ``store.py`` owns the engine, the schema and
transactions; ``leases.py`` and ``tenant.py`` build on it, and it imports neither. ``Store``
here is the store as the rest of the connector uses it, with each tenant's state and the
leases put together on top."""

from __future__ import annotations

from functools import cached_property

from connector.state import store
from connector.state.leases import PROCESS_ID, Lease, LeaseInfo, LeaseLost, Leases
from connector.state.store import StateUnavailable
from connector.state.tenant import (
    Checkpoint,
    Delivered,
    Delivery,
    KnownRow,
    PendingBatch,
    RunRecord,
    TenantState,
)


class Store(store.Store):
    """The state database (``store.Store``: opened, migrated, transactions) with its tenants
    and their leases."""

    @cached_property
    def leases(self) -> Leases:
        """One per store: it knows the lease locks this process holds."""
        return Leases(self)

    def tenant(self, name: str, lease: Lease | None = None) -> TenantState:
        """One tenant's state. Without a lease it can only be read (``status``, dry runs)."""
        return TenantState(self, name, lease)

    def close(self) -> None:
        """Lease locks still held go with the store, as they would with the process."""
        self.leases.close()
        super().close()


__all__ = [
    "PROCESS_ID",
    "Checkpoint",
    "Delivered",
    "Delivery",
    "KnownRow",
    "Lease",
    "LeaseInfo",
    "LeaseLost",
    "PendingBatch",
    "RunRecord",
    "StateUnavailable",
    "Store",
    "TenantState",
]
