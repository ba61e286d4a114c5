"""Durable state: what was delivered, what is in flight, what was read, every run, who holds
each tenant, and how much of each bot's upload budget is spent."""

from connector.state.leases import PROCESS_ID, Lease, LeaseInfo, LeaseLost
from connector.state.store import Store
from connector.state.tenant import (
    Checkpoint,
    Delivered,
    Delivery,
    PendingBatch,
    RunRecord,
    TenantState,
)

__all__ = [
    "PROCESS_ID",
    "Checkpoint",
    "Delivered",
    "Delivery",
    "Lease",
    "LeaseInfo",
    "LeaseLost",
    "PendingBatch",
    "RunRecord",
    "Store",
    "TenantState",
]
