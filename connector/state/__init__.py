"""Durable state: what was delivered, what is in flight, what was read, and every run."""

from connector.state.store import Delivered, PendingBatch, RunRecord, Store

__all__ = ["Delivered", "PendingBatch", "RunRecord", "Store"]
